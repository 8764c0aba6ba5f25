"""scripts/compare_results.py: the check that a rerun reproduces committed bench results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_results", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _write(path: Path, mape: float, tau: float, lr: float = 0.002, extra: dict | None = None) -> Path:
    cfg = {"seed": 0, "out": str(path), "train": {"lr": lr, **(extra or {})}}
    run = {"setting": "N=10", "variant": "ours", "seed": 0, "config": cfg,
           "metrics": {"test.mape": mape, "test.kendall_tau": tau}}
    path.write_text(json.dumps({"metrics": ["test.mape", "test.kendall_tau"], "runs": [run]}))
    return path


def test_within_and_beyond_tolerance(compare, tmp_path, capsys) -> None:
    old = _write(tmp_path / "old.json", 20.0, 0.800)
    assert compare([str(old), str(_write(tmp_path / "a.json", 21.0, 0.805))]) == 0  # 5 %, .005
    assert compare([str(old), str(_write(tmp_path / "b.json", 23.0, 0.800))]) == 1  # 15 % worse
    assert "test.mape" in capsys.readouterr().out.split("beyond tolerance")[0]
    assert compare([str(old), str(_write(tmp_path / "c.json", 20.0, 0.780))]) == 1  # tau -.02


def test_config_changes(compare, tmp_path, capsys) -> None:
    old = _write(tmp_path / "old.json", 20.0, 0.8)
    # a key added since (not in the old config) is no difference; a changed value is
    assert compare([str(old), str(_write(tmp_path / "a.json", 20.0, 0.8, extra={"ema": 0.9}))]) == 0
    assert compare([str(old), str(_write(tmp_path / "b.json", 99.0, 0.1, lr=0.01))]) == 2
    out = capsys.readouterr()
    assert "configs differ in train.lr: not compared" in out.out
    assert "nothing could be compared" in out.err


def test_bad_input_says_which_file(compare, tmp_path, capsys) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert compare([str(_write(tmp_path / "old.json", 20.0, 0.8)), str(bad)]) == 2
    assert "notes.txt: not a ledgformer bench result file" in capsys.readouterr().err


def test_seed_spread_widens_the_tolerance(compare, tmp_path) -> None:
    old = _write(tmp_path / "old.json", 20.0, 0.750)
    new = _write(tmp_path / "new.json", 20.0, 0.790)  # +.04: beyond .01
    full = tmp_path / "full.json"
    runs = [{"setting": "N=10", "variant": "ours", "seed": s, "config": {},
             "metrics": {"test.kendall_tau": t, "test.note": float("nan")}}
            for s, t in enumerate([0.72, 0.75, 0.78])]
    full.write_text(json.dumps({"metrics": ["test.kendall_tau"], "runs": runs}))  # sd .03
    assert compare([str(old), str(new)]) == 1
    assert compare([str(old), str(new), "--spread", str(full)]) == 0
    assert compare([str(old), str(new), "--spread", str(full), "--n-sd", "1"]) == 1
