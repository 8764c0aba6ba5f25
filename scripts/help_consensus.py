"""Zero-shot HELP NB201 ranking: the model on the new device's card vs the consensus of the training cards.

Why: on HELP's test devices the zero-shot model (configs/help-nb201-zeroshot.yaml) ranks worse on
a device's own card than its own predictions on the training cards, averaged, do (``--score``
shows it for one checkpoint). This scores, per device,
``w * z(prediction on its card) + (1 - w) * z(consensus)`` (log ms, z over the device's
evaluation set; consensus = the mean of the model's z-scored predictions on the cards of the
devices it was trained on: no measurement of anything new), and
MAPE of ``mean + std * blend`` (level and spread from the device's own card). HELP's validation
devices (GPUs and Xeons with a sibling among the training devices) cannot tell whether a new kind
of device needs this, so ``w`` is chosen on hardware-family-out folds of HELP's training devices:
each of the families gpu (1080ti_1/32/256), cpu (silver_4114/4210r) and phone (samsung_a50, pixel3,
essential_ph_1, samsung_s7) in turn is dropped from training and scored zero-shot. Rule fixed
before the runs: w* = argmax of the mean rho over the 9 held-out devices (mean over validation
seeds); adopted iff it beats w = 1 by >= .01 on every validation seed; only then are the test
devices read for w*. Runs are reused from ``--runs-dir`` when their saved config matches.

Run: python scripts/help_consensus.py [--val-seeds 0 1] [--test-seeds 0 1 2] [--jobs 2]
       [--runs-dir runs/studies/help-consensus]   (writes results/studies/help-nb201-consensus.{json,md})
     python scripts/help_consensus.py --score RUN/model.pt [--parts valid test]   (one checkpoint's grid)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "help-nb201-zeroshot.yaml"
FAMILIES = {"gpu": ["1080ti_1", "1080ti_32", "1080ti_256"], "cpu": ["silver_4114", "silver_4210r"],
            "phone": ["samsung_a50", "pixel3", "essential_ph_1", "samsung_s7"]}
WEIGHTS = [1.0, 0.8, 0.6, 0.5, 0.4, 0.2, 0.0]


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def _same_run(a: dict, b: dict) -> bool:
    """Same resolved config up to where it was written and whether it drew a progress bar."""
    def strip(c: dict) -> dict:
        return {**{k: v for k, v in c.items() if k != "out"},
                "train": {k: v for k, v in c["train"].items() if k != "progress"}}
    return strip(a) == strip(b)


def train(name: str, seed: int, overrides: list[str], runs_dir: Path) -> Path:
    """The model.pt of one zero-shot training (reused when a run with the same config is there)."""
    from ledgformer.train.checkpoint import read_checkpoint
    from ledgformer.train.config import load_config
    from ledgformer.train.experiment import run_experiment

    out = runs_dir / f"{name}-s{seed}"
    cfg = load_config(CONFIG, [*overrides, f"seed={seed}", "data.eval_all=false", f"out={out}",
                               "train.progress=false"])
    ckpt = out / "model.pt"
    if ckpt.is_file() and _same_run(read_checkpoint(ckpt)["config"], cfg):
        return ckpt
    run_experiment(cfg)
    return ckpt


def score(ckpt: Path, part: str, seed: int) -> dict[str, dict[str, list[float]]]:
    """device -> {"rho": [per w], "mape": [per w]} on the evaluation sets of ``part``'s devices."""
    from ledgformer.data.splits import HELP_PROTOCOLS
    from ledgformer.train.finetune import kshot_task
    from ledgformer.train.metrics import device_key
    from ledgformer.train.trainer import Trainer

    task = kshot_task(ckpt, 0, seed=seed, part=part, what="help_consensus")
    data = task.data
    trainer = Trainer(task.model, data, task.cfg["train"], seed=seed)
    keys = task.cfg["data"]["train_devices"] or HELP_PROTOCOLS[task.cfg["data"]["benchmark"]][0]
    train_rows = [data.devices.index(f"help/{k}") for k in keys]
    idx = data.parts[part]
    targets = sorted(set(data.device_row[idx].tolist()))
    graphs, first = np.unique(data.graph_row[idx], return_index=True)
    probe, saved = idx[first], data.device_row.copy()
    log_pred = {}
    for d in train_rows + targets:  # every evaluated graph on every card, once
        data.device_row[probe] = d
        log_pred[d] = np.log(trainer.predict(probe))
    data.device_row[:] = saved
    col = {g: j for j, g in enumerate(graphs)}
    out = {}
    for d in targets:
        e = idx[data.device_row[idx] == d]
        cols, y = [col[g] for g in data.graph_row[e]], data.target[e]
        own = log_pred[d][cols]
        cons = np.mean([_z(log_pred[t][cols]) for t in train_rows], axis=0)
        blends = [w * _z(own) + (1 - w) * cons for w in WEIGHTS]
        level = [np.exp(own.mean() + own.std() * b) for b in blends]  # the own card's level and spread
        out[device_key(data.devices[d])] = {
            "rho": [float(spearmanr(b, y).statistic) for b in blends],
            "mape": [float(np.mean(np.abs(p / y - 1)) * 100) for p in level]}
    return out


def unit(job: tuple[str, int, list[str], tuple[str, ...], str]) -> tuple[str, int, dict]:
    """Train (or reuse) one run and score it on each part: what a worker process does."""
    import torch

    name, seed, overrides, parts, runs_dir = job
    torch.set_num_threads(1)  # --jobs workers share the cores (scoring then uses train.threads)
    ckpt = train(name, seed, overrides, Path(runs_dir))
    return name, seed, {part: score(ckpt, part, seed) for part in parts}


def rule(per_seed: dict[int, np.ndarray]) -> tuple[int, dict[int, float], bool]:
    """The rule fixed before the runs, on mean rho per grid value (index 0: the model as trained)
    and validation seed: (best index by the mean over seeds, its gain over index 0 per seed,
    adopted: gains >= .01 on every seed)."""
    best = int(np.argmax(np.mean(list(per_seed.values()), axis=0)))
    gain = {s: float(r[best] - r[0]) for s, r in per_seed.items()}
    return best, gain, bool(best != 0 and all(g >= 0.01 for g in gain.values()))


def write_report(out: Path, rep: dict, md: str) -> None:
    """``out``.json (every number) and ``out``.md, and print the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    out.with_suffix(".md").write_text(md)
    print(md)


def _mean_over(per_device: dict[str, dict[str, list[float]]], metric: str) -> np.ndarray:
    return np.mean([v[metric] for v in per_device.values()], axis=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--val-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "studies" / "help-consensus")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "studies" / "help-nb201-consensus")
    ap.add_argument("--score", type=Path, metavar="MODEL_PT",
                    help="only print the blend grid of one checkpoint on --parts (an exploratory look)")
    ap.add_argument("--parts", nargs="+", default=["valid", "test"], choices=["valid", "test"])
    args = ap.parse_args()
    if args.score:
        return print_grid(args.score, args.parts)
    t0 = time.time()
    all_train = [k for fam in FAMILIES.values() for k in fam]
    jobs = [(f"fold-{fam}", s, [f"data.train_devices=[{','.join(k for k in all_train if k not in held)}]",
                                f"data.test_devices=[{','.join(held)}]"], ("test",), str(args.runs_dir))
            for s in args.val_seeds for fam, held in FAMILIES.items()]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        val = {}
        for name, seed, got in pool.map(unit, jobs):
            val.setdefault(seed, {}).update(got["test"])
            print(f"{name} seed {seed}: done ({(time.time() - t0) / 60:.1f} min)", flush=True)
        per_seed = {s: _mean_over(v, "rho") for s, v in val.items()}
        best, gain, adopted = rule(per_seed)
        test = {}
        if adopted:
            runs = [("all", s, [], ("valid", "test"), str(args.runs_dir)) for s in args.test_seeds]
            for name, seed, got in pool.map(unit, runs):
                for part, per_device in got.items():
                    test.setdefault(part, {})[seed] = per_device
                print(f"{name} seed {seed}: done ({(time.time() - t0) / 60:.1f} min)", flush=True)
    rep = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "wall_minutes": (time.time() - t0) / 60, "config": str(CONFIG.relative_to(ROOT)),
           "families": FAMILIES, "weights": WEIGHTS, "family_out": val,
           "family_out_mean_rho": {str(s): r.tolist() for s, r in per_seed.items()},
           "chosen_w": WEIGHTS[best], "gain_per_seed": gain, "adopted": adopted, "help": test}
    write_report(args.out, rep, markdown(rep))
    return 0


def print_grid(ckpt: Path, parts: list[str]) -> int:
    """Spearman rho per device and its mean over the part's devices, for every w."""
    from ledgformer.train.checkpoint import read_checkpoint

    seed = int(read_checkpoint(ckpt)["config"]["seed"])
    print("| part | device | " + " | ".join(f"w={w:g}" for w in WEIGHTS) + " |")
    print("|---|---|" + "---:|" * len(WEIGHTS))
    for part in parts:
        got = score(ckpt, part, seed)
        for dev, v in [*got.items(), ("mean", {"rho": _mean_over(got, "rho").tolist()})]:
            print(f"| {part} | {dev} | " + " | ".join(f"{r:.3f}" for r in v["rho"]) + " |")
    return 0


def markdown(rep: dict) -> str:
    """Family-out table (every w), then HELP's valid and test devices at w = 1 and the chosen w."""
    ws, fams = rep["weights"], list(rep["families"])
    lines = ["# HELP NB201 zero-shot: own card vs consensus of the training cards\n",
             f"Command: `{rep['command']}` "
             f"({rep['date']}, {rep['wall_minutes']:.1f} min). Config `{rep['config']}`; blend "
             "w * z(own card) + (1 - w) * z(consensus), see the script's docstring.\n",
             "## Family-out validation (held-out family's devices, mean Spearman rho; mean over seeds)\n",
             "| w | " + " | ".join(fams) + " | all 9 devices | per seed |",
             "|---|" + "---:|" * (len(fams) + 2)]
    for j, w in enumerate(ws):
        cells = []
        for fam in fams:
            cells.append(np.mean([np.mean([v[k]["rho"][j] for k in rep["families"][fam]])
                                  for v in rep["family_out"].values()]))
        per = [r[j] for r in rep["family_out_mean_rho"].values()]
        lines.append(f"| {w:g} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {np.mean(per):.3f} | "
                     + " / ".join(f"{p:.3f}" for p in per) + " |")
    lines.append(f"\nChosen w = {rep['chosen_w']:g}; gain over w = 1 per seed "
                 + ", ".join(f"{s}: {g:+.3f}" for s, g in rep["gain_per_seed"].items())
                 + f"; adopted (>= .01 on every seed): {rep['adopted']}.\n")
    for part, by_seed in rep["help"].items():
        devs = list(next(iter(by_seed.values())))
        cols = [0, ws.index(rep["chosen_w"])]
        lines += [f"## HELP {part} devices: Spearman rho per device, mean rho, mean MAPE % "
                  f"(mean ± std over seeds {list(by_seed)})\n",
                  "| w | " + " | ".join(devs) + " | mean rho | mean MAPE |",
                  "|---|" + "---:|" * (len(devs) + 2)]
        for j in cols:
            def ms(vals: list[float]) -> str:
                return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"
            cells = [ms([v[d]["rho"][j] for v in by_seed.values()]) for d in devs]
            cells.append(ms([np.mean([v[d]["rho"][j] for d in devs]) for v in by_seed.values()]))
            cells.append(ms([np.mean([v[d]["mape"][j] for d in devs]) for v in by_seed.values()]))
            lines.append(f"| {ws[j]:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
