"""How well MACs rank HELP's NAS-Bench-201 latencies, per device: why titan_rtx_256 is hard zero-shot.

Turing GPUs at batch 256 (2080ti_256, titan_rtx_256) rank by MACs; the Pascal ones at batch 256
(1080ti_256, titanx_256, titanxp_256), the only batch-256 GPUs in HELP's training and validation
devices, do not (README, Training: HELP zero-shot).

    python scripts/help_macs_rank.py [--data-root DIR] [--n 1500]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr

from ledgformer.data.help import torch_load
from ledgformer.data.root import resolve_data_root
from ledgformer.spaces import nb201


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--n", type=int, default=1500, help="archs sampled (seed 0; default 1500)")
    args = ap.parse_args()
    folder = resolve_data_root(args.data_root) / "help" / "nasbench201" / "latency"
    archs = nb201.all_arch_strings()
    idx = np.random.default_rng(0).permutation(len(archs))[:args.n]
    macs = [nb201.network_graph(archs[i], num_classes=10, input_size=32, batch_size=1).macs for i in idx]
    print(f"Spearman rho of MACs with latency, {args.n} archs (seed 0):")
    for path in sorted(folder.glob("*.pt")):
        lat = np.asarray(torch_load(path), float)[idx]
        print(f"  {path.stem:16s} {spearmanr(macs, lat)[0]:.3f}")


if __name__ == "__main__":
    main()
