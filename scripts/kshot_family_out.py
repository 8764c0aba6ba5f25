"""Compare K-shot recipes on devices unlike every training device, without HELP's test devices.

HELP's validation devices all have a kin training device (TITAN X beside the GTX 1080 Ti, Xeon
Gold beside Silver), so a recipe that only mixes what the training devices know looks as good on
them as one that can leave it. The hardware-family-out folds of a study config (default
``configs/studies/help-nb201-family-out.yaml``: gpu, cpu, phone) hold a family of HELP's
*training* devices out of training; each fold's checkpoint is trained once (skipped when
``RUNS/fo-<fold>/model.pt`` exists) and every recipe is scored at K shots on the held-out family
(the checkpoint's test devices), mean over shot seeds. ``--valid CKPT ...`` adds HELP's
validation devices of those checkpoints as one more component; the score is the mean of the
components (the design of results/studies/help-nb201-kshot-choice.md):

  python scripts/kshot_family_out.py --recipe A= --recipe 'B=params:all,keep:[0,0.5],folds:2' \\
      --valid runs/nb201-s0/model.pt runs/nb201-s1/model.pt --json /tmp/kshot-fo.json

Recipes are ``NAME=key:value,...`` overrides of the checkpoint config's ``finetune`` section, as
in scripts/finetune_recipes.py. A fold takes ~6 min to train and 1.5-8 min per recipe on one core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from finetune_recipes import parse_recipe

from ledgformer.train.config import load_config, read_yaml_mapping
from ledgformer.train.experiment import run_experiment
from ledgformer.train.finetune import few_shot_metrics


def fold_checkpoint(study: dict, fold: str, config: Path, seed: int, runs: Path) -> Path:
    """The fold's checkpoint, trained from ``config`` with the study's setting ``"<fold> out"``."""
    path = runs / f"fo-{fold}" / "model.pt"
    if not path.is_file():
        setting = study["settings"][f"{fold} out"]
        overrides = [f"{k}={json.dumps(v)}" for k, v in setting.items()]
        run_experiment(load_config(config, [*overrides, f"seed={seed}", f"out={path.parent}"]))
    return path


def score(path: Path, part: str, shots: int, shot_seeds: list[int], recipe: dict) -> dict[str, float]:
    """Mean rho and MAPE over the part's devices, then over shot seeds."""
    pre = ("valid." if part == "valid" else "") + f"k{shots}."
    runs = [few_shot_metrics(path, [shots], seed=s, part=part, **recipe) for s in shot_seeds]
    return {"rho": float(np.mean([r[pre + "mean_device_spearman"] for r in runs])),
            "mape": float(np.mean([r[pre + "mape"] for r in runs])), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("configs/help-nb201-zeroshot.yaml"))
    ap.add_argument("--study", type=Path, default=Path("configs/studies/help-nb201-family-out.yaml"))
    ap.add_argument("--folds", nargs="+", default=["gpu", "cpu", "phone"])
    ap.add_argument("--seed", type=int, default=0, help="training seed of the fold checkpoints")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs/kshot-family-out"))
    ap.add_argument("--valid", nargs="*", type=Path, default=[],
                    help="checkpoints whose HELP validation devices form one more component")
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--shot-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipe", action="append", required=True, help="NAME=key:value,... (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="write every metric here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    study = read_yaml_mapping(args.study, "study config")
    ckpts = {f"{fold} out": fold_checkpoint(study, fold, args.config, args.seed, args.runs_dir)
             for fold in args.folds}
    columns = (["HELP valid"] if args.valid else []) + list(ckpts)
    rows, dump = [], {}
    for text in args.recipe:
        name, over = parse_recipe(text)
        comps: dict[str, dict] = {}
        if args.valid:
            valid = [score(p, "valid", args.shots, args.shot_seeds, over) for p in args.valid]
            comps["HELP valid"] = {"rho": float(np.mean([v["rho"] for v in valid])),
                                   "mape": float(np.mean([v["mape"] for v in valid])),
                                   "checkpoints": {str(p): v for p, v in zip(args.valid, valid, strict=True)}}
        for col, path in ckpts.items():
            comps[col] = score(path, "test", args.shots, args.shot_seeds, over)
        total = float(np.mean([comps[c]["rho"] for c in columns]))
        dump[name] = {"overrides": over, "score": total, "components": comps}
        cells = " | ".join(f"{comps[c]['rho']:.3f} ({comps[c]['mape']:.2f} %)" for c in columns)
        rows.append(f"| {name} | {json.dumps(over)} | {cells} | {total:.3f} |")
        print(rows[-1], flush=True)
    print(f"\nK = {args.shots}, shot seeds {args.shot_seeds}; mean rho (MAPE) per component; "
          "score = their mean\n")
    print(f"| recipe | overrides | {' | '.join(columns)} | score |\n|---|---|{'---:|' * (len(columns) + 1)}")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps({"checkpoints": {k: str(v) for k, v in ckpts.items()},
                                         "valid": [str(p) for p in args.valid], "shots": args.shots,
                                         "shot_seeds": args.shot_seeds, "recipes": dump}, indent=1))


if __name__ == "__main__":
    main()
