"""Deterministic train/valid/test splits and the benchmark protocols that define them.

A :class:`Split` holds index lists into one benchmark's ordered records, plus how it was made
(name, seed, params), and a :meth:`Split.fingerprint` so a run records exactly which split it used.

Protocols:

* ``sample_split``: the NAS-Bench-201/101 accuracy-predictor protocol: N labelled architectures
  (the validation set is drawn from those N, not extra data), everything else is the test set.
* ``family_split`` / ``mixed_split``: leave-one-family-out and in-family mixed (NNLQP-style).
* HELP's device split (``HELP_*`` constants), its per-device evaluation set
  (``help_eval_indices``), its K-shot pool (``help_pool_indices``) and ``kshot_indices``.
* ``leave_one_device_out`` for phones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ledgformer.errors import LedgformerError

#: labelled-set sizes N of the NAS-Bench-201 accuracy-prediction tables (0.5 %, 1 %, 3 %, 5 %, 10 %)
NB201_TRAIN_SIZES: tuple[int, ...] = (78, 156, 469, 781, 1563)
#: labelled-set sizes N of the NAS-Bench-101 accuracy-prediction tables
NB101_TRAIN_SIZES: tuple[int, ...] = (100, 172, 424, 4236)

# HELP's device splits (HELP README / parser.py defaults, github.com/HayeonLee/HELP)
HELP_NB201_TRAIN: tuple[str, ...] = (
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r",
    "samsung_a50", "pixel3", "essential_ph_1", "samsung_s7",
)
HELP_NB201_VALID: tuple[str, ...] = ("titanx_1", "titanx_32", "titanx_256", "gold_6240")
HELP_NB201_TEST: tuple[str, ...] = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
HELP_FBNET_TRAIN: tuple[str, ...] = (
    "1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r",
    "samsung_a50", "pixel3", "essential_ph_1", "samsung_s7",
)
HELP_FBNET_VALID: tuple[str, ...] = ("titanx_1", "titanx_32", "titanx_64", "gold_6240")
HELP_FBNET_TEST: tuple[str, ...] = ("fpga", "raspi4", "eyeriss")
#: HELP's ``--num_meta_train_sample``: the first N archs form the meta-train / K-shot pool
HELP_NB201_POOL_SIZE = 900
HELP_FBNET_POOL_SIZE = 4000
#: HELP's ``--num_query``: the evaluation range is the next 1000 archs after the pool
HELP_NUM_QUERY = 1000
#: benchmark -> (train devices, valid devices, test devices, pool size) of HELP's protocol
HELP_PROTOCOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]] = {
    "help-nb201": (HELP_NB201_TRAIN, HELP_NB201_VALID, HELP_NB201_TEST, HELP_NB201_POOL_SIZE),
    "help-fbnet": (HELP_FBNET_TRAIN, HELP_FBNET_VALID, HELP_FBNET_TEST, HELP_FBNET_POOL_SIZE),
}


class SplitError(LedgformerError, ValueError):
    """Split parameters or a split file that cannot be used."""


def _ints(xs: Any) -> list[int]:
    return sorted(int(x) for x in xs)


@dataclass(frozen=True)
class Split:
    """Index lists (sorted) into one benchmark's ordered records, and how they were drawn."""

    name: str
    seed: int | None
    train: list[int]
    valid: list[int]
    test: list[int]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = {"train": set(self.train), "valid": set(self.valid), "test": set(self.test)}
        for part, idx in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            if len(parts[part]) != len(idx):
                raise SplitError(f"split {self.name!r}: {part} contains duplicate indices")
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            both = parts[a] & parts[b]
            if both:
                raise SplitError(
                    f"split {self.name!r}: {a} and {b} share {len(both)} indices, e.g. {min(both)}"
                )

    def fingerprint(self) -> str:
        """Short SHA-256 of the three index lists: equal memberships give equal fingerprints."""
        payload = json.dumps([_ints(self.train), _ints(self.valid), _ints(self.test)], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name, "seed": self.seed, "params": self.params,
                "fingerprint": self.fingerprint(),
                "train": list(self.train), "valid": list(self.valid), "test": list(self.test),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Split:
        """Parse :meth:`to_json` output; a stored fingerprint that no longer matches is an error."""
        try:
            d = json.loads(text)
            split = cls(
                name=str(d["name"]), seed=d["seed"], params=dict(d.get("params", {})),
                train=[int(i) for i in d["train"]], valid=[int(i) for i in d["valid"]],
                test=[int(i) for i in d["test"]],
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SplitError):
                raise SplitError(f"{source}: {exc}") from exc
            raise SplitError(f"{source}: not a split file ({type(exc).__name__}: {exc})") from exc
        stored = d.get("fingerprint")
        if stored is not None and stored != split.fingerprint():
            raise SplitError(
                f"{source}: fingerprint {stored} does not match its indices ({split.fingerprint()})"
            )
        return split

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        if not path.is_file():
            raise SplitError(f"split file {path} not found")
        return cls.from_json(path.read_text(), source=str(path))


def _check_fraction(name: str, value: float, allow_zero: bool = True) -> None:
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value < 1):
        raise SplitError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1), got {value!r}")


def sample_split(
    n_total: int, n_train: int, seed: int, valid_fraction: float = 0.1, n_valid: int | None = None
) -> Split:
    """NB201/NB101 predictor protocol: ``n_train`` labelled archs (valid drawn from them), rest = test.

    ``n_valid`` (if given) overrides ``round(valid_fraction * n_train)``. Train gets the labelled
    archs that are not in valid, so ``len(train) + len(valid) == n_train``.
    """
    if not 0 < n_train < n_total:
        raise SplitError(f"n_train must be in [1, n_total={n_total}), got {n_train}")
    if n_valid is None:
        _check_fraction("valid_fraction", valid_fraction)
        n_valid = round(valid_fraction * n_train)
    if not 0 <= n_valid < n_train:
        raise SplitError(f"n_valid must be in [0, n_train={n_train}), got {n_valid}")
    perm = np.random.default_rng(seed).permutation(n_total)
    return Split(
        name=f"sample-{n_train}", seed=seed,
        valid=_ints(perm[:n_valid]), train=_ints(perm[n_valid:n_train]), test=_ints(perm[n_train:]),
        params={"n_total": n_total, "n_train": n_train, "n_valid": n_valid},
    )


def _by_family(families: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, fam in enumerate(families):
        groups.setdefault(str(fam), []).append(i)
    if not groups:
        raise SplitError("families is empty: expected one family label per record")
    return groups


def _draw(rng: np.random.Generator, idx: list[int], n: int) -> tuple[list[int], list[int]]:
    """(n drawn, rest) from ``idx`` in random order."""
    perm = rng.permutation(np.asarray(idx, dtype=np.int64))
    return perm[:n].tolist(), perm[n:].tolist()


def family_split(families: Sequence[str], held_out: str, seed: int, valid_fraction: float = 0.1) -> Split:
    """Leave one family out: test = every record of ``held_out``; valid drawn per training family.

    ``families[i]`` is record i's family; valid takes ``round(valid_fraction * size)`` of each
    training family, so small families are represented too.
    """
    _check_fraction("valid_fraction", valid_fraction)
    groups = _by_family(families)
    if held_out not in groups:
        raise SplitError(f"held-out family {held_out!r} not found; families are: {', '.join(sorted(groups))}")
    if len(groups) < 2:
        raise SplitError(f"family_split needs at least two families, got only {held_out!r}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    valid: list[int] = []
    for fam in sorted(groups):
        if fam == held_out:
            continue
        v, t = _draw(rng, groups[fam], round(valid_fraction * len(groups[fam])))
        valid += v
        train += t
    return Split(
        name=f"family-{held_out}", seed=seed, train=_ints(train), valid=_ints(valid),
        test=_ints(groups[held_out]), params={"held_out": held_out, "valid_fraction": valid_fraction},
    )


def mixed_split(
    families: Sequence[str], seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.1
) -> Split:
    """In-family mixed split, stratified: each family gives ``round(f * size)`` to test and to valid.

    Both fractions are of each family's size (so 0.2 / 0.1 leaves 70 % for training).
    """
    _check_fraction("test_fraction", test_fraction, allow_zero=False)
    _check_fraction("valid_fraction", valid_fraction)
    if test_fraction + valid_fraction >= 1:
        raise SplitError(f"test_fraction + valid_fraction must be < 1, got {test_fraction + valid_fraction}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for _, idx in sorted(_by_family(families).items()):
        te, rest = _draw(rng, idx, round(test_fraction * len(idx)))
        va, tr = _draw(rng, rest, round(valid_fraction * len(idx)))
        test += te
        valid += va
        train += tr
    return Split(
        name="mixed", seed=seed, train=_ints(train), valid=_ints(valid), test=_ints(test),
        params={"test_fraction": test_fraction, "valid_fraction": valid_fraction},
    )


def _help_filtered(latency: np.ndarray, start: int, count: int) -> np.ndarray:
    """HELP's outlier removal on archs ``start .. start+count-1`` (see ``help_eval_indices``)."""
    lat = np.asarray(latency, dtype=np.float32).reshape(-1)
    if start < 0 or count < 10 or start + count > lat.size:
        raise SplitError(
            f"HELP range {start}..{start + count - 1} does not fit a latency list of {lat.size} archs"
        )
    idx = np.arange(start, start + count)
    order = np.argsort(lat[idx], kind="stable")
    return np.sort(idx[order[int(count * 0.1): int(count * 0.9)]])


def help_eval_indices(
    latency: np.ndarray, start: int = HELP_NB201_POOL_SIZE, count: int = HELP_NUM_QUERY
) -> np.ndarray:
    """HELP's evaluation (query) set for one device: 800 arch indices, sorted.

    From HELP's ``loader.py`` (``Data.__init__``, ``remove_outlier=True``):
    ``valid_idx = arange(N)[nts:nts+num_query]`` with ``nts = num_meta_train_sample`` (900 for
    NAS-Bench-201, 4000 for FBNet) and ``num_query = 1000``, then
    ``valid_idx[np.argsort(latency[valid_idx])[int(len*0.1):int(len*0.9)]]``: the archs ranked
    100..899 by that device's latency within the range. The cut is by rank, not by quantile value,
    so it always keeps 800 archs even with the integer-ms phone latencies. Ties at the two cuts are
    broken by index (stable sort), where HELP's default ``np.argsort`` is implementation-defined;
    only tied archs can differ (measured against numpy 2.4's default sort: 0 of 800 on the GPU/CPU
    devices, up to 22 on eyeriss's few-valued latencies). ``latency`` is the device's full list in
    the space's official order.
    """
    return _help_filtered(latency, start, count)


def help_pool_indices(latency: np.ndarray, count: int = HELP_NB201_POOL_SIZE) -> np.ndarray:
    """HELP's K-shot / meta-train pool on one device: archs 0..count-1 ranked 10 %..90 % (720 for NB201).

    Same rule as :func:`help_eval_indices` (``train_idx`` in HELP's ``loader.py``); HELP draws the K
    measured samples of a test device from this pool, so it never overlaps the evaluation set.
    """
    return _help_filtered(latency, 0, count)


def leave_one_device_out(devices: Sequence[str]) -> list[tuple[list[str], str]]:
    """``(train_devices, test_device)`` for each device in turn, in the given order."""
    devs = [str(d) for d in devices]
    if len(devs) < 2:
        raise SplitError(f"leave-one-device-out needs at least two devices, got {devs}")
    dupes = sorted({d for d in devs if devs.count(d) > 1})
    if dupes:
        raise SplitError(f"devices listed twice: {', '.join(dupes)}")
    return [([d for d in devs if d != test], test) for test in devs]


def kshot_indices(
    n_archs: int, k: int, seed: int, exclude: Sequence[int] | np.ndarray = (),
    pool: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """K measured samples on a target device (sorted), never from ``exclude`` (the evaluation set).

    Candidates are ``pool`` (e.g. :func:`help_pool_indices`) or all ``range(n_archs)``, minus
    ``exclude``. ``k == 0`` returns an empty array (zero-shot).
    """
    if k < 0:
        raise SplitError(f"k must be >= 0, got {k}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.arange(n_archs) if pool is None else np.unique(np.asarray(pool, dtype=np.int64))
    if cand.size and (cand.min() < 0 or cand.max() >= n_archs):
        raise SplitError(f"pool indices must lie in [0, {n_archs}), got {cand.min()}..{cand.max()}")
    cand = np.setdiff1d(cand, np.asarray(exclude, dtype=np.int64))
    if k > cand.size:
        raise SplitError(f"k={k} exceeds the {cand.size} archs available outside the excluded set")
    return np.sort(np.random.default_rng(seed).choice(cand, size=k, replace=False))
