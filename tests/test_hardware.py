"""Hardware cards: every benchmark device key resolves, cards validate, text/features, errors, CLI."""

from __future__ import annotations

import csv
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from ledgformer.cli.main import main
from ledgformer.hardware import (
    FEATURE_NAMES,
    CardError,
    HardwareCard,
    card_name,
    list_cards,
    list_devices,
    load_card,
    validate_card,
)
from ledgformer.hardware.card import FIGURE_FIELDS

GOOD = {
    "name": "my-board", "kind": "cpu", "vendor": "ACME", "chip": "X1", "compute_units": 4,
    "clock_ghz": 1.2, "runtime": "ONNX Runtime", "precision": "fp32", "batch_size": 8,
    "sources": {"default": "ACME X1 datasheet"},
}


def _dataset_card_names(root: Path) -> list[str]:
    """Card names of every device key in the real benchmark files."""
    names = [card_name("help", p.stem) for space in ("nasbench201", "fbnet", "ofa")
             for p in sorted((root / "help" / space / "latency").glob("*.pt"))]
    for path in sorted((root / "mobile_ml_benchmark").glob("*_e2e.csv")):
        with open(path, newline="") as fh:
            header = next(csv.reader(fh))
        framework = path.name.split("_")[0]
        names += [card_name("mmb", col.rsplit("|", 1)[0], framework=framework)
                  for col in header if col.endswith("|mean")]
    with tarfile.open(root / "accel_nasbench" / "anb_dataset_jsons.tar.gz") as tar:
        member = next(m for m in tar if m.isfile() and m.name.endswith(".json"))
        perf = json.load(tar.extractfile(member))["platform_perf"]
    names += [card_name("accel_nasbench", k) for k in perf]
    with open(root / "nnlqp" / "gt_stage.txt") as fh:
        names += sorted({card_name("nnlqp", line.split()[5]) for line in fh if line.strip()})
    return names


def test_every_dataset_key_resolves(data_root: Path) -> None:
    names = _dataset_card_names(data_root)
    assert len([n for n in names if n.startswith("help/")]) == 27 + 27 + 12
    assert {n for n in names if n.startswith("anb/")} == {
        f"anb/{m}_{d}" for m, d in [("latency", "zcu102"), ("latency", "vck190")]
    } | {f"anb/throughput_{d}" for d in ("a100", "3090", "tpuv2", "tpuv3", "zcu102", "vck190")}
    known = set(list_cards())
    for name in names:
        card = load_card(name)
        assert card.name == name
        assert name in known, f"{name} resolves but is missing from list_cards()"


def test_dataset_settings_are_right(data_root: Path) -> None:
    assert load_card("help/1080ti_256").batch_size == 256
    assert load_card("help/essential_ph_1").product == "Essential Phone PH-1"
    assert load_card("help/essential_ph_1").batch_size is None
    assert load_card("help/titan_xp_64").chip == load_card("help/titanxp_32").chip == "GP102"
    pix = load_card("mmb/tflite/pixel4|1large1med|quant")
    assert (pix.threads, pix.compute_units, pix.precision, pix.clock_ghz) == (2, 2, "int8", 2.84)
    gpu = load_card("mmb/torch/s10|gpu|float")
    assert (gpu.precision, gpu.threads, gpu.runtime) == ("fp16", None, "PyTorch Mobile")
    nn = load_card("nnlqp/1")
    assert (nn.chip, nn.runtime, nn.precision) == ("TU116", "TensorRT", "fp32")
    assert load_card("anb/latency_zcu102").kind == "fpga"
    assert load_card("help/eyeriss").measurement == "estimated"


def test_cpu_setting_peak_from_the_cores_table() -> None:
    """peak_tflops_fp32 of a CPU setting = sum of cores x FLOP/cycle (cards/cores.yaml) x clock,
    hand-checked; a core "X (Cortex-A76 based)" counts as Cortex-A76; an unlisted core leaves it
    unset. A GPU setting carries its GPU's own peak where the device file cites one, else none."""
    from ledgformer.hardware.registry import core_peak

    pix = load_card("mmb/tflite/pixel4|1large1med|float")  # 2 A76-based cores, 16 FLOP/cycle each
    assert pix.peak_tflops_fp32 == pytest.approx((16 * 2.84 + 16 * 2.32) / 1000)
    s10 = load_card("mmb/torch/s10|1large2med|quant")  # 1 Mongoose M4 (24) + 2 Cortex-A75 (8)
    assert s10.peak_tflops_fp32 == pytest.approx((24 * 2.73 + 2 * 8 * 2.31) / 1000)
    assert "Mongoose M4 24" in s10.source_for("peak_tflops_fp32")
    assert load_card("mmb/tflite/iphonexs|2small|float").peak_tflops_fp32 is None  # Tempest: no entry
    gpu = load_card("mmb/tflite/pixel4|gpu|float")  # Adreno 640: 898.5 / 1797.1 GFLOPS, 585 MHz
    assert (gpu.peak_tflops_fp32, gpu.peak_tflops_fp16, gpu.clock_ghz) == (0.8985, 1.7971, 0.585)
    assert "Adreno 640" in gpu.source_for("peak_tflops_fp32")
    # GT7600: 192 FP32 ALUs x 2 FLOP (FMA) x 0.9 GHz
    assert load_card("mmb/tflite/iphone7|gpu|float").peak_tflops_fp32 == pytest.approx(192 * 2 * 0.9 / 1000)
    assert load_card("mmb/torch/s10|gpu|float").peak_tflops_fp32 is None  # Mali-G76 clock: no source
    assert core_peak("Kryo 360 Silver (Cortex-A55 based)")[0] == 8 and core_peak("Zephyr") is None
    assert "peak 0.08256 TFLOP/s fp32" in pix.to_text()


def test_in_order_cores_from_the_cores_table() -> None:
    """in_order_cores counts the setting's in-order cores (Cortex-A53 / A55); the feature is their
    share of the cores; a GPU setting or a hand card that does not say leaves both unknown."""
    from ledgformer.hardware import FEATURE_NAMES

    share, missing = FEATURE_NAMES.index("in_order_share"), FEATURE_NAMES.index("missing_in_order_share")
    big = load_card("mmb/torch/s10|1large2med|quant")  # Mongoose M4 + 2 Cortex-A75: out-of-order
    assert big.in_order_cores == 0 and big.features()[share] == 0 and big.features()[missing] == 0
    assert "Cortex-A75 out-of-order" in big.source_for("in_order_cores")
    little = load_card("mmb/tflite/a03s|3large|float")  # 3 Cortex-A53
    assert little.in_order_cores == 3 and little.features()[share] == 1.0
    gpu = load_card("mmb/tflite/s10|gpu|float")
    assert gpu.in_order_cores is None and gpu.features()[missing] == 1.0
    base = {"name": "x", "kind": "cpu", "vendor": "v", "chip": "c", "compute_units": 4}
    assert validate_card(base, "x.yaml").features()[missing] == 1.0
    assert validate_card({**base, "in_order_cores": 1}, "x.yaml").features()[share] == 0.25
    with pytest.raises(CardError, match=r"in_order_cores.*exceeds compute_units"):
        validate_card({**base, "in_order_cores": 5}, "x.yaml")
    with pytest.raises(CardError, match="in_order_cores' must be >= 0"):
        validate_card({**base, "in_order_cores": -1}, "x.yaml")


def test_all_builtin_cards_validate_and_cite_figures() -> None:
    names = list_cards()
    assert len(names) == len(set(names)) > 200
    for name in names:
        card = load_card(name)
        again = validate_card(card.to_dict(), name)
        assert again == card
        for field in FIGURE_FIELDS:
            if getattr(card, field) is not None:
                assert card.source_for(field), f"{name}: {field} has no source"
    assert len(list_devices()) >= 30


def test_text_and_features() -> None:
    width = len(FEATURE_NAMES)
    for name in list_cards():
        card = load_card(name)
        text = card.to_text()
        assert card.chip in text
        if card.batch_size is not None:
            assert f"batch {card.batch_size}" in text
        assert "None" not in text
        feats = card.features()
        assert feats.shape == (width,) and feats.dtype == np.float32
        assert np.isfinite(feats).all()
    rpi = load_card("help/raspi4")
    assert rpi.to_text().startswith("Raspberry Pi 4 Model B (Broadcom BCM2711), CPU, 4 cores")
    feats = dict(zip(FEATURE_NAMES, rpi.features(), strict=True))
    assert feats["log_clock_ghz"] == pytest.approx(math.log1p(1.5))
    assert feats["missing_memory_gb"] == 1.0 and feats["log_memory_gb"] == 0.0
    assert feats["missing_clock_ghz"] == 0.0
    assert feats["kind=cpu"] == 1.0 and feats["runtime=tflite"] == 1.0
    # unknown is not zero: a card without a clock differs from one with the smallest clock
    a = validate_card({**GOOD, "clock_ghz": None}, "t").features()
    b = validate_card(GOOD, "t").features()
    assert not np.array_equal(a, b)


def test_fingerprint_follows_what_a_model_reads() -> None:
    """Same text and features, same fingerprint (name and sources do not count); any figure that
    changes the text or features changes it; a card that no longer loads has none."""
    from ledgformer.hardware import card_fingerprints

    card = validate_card(GOOD, "t")
    same = validate_card({**GOOD, "name": "other", "sources": {"default": "https://example.org"}}, "t")
    assert card.fingerprint() == same.fingerprint()
    assert validate_card({**GOOD, "clock_ghz": 1.6}, "t").fingerprint() != card.fingerprint()
    assert validate_card({**GOOD, "in_order_cores": 2}, "t").fingerprint() != card.fingerprint()
    fps = card_fingerprints(["help/raspi4", "help/no_such_device"])
    assert fps == {"help/raspi4": load_card("help/raspi4").fingerprint(), "help/no_such_device": None}


@pytest.mark.parametrize("change, field", [
    ({"kind": "quantum"}, "kind"),
    ({"clock_ghz": "fast"}, "clock_ghz"),
    ({"clock_ghz": -1.0}, "clock_ghz"),
    ({"chip": None}, "chip"),
    ({"frequency": 2.0}, "frequency"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"precision": "fp64"}, "precision"),
    ({"sources": {"speed": "x"}}, "speed"),
])
def test_broken_card_names_field(change: dict, field: str) -> None:
    data = {**GOOD, **change}
    with pytest.raises(CardError, match=rf"my\.yaml.*{field}"):
        validate_card(data, "my.yaml")


def test_yaml_round_trip_and_user_cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    card = load_card("mmb/torch/pixel4|3med|float")
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(card.to_dict(), sort_keys=False))
    assert load_card(path) == card
    assert load_card(str(path)) == card
    assert isinstance(load_card(dict(GOOD)), HardwareCard)
    # a user card in $LEDGFORMER_CARDS, built on a built-in one
    (tmp_path / "my_gpu.yaml").write_text("base: help/1080ti_1\nruntime: ONNX Runtime\nbatch_size: 4\n")
    monkeypatch.setenv("LEDGFORMER_CARDS", str(tmp_path))
    mine = load_card("my_gpu")
    assert (mine.name, mine.chip, mine.runtime, mine.batch_size) == ("my_gpu", "GP102", "ONNX Runtime", 4)
    assert "my_gpu" in list_cards()
    with pytest.raises(CardError, match="unknown hardware card"):
        load_card("help/1080ti_33")


def test_cli_list_show_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hardware", "list", "--filter", "nnlqp/"]) == 0
    assert "nnlqp/1" in capsys.readouterr().out
    assert main(["hardware", "list", "--plain", "--filter", "help/titan_rtx"]) == 0
    assert capsys.readouterr().out.split() == ["help/titan_rtx_1", "help/titan_rtx_32", "help/titan_rtx_64",
                                               "help/titan_rtx_256"]
    assert main(["hardware", "show", "help/1080ti_32", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["batch_size"] == 32 and shown["chip"] == "GP102"
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    bad.write_text(yaml.safe_dump({**GOOD, "kind": "quantum"}))
    assert main(["hardware", "validate", str(good)]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["hardware", "validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad.yaml" in err and "'kind'" in err and "\n" not in err
