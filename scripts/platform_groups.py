"""Test metrics of a multi-platform latency run, averaged per platform group (card prefix).

The README quotes `latency-all` and its baselines this way: the mean over the platforms of each
group of the per-platform test MAPE and Spearman rho (every platform weighs the same, whatever
its number of test networks).

    python scripts/platform_groups.py RUN_DIR [RUN_DIR ...]   (each with metrics.json + model.pt)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ledgformer.train.checkpoint import read_checkpoint
from ledgformer.train.metrics import device_key

#: card registry prefix -> the name the README uses
GROUPS = {"embedded": "CPU runtimes (embedded set)", "mmb": "phone settings (mobile ML benchmark)",
          "help": "HELP settings", "anb": "Accel-NASBench settings"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        devices = read_checkpoint(run / "model.pt")["extra"]["devices"]["test"]
        by_group: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for card in devices:
            key = f"test.per_device.{device_key(card)}"
            if f"{key}.mape" in metrics:
                by_group[card.split("/", 1)[0]].append((metrics[f"{key}.mape"], metrics[f"{key}.spearman"]))
        acc = 100 * metrics["test.acc@10%"]
        print(f"{run}: test MAPE {metrics['test.mape']:.1f} %, Acc(10%) {acc:.0f} %, "
              f"mean per-platform rho {metrics['test.mean_device_spearman']:.3f} (n = {metrics['test.n']:,})")
        for prefix, rows in sorted(by_group.items()):
            mape, rho = np.mean(rows, axis=0)
            print(f"  {GROUPS.get(prefix, prefix)}: {len(rows)} platforms, mean MAPE {mape:.1f} %, "
                  f"mean rho {rho:.3f}")


if __name__ == "__main__":
    main()
