"""Example: adapt a shipped latency predictor to a device from 10 of its measured networks.

``Predictor.adapt`` on HELP's measurements of one device (default gold_6226): the first K of
HELP's first N NB201 archs are the "measured" networks, the other N - K score the predictor
before and after (Spearman rho, MAPE). Shows what ``ledgformer finetune --measured`` does.

Run: python scripts/adapt_example.py [--device gold_6226] [--shots 10] [--archs 400]
"""

from __future__ import annotations

import argparse

import numpy as np

from ledgformer.api import Predictor
from ledgformer.data.help import help_archs, load_help
from ledgformer.data.root import resolve_data_root
from ledgformer.train.metrics import mape, spearman


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", default="help-nb201-latency")
    ap.add_argument("--device", default="gold_6226")
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--archs", type=int, default=400)
    ap.add_argument("--data-root", default=None, help="(default: $LEDGFORMER_DATA, else the user cache)")
    args = ap.parse_args()
    root = resolve_data_root(args.data_root)
    _, arch_of = help_archs("nasbench201", root / "help" / "nasbench201")
    data = load_help(root, "nasbench201", with_graphs=False, limit=args.archs, show_progress=False)
    rec = [r for r in data.records if r.device == f"help/{args.device}"]
    archs, ms = [arch_of[r.graph_id] for r in rec], np.array([r.target for r in rec])
    card, k = f"help/{args.device}", args.shots
    pred = Predictor.load(args.predictor)

    def score(what: str) -> None:
        p = pred.predict(archs[k:], hardware=card)
        print(f"{what}: Spearman {spearman(ms[k:], p):.3f}, "
              f"MAPE {mape(ms[k:], p):.1f} % on {len(archs) - k} other archs")

    score("zero-shot")
    pred.adapt(archs[:k], ms[:k], hardware=card)
    score(f"adapted on {k}")


if __name__ == "__main__":
    main()
