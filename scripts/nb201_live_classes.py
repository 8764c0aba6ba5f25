"""How much NAS-Bench-201 accuracy varies inside a live-cell class (``nb201.live_arch``).

Archs that share a live cell compute the same function up to BN shifts of zero inputs; if their
accuracies differ only by training noise, one graph per class (``data.live_cells``) loses
nothing a predictor could learn. Prints the class count and the within-class vs overall spread.

    python scripts/nb201_live_classes.py [--data-root DIR] [--dataset cifar10]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from ledgformer.data.naslib import load_nb201_accuracy
from ledgformer.data.root import resolve_data_root
from ledgformer.spaces import nb201


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "ImageNet16-120"])
    args = ap.parse_args()
    data = load_nb201_accuracy(resolve_data_root(args.data_root), args.dataset, with_graphs=False,
                               show_progress=False)
    archs = nb201.all_arch_strings()
    classes: dict[str, list[float]] = defaultdict(list)
    for r in data.records:
        classes[nb201.live_arch(archs[r.tags["index"]])].append(r.target)
    shared = [np.std(v) for v in classes.values() if len(v) > 1]
    y = np.array([r.target for r in data.records])
    print(f"{args.dataset}: {len(y)} archs, {len(classes)} live cells, {len(shared)} shared by "
          f"several archs ({sum(len(v) for v in classes.values() if len(v) > 1)} archs)")
    # one graph per class predicts one value per class: the pairs it leaves tied bound what it loses
    from scipy.stats import kendalltau

    ids = {k: i for i, k in enumerate(classes)}
    keys = [ids[nb201.live_arch(archs[r.tags["index"]])] for r in data.records]
    class_mean = np.array([np.mean(classes[k]) for k in classes])[keys]
    print(f"Kendall tau of the class means: {kendalltau(class_mean, y).statistic:.4f}; with the ties "
          f"inside classes broken by the true accuracy: {kendalltau(class_mean + 1e-9 * y, y).statistic:.4f}")
    print(f"accuracy std: overall {y.std():.2f} points; inside a shared class median "
          f"{np.median(shared):.2f}, mean {np.mean(shared):.2f}, max {np.max(shared):.2f} (one failed "
          f"training in a class is enough for a large max)")


if __name__ == "__main__":
    main()
