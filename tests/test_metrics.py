"""Metrics on tiny hand-checked arrays, their units, and the report/plot writers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ledgformer.errors import LedgformerError
from ledgformer.train import metrics as M
from ledgformer.train.report import error_bar_plot, scatter_plot, write_metrics_json


def test_mape_is_in_percent() -> None:
    # |110-100|/100 = 10 %, |180-200|/200 = 10 %
    assert M.mape([100, 200], [110, 180]) == pytest.approx(10.0)
    assert M.mape([50.0], [75.0]) == pytest.approx(50.0)


def test_rmse_and_rmspe() -> None:
    assert M.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    # relative errors 0.1 and 0.3 -> sqrt((0.01 + 0.09) / 2) = 0.2236 -> 22.36 %
    assert M.rmspe([100, 200], [110, 260]) == pytest.approx(100 * math.sqrt(0.05))


def test_acc_within_is_a_fraction_and_inclusive() -> None:
    t = [100, 100, 100, 100]
    p = [100, 101, 105, 111]  # relative errors 0, 1 %, 5 %, 11 %
    assert M.acc_within(t, p, 0.01) == pytest.approx(0.5)
    assert M.acc_within(t, p, 0.05) == pytest.approx(0.75)
    assert M.acc_within(t, p, 0.10) == pytest.approx(0.75)
    assert M.acc_within([100], [110], 0.10) == 1.0  # exactly 10 % counts as within 10 %
    with pytest.raises(ValueError, match="threshold"):
        M.acc_within(t, p, 0)


def test_rank_correlations_of_known_permutations() -> None:
    t = [1, 2, 3, 4]
    # one discordant pair of six -> tau = (5 - 1) / 6; rho = 1 - 6*2 / (4*15) = 0.8
    assert M.kendall_tau(t, [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert M.spearman(t, [1, 3, 2, 4]) == pytest.approx(0.8)
    assert M.kendall_tau(t, [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert M.spearman(t, [10, 20, 30, 40]) == pytest.approx(1.0)
    assert math.isnan(M.kendall_tau(t, [5, 5, 5, 5]))  # undefined, not a made-up number
    assert math.isnan(M.spearman([3.0], [1.0]))


def test_precision_at_topk_respects_direction() -> None:
    t = [1, 2, 3, 4, 5]
    p = [1, 5, 2, 3, 4]
    # lowest two: true {0, 1}, predicted {0, 2}
    assert M.precision_at_topk(t, p, 2, higher_is_better=False) == pytest.approx(0.5)
    # highest one: true {4}, predicted {1}
    assert M.precision_at_topk(t, p, 1, higher_is_better=True) == 0.0
    assert M.precision_at_topk(t, p, 5, higher_is_better=True) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        M.precision_at_topk(t, p, 6, higher_is_better=True)


@pytest.mark.parametrize(
    ("t", "p", "msg"),
    [([1, 2], [1], "equal lengths"), ([], [], "empty"), ([1, 0], [1, 1], "non-positive"),
     ([1, -2], [1, 1], "non-positive"), ([1, 2], [1, float("nan")], "non-finite")],
)
def test_bad_input_raises_clear_value_error(t: list, p: list, msg: str) -> None:
    with pytest.raises(ValueError, match=msg) as info:
        M.mape(t, p)
    assert isinstance(info.value, LedgformerError)


def test_rmse_accepts_non_positive_targets() -> None:
    assert M.rmse([0, -1], [0, 1]) == pytest.approx(math.sqrt(2))


def test_regression_and_grouped_report() -> None:
    t = np.array([10.0, 20.0, 30.0, 40.0, 1.0, 2.0])
    p = np.array([11.0, 19.0, 33.0, 40.0, 1.0, 2.2])
    groups = ["a", "a", "a", "a", "b", "b"]
    rep = M.regression_report(t, p)
    assert rep["n"] == 6
    assert rep["mape"] == pytest.approx(M.mape(t, p))
    assert rep["acc@10%"] == pytest.approx(1.0)
    assert rep["acc@1%"] == pytest.approx(2 / 6)
    assert set(rep) >= {"rmse", "rmspe", "acc@5%", "kendall_tau", "spearman", "precision@top5%"}
    per = M.grouped_report(t, p, groups)
    assert list(per) == ["a", "b"]
    assert per["a"]["n"] == 4
    assert per["a"]["mape"] == pytest.approx((10 + 5 + 10 + 0) / 4)
    assert per["b"]["kendall_tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="groups"):
        M.grouped_report(t, p, groups[:-1])


def test_metric_speed_on_full_nb201_size() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 100, 15625)
    rep = M.regression_report(t, t * rng.uniform(0.9, 1.1, t.size))
    assert 0.8 < rep["kendall_tau"] < 1.0
    assert rep["acc@10%"] == pytest.approx(1.0)


def test_plots_write_png(tmp_path) -> None:
    rng = np.random.default_rng(1)
    t = rng.uniform(1, 50, 300)
    p = t * rng.uniform(0.8, 1.2, 300)
    groups = ["gpu", "cpu", "phone"] * 100
    for path in (
        scatter_plot(t, p, tmp_path / "s.png", "scatter", groups=groups),
        scatter_plot(t, p, tmp_path / "sub" / "lin.png", "linear", log=False),
        error_bar_plot({"gpu": 3.2, "cpu": 5.1, "phone": float("nan")}, tmp_path / "e.png", "MAPE", "%"),
    ):
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="log"):
        scatter_plot([1, 2], [0, 2], tmp_path / "x.png", "bad")


def test_write_metrics_json_sorted_rounded_nan_as_null(tmp_path) -> None:
    path = write_metrics_json(
        {"z": {"mape": 3.14159265358979, "n": np.int64(5)}, "a": np.float32(0.5), "tau": float("nan")},
        tmp_path / "m" / "metrics.json",
    )
    text = path.read_text()
    assert text.index('"a"') < text.index('"tau"') < text.index('"z"')
    data = json.loads(text)
    assert data == {"a": 0.5, "tau": None, "z": {"mape": 3.14159, "n": 5}}
