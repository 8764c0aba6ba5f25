"""Latency database: API, migrations, answers (measured vs predicted), exports, CLI, and that two
writers at once or a writer killed with SIGKILL never lose or half-write a measurement.

The tests that take ``db_url`` also run against PostgreSQL in ``test_db_postgres.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ledgformer.cli.main import main
from ledgformer.db import LatencyDB, Predictor, answer, fallback_predictor, median_iqr
from ledgformer.db.answer import FLOPS, FLOPS_FIT, ROOFLINE, load_predictor
from ledgformer.db.engine import head_revision
from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import load_card

CARD = "help/1080ti_32"


@dataclasses.dataclass
class FakeMeasurement:
    """The fields ``add_measurement`` reads from ``ledgformer.measure.Measurement``."""

    median_ms: float
    iqr_ms: float
    times_ms: tuple[float, ...]
    runtime: str = "onnxruntime"
    threads: int = 1


def measured(times: list[float]) -> FakeMeasurement:
    med, iqr = median_iqr(times)
    return FakeMeasurement(med, iqr, tuple(times))


def make_graph(width: int, name: str = "") -> ArchGraph:
    b = GraphBuilder(name=name or f"net{width}", source="test")
    x = b.input((1, 3, 16, 16))
    x = b.conv(x, width, 3)
    x = b.act(x)
    return b.build()


def tiny_onnx() -> bytes:
    """Conv(3->4, 3x3) + Relu on 1x3x8x8, built directly with onnx.helper."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    g = helper.make_graph(nodes, "tiny", [x], [y], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


TINY_SHIPPED = ("latency-all", "help-nb201-latency")


def use_tiny_shipped(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Ship tiny untrained latency predictors (one-hot encoder: no text model, milliseconds to load)
    under the default names, in place of the real ones; returns name -> checkpoint hash (version)."""
    import hashlib

    import torch

    from ledgformer.api import Predictor as Trained

    folder.mkdir(parents=True, exist_ok=True)
    entries, versions = {}, {}
    for seed, name in enumerate(TINY_SHIPPED):
        torch.manual_seed(seed)
        model = Trained.create("ledgformer", task="latency", encoder="onehot", d_model=16, n_layers=1,
                               n_heads=2, dyn_rank=4, hw_layers=0)
        path = model.save(folder / f"{name}.pt")
        entries[name] = {"task": "latency", "checkpoint": path.name, "metrics": {}}
        versions[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "predictors": entries}))
    monkeypatch.setattr("ledgformer.api.shipped.PREDICTORS_DIR", folder)
    monkeypatch.setenv("LEDGFORMER_CACHE", str(folder / "cache"))
    return versions



@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'latency.db'}"


@pytest.fixture
def db(db_url: str) -> LatencyDB:
    with LatencyDB(db_url) as database:
        yield database


# ---- API -------------------------------------------------------------------------------------

def test_median_iqr_hand_checked() -> None:
    assert median_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, 2.0)  # quartiles 2 and 4 (inclusive)
    assert median_iqr([7.0]) == (7.0, 0.0)


def test_graph_stored_once_and_round_trips(db: LatencyDB) -> None:
    g = make_graph(8)
    h = db.add_graph(g)
    assert h == g.content_hash() == db.add_graph(make_graph(8, name="same net, other name"))
    assert db.stats()["graphs"] == 1
    back = db.graph(h)
    assert back.content_hash() == h and back.to_json() == g.to_json()
    with pytest.raises(LedgformerError, match="not in the database"):
        db.graph("0" * 32)


def test_platform_same_card_is_noop_other_card_needs_replace(db: LatencyDB) -> None:
    pid = db.add_platform("gpu", CARD)
    assert db.add_platform("gpu", load_card(CARD)) == pid
    with pytest.raises(LedgformerError, match="different hardware card"):
        db.add_platform("gpu", "help/pixel3")
    assert db.add_platform("gpu", "help/pixel3", replace=True) == pid
    assert db.platform_card("gpu") == load_card("help/pixel3")
    assert db.platform_card("nope") is None


def test_measurement_lookup_newest_wins(db: LatencyDB) -> None:
    g = make_graph(8)
    db.add_platform("gpu", CARD)
    assert db.lookup(g.content_hash(), "gpu") is None
    db.add_measurement(g, "gpu", measured([2.0, 2.2, 2.1]))
    assert db.lookup(g.content_hash(), "gpu") == pytest.approx(2.1)
    db.add_measurement(g, "gpu", measured([3.0, 3.5, 3.2, 3.1]))
    info = db.latest_measurement(g.content_hash(), "gpu")
    assert info is not None and info.median_ms == pytest.approx(3.15) and info.n_repeats == 4
    assert info.runtime == "onnxruntime" and info.threads == 1 and info.measured_at.endswith("+00:00")
    assert db.lookup(g.content_hash(), "other") is None
    stats = db.stats()
    assert (stats["graphs"], stats["platforms"], stats["measurements"]) == (1, 1, 2)
    assert db.verify() == []


def test_bad_measurements_are_rejected(db: LatencyDB) -> None:
    g = make_graph(8)
    db.add_platform("gpu", CARD)
    for bad in (FakeMeasurement(1.0, 0.1, ()), FakeMeasurement(1.0, 0.1, (1.0, float("nan"))),
                FakeMeasurement(-1.0, 0.1, (1.0,)), FakeMeasurement(1.0, -0.1, (1.0,))):
        with pytest.raises(LedgformerError, match="measurement on 'gpu'"):
            db.add_measurement(g, "gpu", bad)
    assert db.stats()["measurements"] == 0


def test_failed_measurement_rolls_back_the_graph_too(db: LatencyDB) -> None:
    """The graph insert and the measurement are one transaction: a failure keeps neither."""
    with pytest.raises(LedgformerError, match="not in the database"):
        db.add_measurement(make_graph(8), "unknown-platform", measured([1.0, 1.1]))
    assert db.stats()["graphs"] == 0


def test_measurement_card_adds_its_platform(db: LatencyDB) -> None:
    m = dataclasses.replace(measured([1.0, 1.2]))
    m.card = load_card(CARD)  # type: ignore[attr-defined]
    db.add_measurement(make_graph(8), "auto", m)
    assert db.platform_card("auto") == load_card(CARD)


def test_prediction_upsert(db: LatencyDB) -> None:
    g = make_graph(8)
    db.add_platform("gpu", CARD)
    db.add_prediction(g, "gpu", "p", "1", 4.0)
    db.add_prediction(g.content_hash(), "gpu", "p", "1", 5.0)  # same key: refreshed, not duplicated
    db.add_prediction(g, "gpu", "p", "2", 6.0)
    assert db.prediction(g.content_hash(), "gpu", "p", "1") == 5.0
    assert db.stats()["predictions"] == 2
    with pytest.raises(LedgformerError, match="latency must be > 0"):
        db.add_prediction(g, "gpu", "p", "1", 0.0)


# ---- migrations ------------------------------------------------------------------------------

def test_migrated_schema_matches_the_models(db: LatencyDB) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ledgformer.db.schema import Base

    assert db.revision == head_revision()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_unmigrated_or_newer_schema_is_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(LedgformerError, match="ledgformer db migrate"):
        LatencyDB(url, migrate=False)
    with LatencyDB(url) as db, db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(LedgformerError, match="newer than this ledgformer"):
        LatencyDB(url)


def test_concurrent_first_open_migrates_once(db_url: str) -> None:
    """Several processes opening an empty database at once: one migrates, none fails."""
    code = "import sys; from ledgformer.db import LatencyDB; print(LatencyDB(sys.argv[1]).revision)"
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert {out.strip() for out, _ in results} == {head_revision()}
    with LatencyDB(db_url, migrate=False) as fresh:
        assert fresh.stats()["graphs"] == 0


def test_sqlite_settings(db: LatencyDB) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# ---- answers ---------------------------------------------------------------------------------

def test_answer_measured_then_fitted_fallback(db: LatencyDB) -> None:
    card = load_card(CARD)
    db.add_platform("gpu", card)
    g1, g2, g3 = make_graph(8), make_graph(16), make_graph(32)
    db.add_measurement(g1, "gpu", measured([1.0, 1.0, 1.0]))
    db.add_measurement(g2, "gpu", measured([4.0, 4.0, 4.0]))
    a = answer(db, g1, "gpu", card)
    assert a.source == "measured" and a.latency_ms == 1.0
    assert a.describe() == "measured: 1 ms (median of 3 runs, IQR 0 ms) on gpu"
    # hand check: ms/GFLOP ratios of g1 and g2, their median, times g3's FLOPs
    ratios = sorted([1.0 / (g1.flops / 1e9), 4.0 / (g2.flops / 1e9)])
    expected = g3.flops / 1e9 * (ratios[0] + ratios[1]) / 2
    p = answer(db, g3, "gpu", card, record=True)
    assert p.source == "predicted" and p.latency_ms == pytest.approx(expected)
    assert p.predictor is not None and p.predictor.startswith(FLOPS_FIT) and "n=2" in p.predictor
    assert p.describe().startswith("predicted: ") and "fallback estimate" in p.describe()
    assert db.stats()["predictions"] == 1


def test_roofline_fallback_hand_checked() -> None:
    card = load_card({"name": "toy", "kind": "gpu", "vendor": "x", "chip": "y", "peak_tflops_fp32": 1.0,
                      "memory_bandwidth_gbs": 100.0})
    g = make_graph(8)
    p = fallback_predictor(None, "toy", card)
    assert p.name == ROOFLINE
    expected = max(g.flops / 1e12, g.mem_bytes / 100e9) * 1e3
    assert p(g, card) == pytest.approx(expected)
    bare = load_card({"name": "bare", "kind": "gpu", "vendor": "x", "chip": "y"})
    with pytest.raises(LedgformerError, match="no prediction for platform 'bare'"):
        fallback_predictor(None, "bare", bare)


def test_pluggable_predictor(db: LatencyDB) -> None:
    seen = []

    def fn(graph: ArchGraph, card: object) -> float:
        seen.append((graph.content_hash(), card))
        return 7.5

    card = load_card(CARD)
    a = answer(db, make_graph(8), "gpu", card, Predictor("toy", "0.1", fn), record=True)
    assert (a.latency_ms, a.source, a.predictor) == (7.5, "predicted", "toy 0.1")
    assert seen[0][1] is card
    assert db.prediction(a.graph_hash, "gpu", "toy", "0.1") == 7.5
    with pytest.raises(LedgformerError, match=r"returned -1\.0 ms"):
        answer(db, make_graph(8), "gpu", card, Predictor("bad", "0", lambda g, c: -1.0))


def test_real_measurement_is_stored_whole(db: LatencyDB) -> None:
    """A ``ledgformer.measure.Measurement`` goes in as is: card -> platform, other fields -> extra."""
    measure = pytest.importorskip("ledgformer.measure").measure
    from ledgformer.graph.onnx_import import load_onnx

    proto = onnx.load_model_from_string(tiny_onnx())
    m = measure(proto, runtime="onnxruntime", threads=1, warmup=1, repeat=6, max_rel_iqr=100.0)
    g = load_onnx(proto)
    db.add_measurement(g, m.platform, m)
    assert db.platform_card(m.platform) == m.card
    a = answer(db, g, m.platform, m.card)
    assert (a.source, a.latency_ms, a.n_repeats) == ("measured", m.median_ms, len(m.times_ms))
    with db.engine.connect() as conn:
        extra = json.loads(conn.exec_driver_sql("SELECT extra_json FROM measurements").scalar())
    assert extra["timestamp"] == m.timestamp and "card" not in extra and "times_ms" not in extra


# ---- exports ---------------------------------------------------------------------------------

def _filled(db: LatencyDB) -> tuple[ArchGraph, ArchGraph]:
    db.add_platform("gpu", CARD)
    db.add_platform("phone", "help/pixel3")
    g1, g2 = make_graph(8), make_graph(16)
    db.add_measurement(g1, "gpu", measured([1.0, 1.1]))
    db.add_measurement(g1, "gpu", measured([1.2, 1.3]))  # supersedes the first
    db.add_measurement(g2, "gpu", measured([2.0, 2.1]))
    db.add_measurement(g1, "phone", measured([9.0, 9.5]))
    return g1, g2


def test_export_records(db: LatencyDB) -> None:
    g1, g2 = _filled(db)
    data = db.export_records()
    assert data.meta["measurements_total"] == 4 and data.meta["superseded"] == 1
    got = {(r.graph_id, r.device): r.target for r in data.records}
    assert got == {(g1.content_hash(), "gpu"): pytest.approx(1.25),
                   (g2.content_hash(), "gpu"): pytest.approx(2.05),
                   (g1.content_hash(), "phone"): pytest.approx(9.25)}
    assert set(data.graphs) == {g1.content_hash(), g2.content_hash()}
    assert data.meta["cards"]["phone"] == load_card("help/pixel3").to_dict()


def test_export_nnlqp(db: LatencyDB, tmp_path: Path) -> None:
    g1, _ = _filled(db)
    out = db.export_nnlqp(tmp_path / "nnlqp")
    lines = (out / "gt.txt").read_text().splitlines()
    assert len(lines) == 3
    ident, path, batch, latency, family, platform, split = lines[0].split()
    assert (ident, batch, latency, family, split) == ("00001", "1", "1.25", "test", "all")
    assert path == f"ir/{g1.content_hash()}.json"
    assert ArchGraph.from_json((out / path).read_text()).content_hash() == g1.content_hash()
    platforms = json.loads((out / "platforms.json").read_text())
    assert platforms[platform]["name"] in ("gpu", "phone")
    assert "1 older measurements" in (out / "README.txt").read_text()
    with pytest.raises(LedgformerError, match="must be new or empty"):
        db.export_nnlqp(out)


# ---- CLI -------------------------------------------------------------------------------------

def test_cli_query_db_stats_export(db: LatencyDB, db_url: str, tmp_path: Path, capsys) -> None:
    g = make_graph(8)
    db.add_platform("gpu", CARD)
    db.add_measurement(g, "gpu", measured([2.0, 2.5, 3.0]))
    ir = tmp_path / "g.json"
    ir.write_text(g.to_json())
    assert main(["query", str(ir), "--platform", "gpu", "--db", db_url]) == 0
    assert capsys.readouterr().out.strip() == "measured: 2.5 ms (median of 3 runs, IQR 0.5 ms) on gpu"
    other = tmp_path / "h.json"
    other.write_text(make_graph(16).to_json())
    assert main(["query", str(other), "--platform", "gpu", "--db", db_url, "--json",
                 "--predictor", FLOPS]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "predicted" and out["predictor"].startswith(FLOPS_FIT)
    assert main(["query", str(other), "--platform", "no-such-platform", "--db", db_url]) == 2
    assert "platform 'no-such-platform' is not in the database" in capsys.readouterr().err
    assert main(["db", "stats", "--check", "--json", "--db", db_url]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["measurements"], stats["predictions"], stats["problems"]) == (1, 1, [])
    assert main(["db", "export", "--format", "records", str(tmp_path / "r.json"), "--db", db_url]) == 0
    assert len(json.loads((tmp_path / "r.json").read_text())["records"]) == 1
    assert main(["db", "migrate", "--db", db_url]) == 0
    assert "already at revision" in capsys.readouterr().out


def test_cli_query_default_is_the_shipped_predictor(db: LatencyDB, db_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """No --predictor: the shipped predictor `ledgformer predict` picks (latency-all; the NB201 one
    for arch strings), labelled with its checkpoint hash and stored under it; `flops` is the old
    fallback, stored apart; a measured graph loads no predictor at all."""
    from ledgformer.api import Predictor as Trained
    from ledgformer.spaces import nb201

    versions = use_tiny_shipped(tmp_path / "shipped", monkeypatch)
    g = make_graph(16)
    db.add_platform("gpu", CARD)
    db.add_measurement(make_graph(8), "gpu", measured([2.0, 2.5, 3.0]))
    ir = tmp_path / "h.json"
    ir.write_text(g.to_json())

    def query(*argv: str) -> dict:
        assert main(["query", *argv, "--platform", "gpu", "--db", db_url, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    out = query(str(ir))
    label = f"ledgformer:latency-all {versions['latency-all']}"
    assert (out["source"], out["predictor"]) == ("predicted", label)
    assert out["latency_ms"] == pytest.approx(Trained.load("latency-all").predict(g, CARD), rel=1e-6)
    assert db.prediction(g.content_hash(), "gpu", "ledgformer:latency-all", versions["latency-all"]) == \
        pytest.approx(out["latency_ms"])
    flops = query(str(ir), "--predictor", FLOPS)
    assert flops["predictor"].startswith(FLOPS_FIT) and flops["latency_ms"] != out["latency_ms"]
    assert db.stats()["predictions"] == 2  # one row per (predictor, version): neither overwrote the other
    arch = nb201.all_arch_strings()[5]
    nb = query(arch)
    assert nb["predictor"] == f"ledgformer:help-nb201-latency {versions['help-nb201-latency']}"
    assert nb["graph_hash"] == nb201.network_graph(arch).content_hash()
    monkeypatch.setattr(Trained, "load", None)  # a measured answer must not touch the predictor
    (tmp_path / "g.json").write_text(make_graph(8).to_json())
    assert query(str(tmp_path / "g.json"))["source"] == "measured"


def test_default_predictor_is_the_real_shipped_one() -> None:
    """Unpatched, the default is the shipped latency-all, versioned by its checkpoint's hash."""
    import hashlib
    import importlib.util

    from ledgformer.api.shipped import shipped_checkpoint

    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("the shipped predictors use the minilm encoder (sentence-transformers not installed)")
    source = load_predictor()
    path = shipped_checkpoint("latency-all")[0]
    assert source is not None and source.name == "ledgformer:latency-all"
    assert source.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert load_predictor(FLOPS) is None


# ---- concurrency and crash safety -------------------------------------------------------------

WRITER = """
import sys
from ledgformer.db import LatencyDB, median_iqr
from ledgformer.graph.builder import GraphBuilder

class M:
    def __init__(self, times):
        self.times_ms = times
        self.median_ms, self.iqr_ms = median_iqr(times)

url, tag, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = LatencyDB(url)
db.add_platform("gpu", "help/1080ti_32")
print("ready", flush=True)
i = 0
while count < 0 or i < count:
    b = GraphBuilder(name=f"w{tag}-{i}")
    x = b.input((1, 3, 8, 8))
    b.conv(x, 1 + (tag * 100003 + i) % 4096, 1)
    times = [1.0 + ((i * 7 + k) % 13) / 10 for k in range(200)]
    db.add_measurement(b.build(), "gpu", M(times))
    print("ok", i, flush=True)
    i += 1
"""


def _writer(url: str, tag: int, count: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", WRITER, url, str(tag), str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _check_complete(db: LatencyDB, expected: int | tuple[int, int]) -> None:
    n = db.stats()["measurements"]
    lo, hi = (expected, expected) if isinstance(expected, int) else expected
    assert lo <= n <= hi
    assert db.verify() == []
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT n_repeats, times_ms FROM measurements").all()
    assert all(n_rep == 200 == len(json.loads(t)) for n_rep, t in rows)


def test_two_writers_lose_nothing(db: LatencyDB, db_url: str) -> None:
    per = 25
    procs = [_writer(db_url, tag, per) for tag in (1, 2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.count("ok ") == per
    _check_complete(db, 2 * per)
    assert db.stats()["graphs"] == 2 * per


def test_kill_9_mid_write_leaves_database_intact(db: LatencyDB, db_url: str) -> None:
    proc = _writer(db_url, 3, -1)  # writes until killed
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    done = 0
    deadline = time.monotonic() + 60
    while done < 30 and time.monotonic() < deadline:
        if proc.stdout.readline().startswith("ok "):
            done += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    rest = proc.stdout.read()
    done += rest.count("ok ")
    assert proc.returncode == -signal.SIGKILL and done >= 30
    # every write the writer reported is there; at most one more committed before its print
    _check_complete(db, (done, done + 1))
    with LatencyDB(db_url) as fresh:  # a new process-level open sees a consistent database too
        assert fresh.verify() == []
