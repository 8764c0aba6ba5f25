"""Splits: determinism, disjointness, coverage, sizes, JSON round trip and HELP's protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ledgformer.data import splits as S


def _covers(split: S.Split, n: int) -> None:
    parts = [set(split.train), set(split.valid), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(range(n))


@pytest.mark.parametrize("n_train", S.NB201_TRAIN_SIZES)
def test_sample_split_sizes_and_coverage(n_train: int) -> None:
    s = S.sample_split(15625, n_train, seed=0)
    n_valid = round(0.1 * n_train)
    assert (len(s.train), len(s.valid), len(s.test)) == (n_train - n_valid, n_valid, 15625 - n_train)
    _covers(s, 15625)


def test_sample_split_determinism_and_n_valid() -> None:
    a = S.sample_split(423624, 4236, seed=3)
    assert a == S.sample_split(423624, 4236, seed=3)
    assert a.fingerprint() == S.sample_split(423624, 4236, seed=3).fingerprint()
    b = S.sample_split(423624, 4236, seed=4)
    assert a.train != b.train and a.fingerprint() != b.fingerprint()
    c = S.sample_split(500, 100, seed=0, n_valid=7)
    assert len(c.valid) == 7 and len(c.train) == 93
    with pytest.raises(ValueError, match="n_train"):
        S.sample_split(100, 100, seed=0)


def test_json_round_trip_and_tamper_check(tmp_path) -> None:
    s = S.sample_split(200, 50, seed=1)
    path = s.save(tmp_path / "d" / "split.json")
    back = S.Split.load(path)
    assert back == s and back.fingerprint() == s.fingerprint()
    assert back.params == {"n_total": 200, "n_train": 50, "n_valid": 5}
    text = path.read_text().replace('"test": [', f'"test": [{s.train[0]}, ', 1)
    with pytest.raises(ValueError, match="share"):
        S.Split.from_json(text)
    text = path.read_text().replace('"train": [', '"train": [999, ', 1)
    with pytest.raises(ValueError, match="fingerprint"):
        S.Split.from_json(text)
    with pytest.raises(S.SplitError, match="not found"):
        S.Split.load(tmp_path / "missing.json")


def test_family_split_holds_out_one_family() -> None:
    fams = ["resnet"] * 30 + ["vit"] * 20 + ["mobilenet"] * 10
    s = S.family_split(fams, "vit", seed=0, valid_fraction=0.1)
    assert s.test == list(range(30, 50))
    assert len(s.valid) == 3 + 1  # 10 % of each training family
    assert all(fams[i] != "vit" for i in s.train + s.valid)
    _covers(s, len(fams))
    assert s == S.family_split(fams, "vit", seed=0, valid_fraction=0.1)
    assert s != S.family_split(fams, "vit", seed=1, valid_fraction=0.1)
    with pytest.raises(ValueError, match="'bert' not found"):
        S.family_split(fams, "bert", seed=0)


def test_mixed_split_is_stratified() -> None:
    fams = ["a"] * 100 + ["b"] * 50 + ["c"] * 10
    s = S.mixed_split(fams, seed=0, test_fraction=0.2, valid_fraction=0.1)
    _covers(s, len(fams))
    for fam, n in (("a", 100), ("b", 50), ("c", 10)):
        assert sum(fams[i] == fam for i in s.test) == round(0.2 * n)
        assert sum(fams[i] == fam for i in s.valid) == round(0.1 * n)
    assert s.fingerprint() != S.mixed_split(fams, seed=1).fingerprint()


def test_help_device_split_constants_are_disjoint() -> None:
    for tr, va, te in ((S.HELP_NB201_TRAIN, S.HELP_NB201_VALID, S.HELP_NB201_TEST),
                       (S.HELP_FBNET_TRAIN, S.HELP_FBNET_VALID, S.HELP_FBNET_TEST)):
        assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
    assert (len(S.HELP_NB201_TRAIN), len(S.HELP_NB201_VALID), len(S.HELP_NB201_TEST)) == (9, 4, 6)


def test_help_eval_rule_on_synthetic_latency() -> None:
    lat = np.arange(3000, dtype=float)[::-1].copy()  # strictly decreasing
    idx = S.help_eval_indices(lat)
    # within 900..1899 the 100 fastest are 1800..1899 and the 100 slowest are 900..999
    assert idx.tolist() == list(range(1000, 1800))
    with pytest.raises(ValueError, match="does not fit"):
        S.help_eval_indices(lat[:1500])


def test_help_eval_and_pool_on_real_data(data_root) -> None:
    root = data_root / "help" / "nasbench201" / "latency"
    for device in S.HELP_NB201_TEST:
        lat = np.asarray(torch.load(root / f"{device}.pt"), dtype=float)
        ev = S.help_eval_indices(lat)
        pool = S.help_pool_indices(lat)
        assert ev.size == 800 and pool.size == 720, device
        assert ev.min() >= 900 and ev.max() <= 1899
        assert not set(ev.tolist()) & set(pool.tolist())
        rng = lat[900:1900]
        # kept latencies lie between the 10 % and 90 % rank values of the range
        srt = np.sort(rng)
        assert lat[ev].min() >= srt[100] and lat[ev].max() <= srt[899], device
        k = S.kshot_indices(lat.size, 10, seed=0, exclude=ev, pool=pool)
        assert k.size == 10 and set(k.tolist()) <= set(pool.tolist())


def test_kshot_never_touches_the_eval_set() -> None:
    exclude = np.arange(0, 1000, 2)
    for seed in range(20):
        k = S.kshot_indices(1000, 50, seed=seed, exclude=exclude)
        assert k.size == 50 and np.all(k % 2 == 1) and len(set(k.tolist())) == 50
    assert np.array_equal(S.kshot_indices(1000, 50, 3, exclude), S.kshot_indices(1000, 50, 3, exclude))
    assert S.kshot_indices(1000, 0, seed=0, exclude=exclude).size == 0
    assert S.kshot_indices(10, 5, seed=0, exclude=range(5)).tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="exceeds"):
        S.kshot_indices(10, 6, seed=0, exclude=range(5))


def test_leave_one_device_out() -> None:
    folds = S.leave_one_device_out(["pixel2", "pixel3", "samsung_s7"])
    assert folds == [(["pixel3", "samsung_s7"], "pixel2"), (["pixel2", "samsung_s7"], "pixel3"),
                     (["pixel2", "pixel3"], "samsung_s7")]
    with pytest.raises(ValueError, match="twice"):
        S.leave_one_device_out(["a", "a", "b"])


def test_help_protocols_name_each_space_split_and_pool() -> None:
    tr, va, te, pool = S.HELP_PROTOCOLS["help-fbnet"]
    assert (len(tr), len(va), te, pool) == (9, 4, ("fpga", "raspi4", "eyeriss"), 4000)
    lat = np.arange(5000, 0, -1).astype(float)  # 5,000 FBNet archs
    idx = S.help_eval_indices(lat, start=pool)
    assert idx.size == 800 and idx.min() >= 4000 and idx.max() < 5000
    assert S.HELP_PROTOCOLS["help-nb201"][3] == S.HELP_NB201_POOL_SIZE
