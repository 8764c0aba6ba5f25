"""Benchmark suites: loading, the quick subset, resume, and the tables (one tiny real suite)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ledgformer.cli.main import main
from ledgformer.errors import LedgformerError
from ledgformer.train.bench import load_suite
from ledgformer.train.bench_report import markdown, summarise

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


def test_plot_of_a_metric_no_run_has_yet_warns_nothing(tmp_path: Path) -> None:
    """A suite plots after every run: a metric its first runs lack (k10.* of a FLOPs run) gives an
    empty plot, not a matplotlib warning in the user's terminal."""
    import warnings

    from ledgformer.train.bench_report import plot

    res = _results({("ours", "N=10"): [0.5]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot(res, "k10.mape", tmp_path / "empty.png").is_file()
        assert plot(res, "test.kendall_tau", tmp_path / "one.png").is_file()


def test_suite_errors(tmp_path: Path) -> None:
    with pytest.raises(LedgformerError, match="not found"):
        load_suite(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: x.yaml\nvariants: {a: {}}\nmetrics: [m]\ntypo: 1\n")
    with pytest.raises(LedgformerError, match="typo"):
        load_suite(bad)
    assert main(["bench", "no-such-suite"]) == 2


def test_suite_set_applies_to_every_run_and_settings_and_variants_win(tmp_path: Path) -> None:
    from ledgformer.train.bench import plan_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(f"base: {REPO / 'configs' / 'nb201-acc-781.yaml'}\n"
                     "set: {train.epochs: 3, train.lr: 0.01}\n"
                     "settings: {a: {}, b: {train.epochs: 5}}\n"
                     "variants: {x: {}, y: {train.lr: 0.02}}\nmetrics: [test.kendall_tau]\n")
    plan = plan_suite(suite, results_dir=tmp_path, runs_dir=tmp_path / "runs")
    got = {(h["setting"], h["variant"]): (c["train"]["epochs"], c["train"]["lr"]) for _, h, c in plan["todo"]}
    assert got == {("a", "x"): (3, 0.01), ("a", "y"): (3, 0.02), ("b", "x"): (5, 0.01), ("b", "y"): (5, 0.02)}
    suite.write_text(suite.read_text().replace("set: {train.epochs: 3, train.lr: 0.01}", "set: [1]"))
    with pytest.raises(LedgformerError, match="'set' is a mapping"):
        load_suite(suite)


def test_shipped_suites_and_studies_load() -> None:
    for path in sorted((REPO / "configs").glob("[bs]*/*.yaml")):  # bench/ and studies/
        suite = load_suite(path)
        assert Path(suite["base"]).is_file(), path


def test_tables_from_shows_another_suites_tables(tmp_path: Path) -> None:
    base = REPO / "configs" / "nb201-acc-781.yaml"
    table = "{title: per device, columns: {a: test.per_device.a.mape}}"
    head = f"base: {base}\nvariants: {{a: {{}}}}\nmetrics: [m]\n"
    (tmp_path / "suite.yaml").write_text(f"{head}tables: [{table}]\n")
    study = tmp_path / "sub" / "study.yaml"
    study.parent.mkdir()
    study.write_text(f"{head}tables_from: ../suite.yaml\n")
    got = load_suite(study)
    assert got["tables"] == [{"title": "per device", "columns": {"a": "test.per_device.a.mape"}}]
    assert "tables_from" not in got
    study.write_text(study.read_text() + f"tables: [{table}]\n")
    with pytest.raises(LedgformerError, match="not both"):
        load_suite(study)


TINY_GBDT = "gbdt: {model: {name: gbdt, encoding: position, n_estimators: 20}}"


def _tiny_suite(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> list[str]:
    """A tiny NB201 suite (N = 60, Kendall tau) with ``body`` (seeds, variants ...); the CLI args."""
    monkeypatch.setenv("LEDGFORMER_DATA", str(data_root))
    suite = tmp_path / "tiny.yaml"
    suite.write_text(f"base: {REPO / 'configs' / 'nb201-acc-781.yaml'}\n"
                     "settings: {N=60: {data.n_train: 60}}\nmetrics: [test.kendall_tau]\n" + body)
    return ["bench", str(suite), "--results-dir", str(tmp_path / "res"), "--runs-dir", str(tmp_path / "runs")]


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(cfg: dict) -> dict:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("ledgformer.train.experiment.run_experiment", fail)


def test_tiny_suite_runs_and_resumes(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = _tiny_suite(tmp_path, data_root, monkeypatch, f"""seeds: [0, 1]
variants:
  ours: {{features.encoder: onehot, model.d_model: 16, model.n_layers: 1, train.epochs: 2,
         train.min_steps: 0}}
  {TINY_GBDT}
quick: {{seeds: [0], variants: [gbdt]}}
""")
    res = tmp_path / "res"
    assert main([*args, "--quick"]) == 0
    quick = json.loads((res / "tiny-quick.json").read_text())
    assert [(r["variant"], r["seed"]) for r in quick["runs"]] == [("gbdt", 0)]

    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0  # plans only: nothing trains, no results file
    out = capsys.readouterr().out
    assert "4 runs planned, 0 reused from (no results file yet), 4 would train" in out
    assert "train  N=60 | ours | seeds 0, 1" in out and not (res / "tiny.json").exists()

    assert main(args) == 0
    out = capsys.readouterr().out  # not a terminal: one plain progress line per finished run
    assert "[3/4] N=60 | ours | seed 1: " in out and out.count(" min, ETA ") == 4
    full = json.loads((res / "tiny.json").read_text())
    runs = sorted((r["variant"], r["seed"]) for r in full["runs"])
    assert runs == [("gbdt", 0), ("gbdt", 1), ("ours", 0), ("ours", 1)]
    assert all(-1 <= r["metrics"]["test.kendall_tau"] <= 1 for r in full["runs"])
    assert full["machine"]["cores"] and full["versions"]["ir_version"]
    assert full["command"].endswith(f"--results-dir {res} --runs-dir {tmp_path / 'runs'}")  # rerunnable
    assert "| ours |" in (res / "tiny.md").read_text()
    assert (res / "tiny_test_kendall_tau.png").stat().st_size > 0

    _forbid_training(monkeypatch)
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    assert f"4 runs planned, 4 reused from {res / 'tiny.json'}, 0 would train" in capsys.readouterr().out
    assert main(args) == 0  # resumes: every run is already in the results file
    again = json.loads((res / "tiny.json").read_text())
    assert [r["key"] for r in again["runs"]] == [r["key"] for r in full["runs"]]
    assert again["wall_seconds"] >= full["wall_seconds"]  # a resumed suite counts the earlier time

    # a study seeded with another suite's file reuses its runs but not its wall time
    (res / "tiny.json").write_text(json.dumps({**again, "suite": "another-study", "wall_seconds": 1e6}))
    assert main(args) == 0
    seeded = json.loads((res / "tiny.json").read_text())
    assert len(seeded["runs"]) == 4 and seeded["wall_seconds"] < 1e5


def test_suite_tables_have_one_column_per_metric() -> None:
    res = _results({("ours", "N=10"): [0.5, 0.7], ("base", "N=10"): [0.4, 0.4]})
    for r in res["runs"]:
        r["metrics"]["k10.per_device.a.mape"] = 10.0 if r["variant"] == "ours" else 30.0
    res["settings"] = {"N=10": {}}
    res["tables"] = [{"title": "per device", "columns": {"rho": "test.kendall_tau",
                                                         "a MAPE": "k10.per_device.a.mape"}}]
    md = markdown(res)
    assert "## per device" in md
    assert "| ours | **0.600 ± 0.100** | **10.000 ± 0.000** |" in md  # rho: higher wins, MAPE: lower
    assert "| base | 0.400 ± 0.000 | 30.000 ± 0.000 |" in md


def test_limit_and_shots_are_checked(tmp_path: Path) -> None:
    base = REPO / "configs" / "nb201-acc-781.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {base}\nvariants: {{a: {{}}}}\nmetrics: [m]\nlimit: {{b: [default]}}\n")
    with pytest.raises(LedgformerError, match="unknown variant 'b'"):
        load_suite(bad)
    bad.write_text(f"base: {base}\nvariants: {{a: {{}}}}\nmetrics: [m]\nlimit: {{a: [N=1]}}\n")
    with pytest.raises(LedgformerError, match="unknown setting"):
        load_suite(bad)
    bad.write_text(f"base: {base}\nvariants: {{a: {{}}}}\nmetrics: [m]\nshots: [0, 10]\n")
    with pytest.raises(LedgformerError, match="K >= 1"):
        load_suite(bad)


def test_readme_block_is_generated_from_results(tmp_path: Path) -> None:
    from ledgformer.train.bench_report import README_BEGIN, README_END

    results = tmp_path / "results"
    results.mkdir()
    quick = _results({("ours", "N=10"): [0.5], ("base", "N=10"): [0.4]})
    quick["quick"] = True
    (results / "toy-quick.json").write_text(json.dumps(quick))
    (results / "speed.json").write_text(json.dumps({"not": "a suite"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n## Results\n{README_BEGIN}\nold text\n{README_END}\n\n## Next\n")
    assert main(["bench", "--readme", str(readme), "--results-dir", str(results)]) == 0
    text = readme.read_text()
    assert "old text" not in text and "### toy (quick)" in text and "Quick mode only" in text
    assert text.startswith("# Title") and text.endswith("## Next\n")
    full = _results({("ours", "N=10"): [0.9], ("base", "N=10"): [0.4]})
    (results / "toy.json").write_text(json.dumps(full))  # the full suite replaces the quick one
    assert main(["bench", "--readme", str(readme), "--results-dir", str(results)]) == 0
    text = readme.read_text()
    assert "### toy\n" in text and "Quick mode only" not in text and "**0.900**" in text
    (tmp_path / "plain.md").write_text("no markers\n")
    assert main(["bench", "--readme", str(tmp_path / "plain.md"), "--results-dir", str(results)]) == 2
    assert main(["bench"]) == 2


def test_few_shot_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """HELP protocol: train, then fine-tune on K samples of each test device -> k<K>.* metrics;
    the runs record the hardware cards they read."""
    from test_trainer import synthetic_task

    def task(cfg: dict):
        data = synthetic_task("latency")
        data.devices = ["help/1080ti_1", "help/raspi4"]
        # as a HELP task does: the split names its training devices (the config's K-shot recipe,
        # params: reference, mixes them)
        data.split_json = '{"devices": {"train": ["help/1080ti_1"], "test": ["help/raspi4"]}}'
        train = data.parts["train"]
        data.parts["shots"] = np.concatenate([train[data.device_row[train] == d][:3] for d in (0, 1)])
        return data

    monkeypatch.setattr("ledgformer.train.experiment.build_task", task)
    monkeypatch.setattr("ledgformer.train.finetune.build_task", task)
    suite = tmp_path / "help.yaml"
    suite.write_text(f"""
base: {REPO / 'configs' / 'help-nb201-zeroshot.yaml'}
shots: [3]
settings:
  tiny: {{data.eval_all: false, data.test_devices: [raspi4], train.epochs: 2}}
variants:
  ours: {{model.d_model: 8, model.n_layers: 1, model.n_heads: 1}}
  flops: {{model: {{name: flops}}}}
metrics: [test.mean_device_spearman, k3.mean_device_spearman, k3.mape]
""")
    res = tmp_path / "res"
    assert main(["bench", str(suite), "--results-dir", str(res), "--runs-dir", str(tmp_path / "runs")]) == 0
    runs = json.loads((res / "help.json").read_text())["runs"]
    assert [r["variant"] for r in runs] == ["ours", "flops"]
    for r in runs:
        m = r["metrics"]
        per = [m[f"k3.per_device.{d}.spearman"] for d in ("1080ti_1", "raspi4")]
        assert all(-1 <= x <= 1 for x in per) and m["k3.mape"] > 0
        assert m["k3.mean_device_spearman"] == pytest.approx(np.mean(per))
    assert "## k3.mape" in (res / "help.md").read_text()

    # every run records the cards it read; editing one of them retrains exactly the runs that read it
    from ledgformer.hardware import load_card
    from ledgformer.train.bench import plan_suite

    names = ("help/1080ti_1", "help/raspi4")
    assert all(r["cards"] == {n: load_card(n).fingerprint() for n in names} for r in runs)
    cards = tmp_path / "cards"
    (cards / "help").mkdir(parents=True)
    monkeypatch.setenv("LEDGFORMER_CARDS", str(cards))
    unread = {**load_card("help/pixel2").to_dict(), "clock_ghz": 9.0}
    (cards / "help" / "pixel2.yaml").write_text(yaml.safe_dump(unread))
    args = ["bench", str(suite), "--results-dir", str(res), "--runs-dir", str(tmp_path / "runs"), "--dry-run"]
    plan = plan_suite(suite, results_dir=res, runs_dir=tmp_path / "runs")
    assert (len(plan["reused"]), plan["todo"], plan["stale_cards"]) == (2, [], {})
    read = {**load_card("help/raspi4").to_dict(), "clock_ghz": 2.0}  # a corrected spec figure
    (cards / "help" / "raspi4.yaml").write_text(yaml.safe_dump(read))
    plan = plan_suite(suite, results_dir=res, runs_dir=tmp_path / "runs")
    assert len(plan["todo"]) == 2 and plan["stale_cards"] == {0: ["help/raspi4"], 1: ["help/raspi4"]}
    capsys.readouterr()
    assert main(args) == 0
    assert "(2 of them ran before a change to the hardware cards they read: help/raspi4)" \
        in capsys.readouterr().out


def test_undefined_values_show_as_na_and_never_win() -> None:
    res = _results({("ours", "N=10"): [0.5], ("base", "N=10"): [float("nan")]})
    res["settings"] = {"N=10": {}}
    md = markdown(res)
    assert "| base | n/a |" in md and "| ours | **0.500** |" in md


def test_a_new_default_config_key_does_not_rerun_finished_runs(tmp_path: Path, data_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgformer.train.config import DEFAULTS

    args = _tiny_suite(tmp_path, data_root, monkeypatch, f"variants:\n  {TINY_GBDT}\n")
    assert main(args) == 0
    path = tmp_path / "res" / "tiny.json"
    finished = json.loads(path.read_text())

    _forbid_training(monkeypatch)
    older = json.loads(json.dumps(finished))  # as if the finetune section had been added since
    del older["runs"][0]["config"]["finetune"]
    older["runs"][0]["key"] = "from an older version"
    path.write_text(json.dumps(older))
    assert main(args) == 0
    assert json.loads(path.read_text())["runs"][0]["metrics"] == finished["runs"][0]["metrics"]

    assert finished["runs"][0]["config"]["train"]["ema"] != DEFAULTS["train"]["ema"]
    del older["runs"][0]["config"]["train"]["ema"]  # a key that is NOT at its default: rerun
    path.write_text(json.dumps(older))
    with pytest.raises(AssertionError, match="trained again"):
        main(args)


def test_a_new_model_option_pinned_at_its_default_reuses_finished_runs() -> None:
    """A LeDG-Former option added since a run was made matches it when a study pins it at the
    config dataclass default; at another value, or for another model, it does not."""
    from ledgformer.train.bench import RESULTS_VERSION, _earlier_run

    head = {"setting": "N=10", "variant": "ours", "seed": 0}
    run = {**head, "results_version": RESULTS_VERSION, "metrics": {},
           "config": {"model": {"name": "ledgformer", "d_model": 8}}}
    cfg = {"model": {"name": "ledgformer", "d_model": 8, "local_mp": False}}
    assert _earlier_run([run], head, cfg, ()) == run
    cfg["model"]["local_mp"] = True
    assert _earlier_run([run], head, cfg, ()) is None
    gin = {**run, "config": {"model": {"name": "gin", "d_model": 8}}}
    assert _earlier_run([gin], head, {"model": {"name": "gin", "d_model": 8, "local_mp": False}}, ()) is None
    # any registered model: its constructor's keyword defaults count (GIN readout "sum")
    assert _earlier_run([gin], head, {"model": {"name": "gin", "d_model": 8, "readout": "sum"}}, ()) == gin
    assert _earlier_run([gin], head, {"model": {"name": "gin", "d_model": 8, "readout": "mean"}}, ()) is None


def test_model_defaults_from_config_class_or_constructor() -> None:
    from ledgformer.model.registry import model_defaults

    assert model_defaults("ledgformer")["local_mp"] is False
    assert model_defaults("gin")["n_layers"] == 4 and "self" not in model_defaults("gin")
    with pytest.raises(LedgformerError, match="unknown model 'nope'"):
        model_defaults("nope")


def test_code_version_and_rerun_retrain_finished_runs(tmp_path: Path, data_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run is reused only with the same results version; --rerun VARIANT trains it again."""
    from ledgformer.train import bench

    args = _tiny_suite(tmp_path, data_root, monkeypatch, f"variants:\n  {TINY_GBDT}\n")
    assert main(args) == 0
    path = tmp_path / "res" / "tiny.json"
    run = json.loads(path.read_text())["runs"][0]
    assert run["results_version"] == bench.RESULTS_VERSION and "commit" in run

    _forbid_training(monkeypatch)
    assert main(args) == 0  # same version: resumed
    capsys.readouterr()
    assert main([*args, "--dry-run", "--rerun", "gbdt"]) == 0
    assert "1 runs planned, 0 reused" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="trained again"):
        main([*args, "--rerun", "gbdt"])
    assert main([*args, "--rerun", "gdbt"]) == 2
    assert "unknown variant(s) ['gdbt']; this suite's variants: gbdt" in capsys.readouterr().err
    monkeypatch.setattr(bench, "RESULTS_VERSION", bench.RESULTS_VERSION + 1)
    with pytest.raises(AssertionError, match="trained again"):
        main(args)


def test_git_commit_is_dirty_for_code_changes_not_for_results(tmp_path: Path) -> None:
    import subprocess

    from ledgformer.train.bench import git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "suite.json").write_text("{}")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    sha = git_commit(tmp_path)
    assert sha is not None and len(sha) == 40
    (tmp_path / "results" / "suite.json").unlink()  # a suite's results moved aside: still clean
    assert git_commit(tmp_path / "results") == sha
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == sha + "+dirty"
