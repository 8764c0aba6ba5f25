"""Benchmark suites: loading, the quick subset, resume, and the tables (one tiny real suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgformer.cli.main import main
from ledgformer.errors import LedgformerError
from ledgformer.train.bench import load_suite, markdown, summarise

REPO = Path(__file__).resolve().parents[1]


def _results(values: dict[tuple[str, str], list[float]]) -> dict:
    runs = [{"variant": v, "setting": s, "seed": i, "metrics": {"test.kendall_tau": x}}
            for (v, s), xs in values.items() for i, x in enumerate(xs)]
    return {"suite": "toy", "quick": False, "settings": {"N=10": {}, "N=20": {}},
            "variants": {"ours": {}, "base": {}}, "metrics": ["test.kendall_tau"], "seeds": [0, 1],
            "machine": {"cpu": "cpu", "cores": 2, "torch": "x"}, "runs": runs, "wall_seconds": 60}


def test_summary_and_markdown_mean_std_and_bold_best() -> None:
    res = _results({("ours", "N=10"): [0.5, 0.7], ("base", "N=10"): [0.4, 0.4], ("ours", "N=20"): [0.9]})
    table = summarise(res, "test.kendall_tau")
    assert table[("ours", "N=10")] == [0.5, 0.7]
    md = markdown(res)
    assert "| ours | **0.600 ± 0.100** | **0.900** |" in md
    assert "| base | 0.400 ± 0.000 | – |" in md


def test_error_metrics_bold_the_lowest() -> None:
    res = _results({("ours", "N=10"): [10.0], ("base", "N=10"): [20.0]})
    res["metrics"] = ["test.mape"]
    for r in res["runs"]:
        r["metrics"] = {"test.mape": r["metrics"]["test.kendall_tau"]}
    md = markdown(res)
    assert "| ours | **10.000** |" in md and "| base | 20.000 |" in md


def test_suite_errors(tmp_path: Path) -> None:
    with pytest.raises(LedgformerError, match="not found"):
        load_suite(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: x.yaml\nvariants: {a: {}}\nmetrics: [m]\ntypo: 1\n")
    with pytest.raises(LedgformerError, match="typo"):
        load_suite(bad)
    assert main(["bench", "no-such-suite"]) == 2


def test_shipped_suites_load() -> None:
    for path in sorted((REPO / "configs" / "bench").glob("*.yaml")):
        suite = load_suite(path)
        assert Path(suite["base"]).is_file(), path


def test_tiny_suite_runs_and_resumes(tmp_path: Path, data_root: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_DATA", str(data_root))
    suite = tmp_path / "tiny.yaml"
    suite.write_text(f"""
base: {REPO / 'configs' / 'nb201-acc-781.yaml'}
seeds: [0, 1]
settings: {{N=60: {{data.n_train: 60}}}}
variants:
  ours: {{features.encoder: onehot, model.d_model: 16, model.n_layers: 1, train.epochs: 2}}
  gbdt: {{model: {{name: gbdt, encoding: position, n_estimators: 20}}}}
metrics: [test.kendall_tau]
quick: {{seeds: [0], variants: [gbdt]}}
""")
    res = tmp_path / "res"
    args = ["bench", str(suite), "--results-dir", str(res), "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--quick"]) == 0
    quick = json.loads((res / "tiny-quick.json").read_text())
    assert [(r["variant"], r["seed"]) for r in quick["runs"]] == [("gbdt", 0)]

    assert main(args) == 0
    full = json.loads((res / "tiny.json").read_text())
    runs = sorted((r["variant"], r["seed"]) for r in full["runs"])
    assert runs == [("gbdt", 0), ("gbdt", 1), ("ours", 0), ("ours", 1)]
    assert all(-1 <= r["metrics"]["test.kendall_tau"] <= 1 for r in full["runs"])
    assert full["machine"]["cores"] and full["versions"]["ir_version"]
    assert "| ours |" in (res / "tiny.md").read_text()
    assert (res / "tiny_test_kendall_tau.png").stat().st_size > 0

    def fail(cfg: dict) -> dict:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("ledgformer.train.trainer.run_experiment", fail)
    assert main(args) == 0  # resumes: every run is already in the results file
    again = json.loads((res / "tiny.json").read_text())
    assert [r["key"] for r in again["runs"]] == [r["key"] for r in full["runs"]]
