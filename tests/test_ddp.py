"""DistributedDataParallel on CPU (gloo): 2 processes give the weights of 1 process, same global batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from ledgformer.model import create_model
from ledgformer.train.trainer import Trainer, model_kwargs

TCFG_KEYS = {"epochs": 3, "batch_size": 8, "eval_every": 3, "rank_weight": 0.0, "lr": 3e-3}


def _train(rank: int, world: int, port: int, out: str) -> None:
    from test_trainer import SMALL, TCFG, synthetic_task

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    if world > 1:
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        data = synthetic_task("accuracy")
        torch.manual_seed(0)
        name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL}}, data)
        tr = Trainer(create_model(name, **kw), data, {**TCFG, **TCFG_KEYS}, seed=0)
        assert tr.world == world and tr.rank == rank
        tr.fit()
        if rank == 0:
            torch.save(tr.model.state_dict(), out)
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path, monkeypatch) -> None:
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    mp.spawn(_train, args=(1, _free_port(), one), nprocs=1, join=True)
    mp.spawn(_train, args=(2, _free_port(), two), nprocs=2, join=True)
    a, b = torch.load(one), torch.load(two)
    assert a.keys() == b.keys()
    moved = False
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    init = create_model("ledgformer", task="accuracy", text_dim=8, use_hardware=False, d_model=16, n_layers=2,
                        n_heads=2)
    moved = any(not torch.allclose(init.state_dict()[k], a[k]) for k in a if k in init.state_dict())
    assert moved
