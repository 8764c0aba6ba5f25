"""HELP NAS-Bench-201 archs whose cell output is cut off by `none` edges, and their latency per
device: the README's data trap (raspi4 / pixel3 list most of them near 0 ms, GPUs do not).

    python scripts/help_disconnected.py [--data-root DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from ledgformer.data.help import torch_load
from ledgformer.data.root import resolve_data_root
from ledgformer.spaces import nb201


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    folder = resolve_data_root(args.data_root) / "help" / "nasbench201" / "latency"
    mask = np.array([nb201.output_cut_off(a) for a in nb201.all_arch_strings()])
    print(f"{mask.sum()} of {mask.size} archs have a disconnected cell output")
    for dev in ("raspi4", "pixel3", "1080ti_1"):
        lat = np.asarray(torch_load(folder / f"{dev}.pt"), float)
        low = lat < 1.0
        print(f"{dev}: {int((low & mask).sum())} disconnected archs under 1 ms (all archs under 1 ms: "
              f"{int(low.sum())}); disconnected range {lat[mask].min():.3f}-{lat[mask].max():.2f} ms, "
              f"under-1-ms range {lat[low].min():.3f}-{lat[low].max():.2f} ms" if low.any() else
              f"{dev}: none under 1 ms; disconnected range {lat[mask].min():.2f}-{lat[mask].max():.2f} ms")


if __name__ == "__main__":
    main()
