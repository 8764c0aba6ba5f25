"""Compare K-shot adaptation recipes (``finetune`` sections) of one HELP checkpoint.

Choose a recipe on HELP's validation devices (``--part valid``), never on the test devices:

  python scripts/finetune_recipes.py /tmp/fs/fb0/model.pt --part valid --shots 10 --seeds 0 1 \
      --recipe default= --recipe scale=params:scale,lr:0.05 --recipe readout=params:readout \
      --recipe cv=keep:[0,0.5]

Each ``--recipe NAME=key:value,...`` overrides the checkpoint config's ``finetune`` section
(``NAME=`` alone: the section as it is). Prints a markdown table (mean over devices, then over
seeds) and writes every metric as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from ledgformer.train.finetune import few_shot_metrics


def parse_recipe(text: str) -> tuple[str, dict]:
    name, _, body = text.partition("=")
    pairs = [p.split(":", 1) for p in re.split(r",(?![^\[]*\])", body) if p]  # commas in [...] stay
    return name, {k: yaml.safe_load(v) for k, v in pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--part", default="valid", choices=("valid", "test"))
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--recipe", action="append", required=True, help="NAME=key:value,... (repeatable)")
    ap.add_argument("--json", default=None, help="write all metrics here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pre = ("valid." if args.part == "valid" else "") + f"k{args.shots}."
    rows, dump = [], {}
    for text in args.recipe:
        name, over = parse_recipe(text)
        t0 = time.time()
        runs = [few_shot_metrics(args.checkpoint, [args.shots], seed=s, part=args.part, **over)
                for s in args.seeds]
        dump[name] = {"overrides": over, "runs": runs}
        rho = [r[pre + "mean_device_spearman"] for r in runs]
        mape = [r[pre + "mape"] for r in runs]
        per_seed = " / ".join(f"{x:.3f}" for x in rho)
        rows.append(f"| {name} | {json.dumps(over)} | {np.mean(rho):.3f} ({per_seed}) | {np.mean(mape):.2f} "
                    f"| {time.time() - t0:.0f} s |")
        print(rows[-1], flush=True)
    print(f"\n{args.checkpoint}, {args.part} devices, K={args.shots}, seeds {args.seeds}\n")
    print("| recipe | overrides | mean rho (per seed) | MAPE % | time |\n|---|---|---:|---:|---:|")
    print("\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))


if __name__ == "__main__":
    main()
