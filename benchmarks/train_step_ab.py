"""A training step on whole networks before/after a speed change of the model (same numbers).

Why: fine-tuning on K measured networks (HELP's K-shot protocol) is most of a HELP suite's wall
time. This times a full step (forward, backward, AdamW) of the shipped ``help-nb201-latency``
checkpoint on one test device's K = 10 networks before and after one change, interleaved, and
checks that both leave bit-identical weights. ``--change bias``: the reference bias
(``table[rel]`` gathered, then sliced under autograd, whose backward zero-filled two full-size
gradients per block) vs the fused ``dynamic_bias``; ``--change attention``: torch's
``scaled_dot_product_attention`` vs the written-out ``relation_gather.attention``.

Run: python benchmarks/train_step_ab.py [--change bias|attention] [--steps 10] [--repeats 5]
     (writes results/train_step_ab.{json,md}; for attention results/train_step_ab_attention.*)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ledgformer.model import ledgformer as lf
from ledgformer.model.relation_gather import gather_relations
from ledgformer.train.finetune import kshot_task
from ledgformer.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "src" / "ledgformer" / "predictors" / "help-nb201-latency.pt"


def reference_bias(table: torch.Tensor, rel: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """What the training path computed before the fusion."""
    per_rel = gather_relations(table, rel)
    h = score.shape[1]
    return per_rel[:, :h] + per_rel[:, h:] * score


def torch_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """What the blocks called before the written-out attention."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)


#: --change -> (the name in ``ledgformer.model.ledgformer``, what it was before, the title's words)
CHANGES = {"bias": ("dynamic_bias", reference_bias, "the fused dynamic relation bias"),
           "attention": ("attention", torch_attention, "the written-out attention")}


def run(trainer: Trainer, model: torch.nn.Module, idx, steps: int, change: str,
        after: bool) -> tuple[float, str]:
    """(ms per step, hash of the weights after ``steps`` AdamW steps from the checkpoint's weights)."""
    model = copy.deepcopy(model).train()
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    name, before, _ = CHANGES[change]
    saved = getattr(lf, name)
    setattr(lf, name, saved if after else before)
    try:
        t = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            trainer._forward(idx, model).sum().backward()
            opt.step()
        ms = (time.perf_counter() - t) / steps * 1000
    finally:
        setattr(lf, name, saved)
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
    return ms, digest.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--change", choices=sorted(CHANGES), default="bias")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.out is None:  # the bias A/B keeps the file name it was published under
        stem = "train_step_ab" if args.change == "bias" else f"train_step_ab_{args.change}"
        args.out = ROOT / "results" / stem
    torch.set_num_threads(1)
    task = kshot_task(CHECKPOINT, 10, what="train_step_ab")
    model = task.model
    trainer = Trainer(model, task.data, task.cfg["train"], seed=0)
    idx = task.shots_of(int(task.data.device_row[task.data.parts["shots"][0]]))
    run(trainer, model, idx, 2, args.change, True)  # warm-up (allocator, first-call costs)
    times: dict[str, list[float]] = {"before": [], "after": []}
    hashes: dict[str, set[str]] = {"before": set(), "after": set()}
    for _ in range(args.repeats):
        for name, after in (("before", False), ("after", True)):
            ms, digest = run(trainer, model, idx, args.steps, args.change, after)
            times[name].append(ms)
            hashes[name].add(digest)
    med = {k: statistics.median(v) for k, v in times.items()}
    same = hashes["before"] == hashes["after"] and len(hashes["after"]) == 1
    rep = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "change": args.change, "batch_graphs": len(idx),
           "steps": args.steps,
           "repeats": args.repeats, "ms_per_step": times, "median_ms": med,
           "speedup": med["before"] / med["after"], "identical_weights": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(
        f"# Training step before/after {CHANGES[args.change][2]}\n\n"
        f"Command: `{rep['command']}` ({rep['date']}). Shipped `help-nb201-latency`, one HELP test "
        f"device's K = {len(idx)} networks, full step (forward, backward, AdamW), 1 torch thread; "
        f"median of {args.repeats} interleaved repeats of {args.steps} steps.\n\n"
        "| path | ms per step (median) | repeats |\n|---|---:|---|\n"
        + "".join(f"| {k} | {med[k]:.1f} | {', '.join(f'{x:.0f}' for x in times[k])} |\n" for k in times)
        + f"\nSpeed-up {rep['speedup']:.2f}x; weights after the steps bit-identical: {same}.\n")
    print(args.out.with_suffix(".md").read_text())
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
