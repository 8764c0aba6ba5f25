"""Study: can K measured samples also choose how much FLOPs (MACs) should rank a new device?

Why: on HELP's FBNet test split FLOPs rank fpga better than the zero-shot model (.958 vs .889), and
the FBNet K-shot recipe (``params: scale``) keeps the zero-shot ranking exactly. This fits, on a
device's K samples, ``log ms = a + b * log pred`` (scale: the shipped recipe's ranking),
``a + c * log MACs`` (flops) and ``a + b * log pred + c * log MACs`` (stack), plus the per-device
choice among them by leave-one-out error on the K samples (``cv:...``), and scores each on the
device's evaluation set. Judged on HELP's validation devices only (``--part valid``); a variant
would become a recipe only if it beat ``scale`` there.

Run: python scripts/kshot_macs_term.py RUN/model.pt [--part valid] [--shots 10] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from ledgformer.train.finetune import kshot_task
from ledgformer.train.metrics import device_key, spearman
from ledgformer.train.trainer import Trainer

CHOICES = (("scale", "stack"), ("scale", "flops", "stack"))


def _design(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))])


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(_design(x), y, rcond=None)[0]


def _loo(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out squared error of the least-squares fit on the K samples."""
    err = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        err += float((_design(x[i:i + 1]) @ _fit(x[keep], y[keep]) - y[i])[0] ** 2)
    return err


def device_scores(path: str, part: str, shots: int, seed: int) -> dict[str, dict[str, tuple]]:
    """device -> variant -> (rho, MAPE %[, chosen variant]) on the device's evaluation set."""
    task = kshot_task(path, shots, seed=seed, part=part, what="kshot_macs_term")
    data = task.data
    trainer = Trainer(task.model, data, task.cfg["train"], seed=seed)
    scored = data.parts[part]
    out = {}
    for d in sorted(set(data.device_row[scored].tolist())):
        ev, sh = scored[data.device_row[scored] == d], task.shots_of(d)
        logs = {}
        for name, idx in (("eval", ev), ("shots", sh)):
            logs[name] = (np.log(trainer.predict(idx)), np.log(data.graph_macs[data.graph_row[idx]]),
                          np.log(data.target[idx]))
        (pe, me, ye), (ps, ms, ys) = logs["eval"], logs["shots"]
        designs = {"scale": (ps[:, None], pe[:, None]), "flops": (ms[:, None], me[:, None]),
                   "stack": (np.column_stack([ps, ms]), np.column_stack([pe, me]))}
        res, cv = {}, {}
        for name, (xs, xe) in designs.items():
            p = _design(xe) @ _fit(xs, ys)
            res[name] = (spearman(ye, p), float(np.mean(np.abs(np.exp(p - ye) - 1)) * 100))
            cv[name] = _loo(xs, ys)
        for pick in CHOICES:
            best = min(pick, key=cv.get)
            res["cv:" + "/".join(pick)] = (*res[best], best)
        out[device_key(data.devices[d])] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--part", default="valid", choices=("valid", "test"))
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    runs = [device_scores(args.checkpoint, args.part, args.shots, s) for s in args.seeds]
    names = list(next(iter(runs[0].values())))
    print(f"{args.checkpoint}, {args.part} devices, K={args.shots}, shot seeds {args.seeds}\n")
    print("| variant | mean rho | MAPE % | per device rho (mean over seeds) |\n|---|---:|---:|---|")
    for n in names:
        rho = np.mean([r[d][n][0] for r in runs for d in r])
        mape = np.mean([r[d][n][1] for r in runs for d in r])
        per = ", ".join(f"{d} {np.mean([r[d][n][0] for r in runs]):.3f}" for d in runs[0])
        print(f"| {n} | {rho:.4f} | {mape:.2f} | {per} |")


if __name__ == "__main__":
    main()
