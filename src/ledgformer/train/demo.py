"""The demo behind ``make demo``: train, compare with FLOPs, then predict and measure on this machine.

On the embedded data set (family variants timed on 3 CPU platforms of the build machine) it trains
LeDG-Former with one model family held out (``configs/demo-embedded.yaml``: the ResNet family),
fits the FLOPs baseline on the same split, prints MAPE and Acc(10%) of both on the held-out family
per platform, writes ``metrics.json``, the resolved config, the split and the test scatter plots
to the output folder, and finally predicts a real network (pytorchcv ResNet-18 by default) on
this machine's matching platforms and measures it, side by side. Every printed figure comes from
the run itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ledgformer.embedded import embedded_machine_text
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import HardwareCard
from ledgformer.model.features import TextTable, collate, graph_tensors, hardware_tensors
from ledgformer.train.latency_task import LatencyTaskData, split_summary
from ledgformer.train.metrics import device_key

DEMO_CONFIG = "demo-embedded.yaml"
DEFAULT_MODEL = "pytorchcv:resnet18"
#: the runtimes of the embedded platforms (1 thread, fp32), measured here for the final comparison
RUNTIMES = ("onnxruntime", "onnxruntime-noopt", "torch")
#: baselines the demo can fit on the same split: key -> (display name, what it is)
BASELINES = {
    "flops": ("FLOPs", "log ms = b log MACs + c per platform"),
    "gbdt": ("GBDT", "LightGBM on op counts and cost sums + card features"),
}


@dataclass
class LocalResult:
    """One platform of this machine: measured latency (None if unstable) and both predictions."""

    platform: str
    predicted_ms: dict[str, float]
    measured_ms: float | None = None
    iqr_ms: float | None = None
    n_runs: int = 0
    #: 1-minute load average when the timed runs started: other processes slow a 1-thread timing
    load_avg: float | None = None
    note: str = ""


@dataclass
class DemoResult:
    metrics: dict[str, Any]
    out: Path
    local: list[LocalResult] = field(default_factory=list)


def find_config(path: str | Path | None = None) -> Path:
    """``path``, else ``configs/demo-embedded.yaml`` in the working folder or beside the source tree."""
    if path is not None:
        return Path(path)
    checkout = Path(__file__).resolve().parents[3]
    for c in (Path("configs") / DEMO_CONFIG, checkout / "configs" / DEMO_CONFIG):
        if c.is_file():
            return c
    raise LedgformerError(f"demo config {DEMO_CONFIG} not found in ./configs or the source checkout; "
                          "pass --config PATH")


def _fit(name: str, cfg: Mapping[str, Any], data: LatencyTaskData, seed: int) -> tuple[Any, dict[str, Any]]:
    """Train model ``name`` on the task, evaluate valid and test; (trainer, metrics)."""
    from ledgformer.model.registry import create_model
    from ledgformer.train.trainer import Trainer, model_kwargs, set_seed

    set_seed(seed)
    model_cfg = dict(cfg["model"]) if name == "ledgformer" else {"name": name}
    mname, kwargs = model_kwargs({"model": model_cfg}, data)
    trainer = Trainer(create_model(mname, **kwargs), data, cfg["train"], seed=seed)
    summary = trainer.fit()
    metrics, _ = trainer.evaluate(("valid", "test"))
    metrics.update({f"train.{k}": v for k, v in summary.items()})
    metrics["model_config"] = kwargs
    return trainer, metrics


def predict_graph(model: torch.nn.Module, graph: ArchGraph, cards: Sequence[HardwareCard],
                  encoder: str) -> list[float]:
    """Latency (ms) of one graph on each card with a trained latency model (cards need no registry name)."""
    table = TextTable()
    item = graph_tensors(graph, table)
    emb = torch.from_numpy(np.asarray(table.embeddings(encoder), np.float32))
    batch = collate([item] * len(cards), emb)
    hw = hardware_tensors([c.to_dict() for c in cards], encoder)  # type: ignore[misc]
    model.eval()
    with torch.no_grad():
        return [float(v) for v in model(batch, hw).exp()]


def _short(platform: str) -> str:
    """``embedded/amd-epyc/ort-1t-fp32`` -> ``ort-1t-fp32`` (the machine is named separately)."""
    return platform.split("/")[-1]


def _held_out(summary: Mapping[str, Any]) -> str:
    """What the test part is, in words: ``family 'resnet'``, ``device '...'`` or random graphs."""
    if "test_family" in summary:
        return f"held-out family '{summary['test_family']}'"
    if "test_device" in summary:
        return f"held-out device '{_short(summary['test_device'])}'"
    return "random test graphs"


def _table(console: Console, data: LatencyTaskData, results: Mapping[str, Mapping[str, Any]],
           held: str) -> None:
    first = next(iter(results.values()))
    t = Table(title=f"{held} (never seen in training): test error")
    for col in ("platform", "graphs", "model", "MAPE", "Acc(10%)"):
        t.add_column(col, justify="left" if col in ("platform", "model") else "right")
    rows = [(_short(d), f"test.per_device.{device_key(d)}.") for d in data.devices] + [("all", "test.")]
    for label, prefix in rows:
        if f"{prefix}n" not in first:
            continue
        for k, (name, m) in enumerate(results.items()):
            t.add_row(label if k == 0 else "", str(int(first[f"{prefix}n"])) if k == 0 else "", name,
                      f"{m[prefix + 'mape']:.1f}%", f"{100 * m[prefix + 'acc@10%']:.0f}%",
                      end_section=k == len(results) - 1)
    console.print(t)
    console.print("MAPE: mean |predicted - measured| / measured; Acc(10%): share predicted within 10%")


def _local(console: Console, trainers: Mapping[str, Any], encoder: str, spec: str,
           runtimes: Sequence[str], repeat: int, trained_on: str | None = None) -> list[LocalResult]:
    """Predict ``spec`` on this machine's platforms with every model, then measure it there;
    ``trained_on``: the machine the training data was measured on (said when this one differs)."""
    from ledgformer.graph.zoo import load_model
    from ledgformer.measure import RUNTIME_PRECISION, MeasurementUnstable, detect_card, measure

    graph = load_model(spec)
    cards = [detect_card(rt, 1, RUNTIME_PRECISION[rt]) for rt in runtimes]
    preds = {name: predict_graph(tr.model, graph, cards, encoder) for name, tr in trainers.items()}
    out = []
    for k, (rt, card) in enumerate(zip(runtimes, cards, strict=True)):
        res = LocalResult(card.name, {name: p[k] for name, p in preds.items()})
        with console.status(f"measuring {spec} on {card.name} ({repeat} timed runs)"):
            try:
                m = measure(spec, runtime=rt, threads=1, repeat=repeat)
                res.measured_ms, res.iqr_ms, res.n_runs = m.median_ms, m.iqr_ms, m.n_runs
                res.load_avg = m.load_avg
            except MeasurementUnstable as err:
                res.note = f"not measured: {err}"
        out.append(res)
    console.print(f"this machine: {cards[0].to_text()}")
    if trained_on and not cards[0].to_text().startswith(trained_on):
        console.print(f"[yellow]note:[/] the training data were measured on another machine ({trained_on}); "
                      "for this one the predictions are zero-shot, from its card alone")
    t = Table(title=f"{spec} ({graph.macs / 1e9:.2f} GMACs, batch 1): predicted vs measured here")
    t.add_column("platform")
    t.add_column("measured ms", justify="right")
    for name in trainers:
        t.add_column(f"{name} ms (error)", justify="right")
    for r in out:
        meas = "n/a" if r.measured_ms is None else f"{r.measured_ms:.1f} ± {r.iqr_ms:.1f}"
        cells = [_short(r.platform), meas]
        for name in trainers:
            p = r.predicted_ms[name]
            err = "" if r.measured_ms is None else f" ({100 * (p - r.measured_ms) / r.measured_ms:+.0f}%)"
            cells.append(f"{p:.1f}{err}")
        t.add_row(*cells)
    console.print(t)
    loads = [r.load_avg for r in out if r.load_avg is not None]
    busy = f"; load average {max(loads):.1f} on {os.cpu_count()} CPUs while timing" if loads else ""
    console.print(f"measured: median of the timed runs ± IQR (1 thread, fp32){busy}")
    for r in out:
        if r.note:
            console.print(f"{_short(r.platform)}: {r.note}")
    return out


def run_demo(out: str | Path = "runs/demo", config: str | Path | None = None, overrides: Sequence[str] = (),
             *, model_spec: str | None = DEFAULT_MODEL, runtimes: Sequence[str] = RUNTIMES, repeat: int = 30,
             baselines: Sequence[str] = ("flops",), console: Console | None = None) -> DemoResult:
    """Run the whole demo (see the module docstring); ``model_spec=None`` skips the local part.

    ``overrides`` are config ``key=value`` strings (e.g. ``train.epochs=1 data.max_graphs=48`` for a
    quick run); ``baselines`` are keys of :data:`BASELINES`, fitted on the same split.
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise LedgformerError(f"unknown demo baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    from ledgformer.train import report
    from ledgformer.train.checkpoint import save_checkpoint
    from ledgformer.train.config import load_config, save_config
    from ledgformer.train.tasks import build_task

    console = console or Console()
    t0 = time.time()
    cfg = load_config(find_config(config), list(overrides))
    if cfg["task"] != "latency":
        raise LedgformerError(f"the demo needs a config with task: latency, got {cfg['task']!r}")
    out = Path(out)
    cfg = {**cfg, "out": str(out)}
    seed = int(cfg["seed"])
    torch.set_num_threads(os.cpu_count() or 1)  # text embedding: big batches, every core helps
    console.print(f"[bold]1/4[/] loading the {cfg['data']['benchmark']} latency set, embedding node texts "
                  f"({cfg['features']['encoder']}, cached after the first run)")
    data = build_task(cfg)
    torch.set_num_threads(int(cfg["train"]["threads"]))
    if not isinstance(data, LatencyTaskData):
        raise LedgformerError("the demo needs the 'latency' task")
    summary = split_summary(data.split_json)
    held = _held_out(summary)
    console.print(f"    {len(data.graph_ids)} graphs, {data.target.size} measurements, {len(data.devices)} "
                  f"platforms ({', '.join(_short(d) for d in data.devices)})")
    console.print(f"    split by {summary['mode']}: train {summary['n_train_graphs']}, valid "
                  f"{summary['n_valid_graphs']}, test {summary['n_test_graphs']} graphs ({held}) "
                  f"[{time.time() - t0:.0f} s]")
    console.print(f"[bold]2/4[/] training LeDG-Former (up to {cfg['train']['epochs']} epochs, "
                  f"{cfg['train']['threads']} thread(s), model selection on valid)")
    names = {"ledgformer": "LeDG-Former", **{b: BASELINES[b][0] for b in baselines}}
    trainers, metrics = {}, {}
    trainers[names["ledgformer"]], metrics["ledgformer"] = _fit("ledgformer", cfg, data, seed)
    lf = metrics["ledgformer"]
    console.print(f"    {lf['train.epochs_run']} epochs in {lf['train.train_seconds']:.0f} s, "
                  f"best epoch {lf['train.best_epoch'] + 1}")
    console.print("[bold]3/4[/] fitting on the same split: " + "; ".join(
        f"{BASELINES[b][0]} ({BASELINES[b][1]})" for b in baselines))
    for b in baselines:
        trainers[names[b]], metrics[b] = _fit(b, cfg, data, seed)
    _table(console, data, {names[k]: m for k, m in metrics.items()}, held)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    (out / "split.json").write_text(data.split_json + "\n")
    save_checkpoint(out / "model.pt", trainers["LeDG-Former"].model, config=cfg, model_name="ledgformer",
                    model_config=lf["model_config"], encoder_id=data.encoder_id,
                    data_version=data.data_version)
    test = data.parts["test"]
    groups = [_short(d) for d in data.group(test)]
    for key, name in names.items():
        report.scatter_plot(data.target[test], trainers[name].predict(test), out / f"test_scatter_{key}.png",
                            f"{name}, {held} (ms)", groups=groups)
    result = DemoResult(metrics={"split": summary, **metrics}, out=out)
    if model_spec:
        console.print(f"[bold]4/4[/] predicting {model_spec} on this machine, then measuring it")
        trained_on = embedded_machine_text() if cfg["data"]["benchmark"] == "embedded" else None
        result.local = _local(console, trainers, cfg["features"]["encoder"], model_spec, runtimes, repeat,
                              trained_on)
        result.metrics["local"] = {"model": model_spec, "platforms": [vars(r) for r in result.local]}
    result.metrics["demo_seconds"] = time.time() - t0
    report.write_metrics_json(result.metrics, out / "metrics.json")
    plots = ", ".join(f"test_scatter_{k}.png" for k in names)
    console.print(f"wrote {out}/: metrics.json, {plots}, model.pt, config.yaml, split.json; "
                  f"demo took {result.metrics['demo_seconds']:.0f} s")
    return result


__all__ = ["BASELINES", "DEFAULT_MODEL", "DEMO_CONFIG", "RUNTIMES", "DemoResult", "LocalResult",
           "find_config", "predict_graph", "run_demo"]
