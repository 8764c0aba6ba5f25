"""Study: what K measured networks buy on a phone the model never saw (mobile ML benchmark).

Why: zero-shot, the mobile-cnn suite misses a held-out phone's latency by ~30 % MAPE (the issue's
aim is 20 % from the card alone); a user who can run a few networks on the phone has more. For a
checkpoint trained with one phone held out (``configs/mobile-cnn-zeroshot.yaml``), each setting of
that phone gets K of its networks as "measured" samples (drawn with a shot seed), the model is
adapted on them with each recipe (``Predictor.adapt`` / ``ledgformer finetune --measured`` run the
same ``adapt``), and MAPE / Spearman are scored on the setting's other networks, beside the
zero-shot model on the same networks. ``--part valid``: the same on the checkpoint's validation
phone (``data.valid_device``, also left out of training), to choose a recipe without the test
phones. Rule fixed before those runs: configs/mobile-cnn-zeroshot.yaml gets the scale recipe
(``params: scale, lr: 0.05``) iff, on the valid phone of both checkpoints (``test_device`` pixel4 /
``valid_device`` s10 and iphone7 / a03s, seed 0, shot seed 0), its mean MAPE beats the default
recipe's by >= 2 points and its mean Spearman is not lower by more than .005.
Outcome: not adopted (a03s 19.6 vs 20.9 %, s10 17.7 vs 20.9 %, rerun on the cards with GPU peaks;
19.4 vs 18.1 % and 17.2 vs 18.8 % on the cards before; results/studies/mobile-kshot-valid-*).

Writes results/studies/mobile-kshot-PART-PHONE.{json,md,png} (``--out`` to change): every
setting's scores per recipe and shot seed, the checkpoint's split, the command, machine and time.

Run: python scripts/mobile_kshot.py RUN/model.pt [--part test|valid] [--shots 10] [--shot-seeds 0 1]
       [--recipe config=] [--recipe scale=params:scale,lr:0.05,keep:0] [--settings N] [--out PREFIX]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from finetune_recipes import parse_recipe
from help_consensus import write_report

from ledgformer.train.bench import machine_info
from ledgformer.train.checkpoint import read_checkpoint
from ledgformer.train.config import DEFAULTS, finetune_settings, merge
from ledgformer.train.finetune import restore
from ledgformer.train.metrics import mape, spearman
from ledgformer.train.recipes import adapt
from ledgformer.train.report import error_bar_plot
from ledgformer.train.trainer import Trainer


def _scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    return mape(true, pred), spearman(true, pred)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--part", default="test", choices=("test", "valid"))
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--shot-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--recipe", action="append", default=None, help="NAME=key:value,... (repeatable)")
    ap.add_argument("--settings", type=int, default=None, help="only the first N settings (a quick look)")
    ap.add_argument("--out", type=Path, default=None,
                    help="report prefix (default results/studies/mobile-kshot-PART-PHONE)")
    args = ap.parse_args()
    t0 = time.time()
    recipes = dict(parse_recipe(r) for r in (args.recipe or ["config=", "scale=params:scale,lr:0.05,keep:0"]))
    ckpt = read_checkpoint(args.checkpoint)
    cfg = merge(DEFAULTS, ckpt["config"])
    cfg["train"]["progress"] = False
    model, data = restore(ckpt, cfg, args.checkpoint)
    torch.set_num_threads(int(cfg["train"]["threads"]))
    settings = {name: finetune_settings(cfg, **over) for name, over in recipes.items()}
    test = data.parts[args.part]
    zero = Trainer(model, data, cfg["train"], seed=0)
    rows: dict[str, list[tuple[float, float]]] = {"zero-shot": [], **{n: [] for n in settings}}
    per_setting: list[dict] = []
    for d in sorted(set(data.device_row[test].tolist()))[:args.settings]:
        ex = test[data.device_row[test] == d]
        if len(ex) <= args.shots + 2:
            continue
        for seed in args.shot_seeds:
            shots = np.sort(np.random.default_rng(seed).choice(ex, args.shots, replace=False))
            rest = np.setdiff1d(ex, shots)
            true = data.target[rest]
            rows["zero-shot"].append(_scores(zero.predict(rest), true))
            for name, ft in settings.items():
                m = copy.deepcopy(model)
                trainer = Trainer(m, data, cfg["train"], seed=seed)
                adapt(trainer, m, shots, ft)
                rows[name].append(_scores(trainer.predict(rest), true))
        k = len(args.shot_seeds)
        per_setting.append({"setting": data.devices[d], "networks": len(ex),
                            **{n: {"mape": [m for m, _ in v[-k:]], "spearman": [r for _, r in v[-k:]]}
                               for n, v in rows.items()}})
        last = {n: round(v[-1][0], 1) for n, v in rows.items()}
        print(f"{data.devices[d]}: {len(ex)} networks, MAPE % of the last shot seed {last}", flush=True)
    phone = data.devices[data.device_row[test[0]]].split("/")[2].split("|")[0]
    summary = {}
    for name, vals in rows.items():
        mape, rho = np.array(vals).T
        summary[name] = {"mape_mean": float(mape.mean()), "mape_median": float(np.median(mape)),
                         "spearman_mean": float(rho.mean())}
    split = {k: ckpt["config"]["data"].get(k) for k in ("test_device", "valid_device", "valid_fraction")}
    head = (f"{args.checkpoint} (seed {ckpt['config'].get('seed')}, data {split}): {len(per_setting)} "
            f"settings of the held-out {args.part} phone {phone}, K = {args.shots}, shot seeds "
            f"{args.shot_seeds}; scored on each setting's other networks")
    md = [f"# K-shot on an unseen phone: {args.part} phone {phone}\n", head + "\n",
          f"Command: `python {' '.join(sys.argv)}`\n",
          "| | MAPE % (mean) | MAPE % (median) | Spearman (mean) |", "|---|---:|---:|---:|"]
    md += [f"| {n} | {v['mape_mean']:.1f} | {v['mape_median']:.1f} | {v['spearman_mean']:.3f} |"
           for n, v in summary.items()]
    results = Path(__file__).resolve().parents[1] / "results" / "studies"
    out = args.out or results / f"mobile-kshot-{args.part}-{phone}"
    rep = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "wall_time_s": round(time.time() - t0, 1), "machine": machine_info(),
           "checkpoint": {"path": str(args.checkpoint), "seed": ckpt["config"].get("seed"), "data": split},
           "part": args.part, "phone": phone, "shots": args.shots, "shot_seeds": args.shot_seeds,
           "recipes": settings, "summary": summary, "settings": per_setting}
    write_report(out, rep, "\n".join(md) + "\n")
    error_bar_plot({n: v["mape_mean"] for n, v in summary.items()}, out.with_suffix(".png"),
                   f"{phone} ({args.part}), K = {args.shots}: mean MAPE over {len(per_setting)} settings",
                   "MAPE %")


if __name__ == "__main__":
    main()
