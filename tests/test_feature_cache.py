"""Feature cache: cached == uncached tensors, versions and edits miss, damaged files are recomputed."""

from __future__ import annotations

import copy
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from ledgformer.model import feature_cache as fc
from ledgformer.model.features import GraphTensors, TextTable, graph_tensors
from ledgformer.spaces import nb201

ARCHS = nb201.all_arch_strings()[:6]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path))
    return tmp_path


def _graphs() -> list:
    """Cells and whole networks mixed (different sizes and texts), one repeated."""
    cells = [nb201.cell_graph(a) for a in ARCHS]
    nets = [nb201.network_graph(a, drop_none=i % 2 == 1) for i, a in enumerate(ARCHS[:3])]
    return [cells[0], nets[0], *cells[1:4], nets[1], cells[0], nets[2], *cells[4:]]


def _uncached(graphs: list) -> tuple[list[GraphTensors], list[str]]:
    table = TextTable()
    return [graph_tensors(g, table) for g in graphs], table.texts()


def _assert_same(got: list[GraphTensors], want: list[GraphTensors]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for name in (f.name for f in fields(GraphTensors)):  # a new field must be cached too
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y), name


def _misses(folder: Path, graphs: list) -> int:
    """Number of ``graphs`` the cache in ``folder`` had to featurise (0 = all hits)."""
    before = set(folder.glob("*.npz"))
    fc.cached_graph_tensors(graphs, TextTable(), folder=folder)
    new = set(folder.glob("*.npz")) - before
    return sum(len(fc.read_shard(p).a["keys"]) for p in new)


def test_cached_equals_uncached(cache: Path) -> None:
    graphs = _graphs()
    want, want_texts = _uncached(graphs)
    for _ in range(2):  # cold (computed, written), then warm (read back)
        table = TextTable()
        got = fc.cached_graph_tensors(graphs, table)
        _assert_same(got, want)
        assert table.texts() == want_texts
    folder = fc.default_folder()
    assert len(list(folder.glob("*.npz"))) == 1  # the warm run wrote nothing
    # a new table that already holds other texts: ids shift exactly as in an uncached run
    pre = ["some other text", "input"]
    t1, t2 = TextTable(), TextTable()
    t1.ids(pre), t2.ids(pre)
    _assert_same(fc.cached_graph_tensors(graphs[::-1], t1), [graph_tensors(g, t2) for g in graphs[::-1]])
    assert t1.texts() == t2.texts()


def test_subset_and_partial_hits(cache: Path) -> None:
    graphs = _graphs()
    folder = fc.default_folder()
    assert _misses(folder, graphs[:4]) == 4
    assert _misses(folder, graphs) == len({*fc.graph_keys(graphs)}) - 4  # only the new ones
    assert _misses(folder, graphs[2:7]) == 0
    want, _ = _uncached(graphs[3:])
    _assert_same(fc.cached_graph_tensors(graphs[3:], TextTable()), want)


def test_key_reads_only_what_featurisation_reads(cache: Path) -> None:
    g = nb201.network_graph(ARCHS[1])
    renamed = copy.deepcopy(g)
    renamed.meta["graph_id"], renamed.meta["name"] = "other-id", "other-name"
    bigger = nb201.network_graph(ARCHS[1], batch_size=4)
    raw = copy.deepcopy(nb201.cell_graph(ARCHS[1]))
    raw_changed = copy.deepcopy(raw)
    raw_changed.nodes[1].raw_op = "nor_conv_1x1" if raw.nodes[1].raw_op != "nor_conv_1x1" else "avg_pool_3x3"
    k = fc.graph_keys([g, renamed, bigger, raw, raw_changed])
    assert k[0] == k[1]  # metadata the tensors never read is not part of the key
    assert k[0] != k[2]  # batch size is (graph features)
    assert k[3] != k[4]  # raw_op is (node texts), although content_hash ignores it
    assert len(k[0]) == 32


def test_version_change_misses(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgformer.text import templates

    graphs = _graphs()[:3]
    v0 = fc.feature_version()
    assert _misses(fc.default_folder(), graphs) == 3
    assert _misses(fc.default_folder(), graphs) == 0
    for module, name in ((templates, "TEMPLATE_VERSION"), (fc, "FORMAT_VERSION")):
        with monkeypatch.context() as m:
            m.setattr(module, name, getattr(module, name) + 1)
            assert fc.feature_version() != v0
            assert _misses(fc.default_folder(), graphs) == 3
    assert fc.feature_version() == v0


def test_source_edit_changes_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ledgformer.model.features as features

    v0 = fc.feature_version()
    edited = tmp_path / "features.py"
    edited.write_text(Path(features.__file__).read_text() + "\n# edited\n")
    monkeypatch.setattr(features, "__file__", str(edited))
    assert fc.feature_version() != v0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "inconsistent"])
def test_corrupt_file_is_recomputed(cache: Path, damage: str) -> None:
    graphs = _graphs()[:4]
    want, _ = _uncached(graphs)
    folder = fc.default_folder()
    fc.cached_graph_tensors(graphs, TextTable())
    (path,) = folder.glob("*.npz")
    if damage == "garbage":
        path.write_bytes(b"not a zip file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-200])
    else:  # a valid npz whose node index points past the node table
        shard = fc.read_shard(path)
        arrays = dict(shard.a)
        arrays["node_row"] = arrays["node_row"] + len(arrays["u_op"])
        np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="feature cache: unreadable file"):
        got = fc.cached_graph_tensors(graphs, TextTable())
    _assert_same(got, want)
    assert not path.exists() and len(list(folder.glob("*.npz"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_same(fc.cached_graph_tensors(graphs, TextTable()), want)


def test_compaction_merges_shards(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fc, "MAX_SHARDS", 2)
    graphs = _graphs()
    folder = fc.default_folder()
    for g in graphs[:4]:
        fc.cached_graph_tensors([g], TextTable())
    assert len(list(folder.glob("*.npz"))) <= 2
    want, _ = _uncached(graphs[:4])
    assert _misses(folder, graphs[:4]) == 0
    _assert_same(fc.cached_graph_tensors(graphs[:4], TextTable()), want)


def test_featurize_uses_the_cache(cache: Path) -> None:
    from ledgformer.train.tasks import featurize

    graphs = _graphs()[:5]
    items, table, _ = featurize(graphs, "onehot", progress=False)
    assert len(list(fc.default_folder().glob("*.npz"))) == 1
    items2, table2, _ = featurize(graphs, "onehot", progress=False)
    plain, table3, _ = featurize(graphs, "onehot", progress=False, cache=False)
    _assert_same(items2, items)
    _assert_same(plain, items)
    assert np.array_equal(table.numpy(), table2.numpy()) and np.array_equal(table.numpy(), table3.numpy())
