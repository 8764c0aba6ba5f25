"""K-shot by blending reference devices: is the new device a mix of the training devices?

For each device of a HELP checkpoint's part (``--part valid``: choose nothing on the test
devices), the model predicts every evaluation and K-sample arch on each *training* device's card
and on the device's own card (its zero-shot prediction). The K measured samples then fit the
device's log latency as a non-negative combination of those columns plus a constant (NNLS on
the centred columns), which is applied to the evaluation set. "pick" takes the one column that
ranks the K samples best instead, with an affine level fit. No weight of the model moves.

  python scripts/kshot_reference_blend.py runs/help/model.pt --part valid --seeds 0 1 2

Prints per device and seed the Spearman rho and MAPE of "own card" (the zero-shot prediction with
the level shifted to the K samples' mean), "pick" and "nnls", then the means.
Compare with the config's recipe on the same samples:
``python scripts/finetune_recipes.py CKPT --part valid --seeds 0 1 2 --recipe default=``.
"nnls" is the library's K-shot recipe ``finetune.params: reference`` (``reference_mix``; run it
with ``finetune_recipes.py --recipe reference=params:reference,keep:0``); this script sets it
beside the two simpler alternatives on the same columns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from ledgformer.train.finetune import KShotTask, kshot_task
from ledgformer.train.metrics import device_key, mape, spearman
from ledgformer.train.recipes import reference_mix
from ledgformer.train.trainer import Trainer


def log_predictions(task: KShotTask, graph_rows: np.ndarray, cards: list[int]) -> np.ndarray:
    """[len(graph_rows), len(cards)] log-ms predictions of each graph on each card (rows of
    data.devices): the task's data with every (graph, card) pair as an example, through the
    trainer's own batched prediction."""
    n, c = len(graph_rows), len(cards)
    grid = dataclasses.replace(task.data, graph_row=np.repeat(graph_rows, c), device_row=np.tile(cards, n))
    return np.log(Trainer(task.model, grid, task.cfg["train"]).predict(np.arange(n * c))).reshape(n, c)


def scores(pred_log: np.ndarray, y_log: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, MAPE %) of log-ms predictions against log-ms truth."""
    return spearman(y_log, pred_log), mape(np.exp(y_log), np.exp(pred_log))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--part", default="valid", choices=("valid", "test"))
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[tuple[float, float]]] = {"own card": [], "pick": [], "nnls": []}
    for seed in args.seeds:
        task = kshot_task(args.checkpoint, args.shots, seed=seed, part=args.part)
        data = task.data
        train_cards = [data.devices.index(c) for c in json.loads(data.split_json)["devices"]["train"]]
        scored = data.parts[args.part]
        for dev in sorted(set(data.device_row[scored].tolist())):
            ev, shots = scored[data.device_row[scored] == dev], task.shots_of(dev)
            cards = [*train_cards, dev]
            p_ev = log_predictions(task, data.graph_row[ev], cards)
            p_k = log_predictions(task, data.graph_row[shots], cards)
            y_ev, y_k = np.log(data.target[ev]), np.log(data.target[shots])
            out = {"own card": p_ev[:, -1] - p_k[:, -1].mean() + y_k.mean()}  # zero-shot, level from the K
            rho_k = [spearman(y_k, p_k[:, j]) for j in range(len(cards))]
            j = int(np.nanargmax(rho_k))
            a, b = np.polyfit(p_k[:, j], y_k, 1)
            out["pick"] = a * p_ev[:, j] + b
            w, b = reference_mix(p_k, y_k)
            out["nnls"] = p_ev @ w + b
            line = []
            for name, pred in out.items():
                rows[name].append(scores(pred, y_ev))
                line.append(f"{name} {rows[name][-1][0]:.3f} / {rows[name][-1][1]:.1f} %")
            print(f"seed {seed} {device_key(data.devices[dev]):14s} " + " | ".join(line)
                  + f" | picked {device_key(data.devices[cards[j]])}", flush=True)
    print(f"\n{args.checkpoint}, {args.part} devices, K={args.shots}, shot seeds {args.seeds}\n")
    print("| recipe | mean rho | MAPE % |\n|---|---:|---:|")
    for name, vals in rows.items():
        print(f"| {name} | {np.mean([v[0] for v in vals]):.3f} | {np.mean([v[1] for v in vals]):.2f} |")


if __name__ == "__main__":
    main()
