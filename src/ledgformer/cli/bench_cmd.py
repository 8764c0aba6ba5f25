"""`ledgformer bench SUITE`: ours, ablations and baselines over seeds -> results/SUITE.{json,md,png}."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ledgformer.errors import LedgformerError

EPILOG = """examples:
  ledgformer bench nb201-acc --quick        # minutes: a reduced check
  ledgformer bench nb201-acc                # the full suite the README quotes
  ledgformer bench configs/bench/my-suite.yaml --seeds 0,1 --jobs 2
  ledgformer bench --readme                 # regenerate README.md's Results block from results/
  ledgformer bench nnlqp --rerun gbdt       # train the gbdt runs again (after a fix to it)
  ledgformer bench nnlqp --dry-run          # which runs would train, which are reused; trains none
Suites live in configs/bench/<SUITE>.yaml; a rerun resumes (finished runs with the same config
and results version are kept)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark suite (ours, ablations, baselines, over seeds)",
                       description="Train and evaluate every variant of a suite in every setting over "
                       "seeds; write results/SUITE.json (every number, config, seed, versions, wall time, "
                       "machine), results/SUITE.md (mean ± std tables) and PNG plots.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", help="suite name (configs/bench/NAME.yaml) or a suite file")
    p.add_argument("--quick", action="store_true", help="the suite's reduced version (minutes)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the suite's)")
    p.add_argument("--results-dir", default="results", help="where SUITE.json/.md/.png go")
    p.add_argument("--runs-dir", default="runs/bench", help="run folders (checkpoints, plots)")
    p.add_argument("--jobs", type=int, default=1,
                   help="trainings at once, in worker processes of 1 torch thread each (default 1)")
    p.add_argument("--rerun", action="append", default=[], metavar="VARIANT",
                   help="train this variant's finished runs again (repeatable; e.g. after a fix to it)")
    p.add_argument("--dry-run", action="store_true",
                   help="print which runs would train and which finished runs are reused; train none")
    p.add_argument("--readme", nargs="?", const="README.md", default=None, metavar="FILE",
                   help="after the suite (or alone), rewrite FILE's generated Results block from "
                   "--results-dir (default FILE: README.md)")
    p.set_defaults(func=run)


def suite_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = Path("configs/bench") / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path("configs/bench").glob("*.yaml"))
        raise LedgformerError(f"no suite '{name}' (looked for {path}); known: {', '.join(known) or 'none'}")
    return path


def run(args: argparse.Namespace) -> int:
    from ledgformer.train.bench import plan_suite, run_suite
    from ledgformer.train.bench_report import update_readme

    if not args.suite and not args.readme:
        raise LedgformerError("name a suite (e.g. `ledgformer bench nb201-acc --quick`) or pass --readme")
    if args.suite:
        seeds = None
        if args.seeds:
            try:
                seeds = [int(s) for s in args.seeds.split(",")]
            except ValueError as err:
                raise LedgformerError(f"--seeds must be comma-separated integers, got {args.seeds!r}") \
                    from err
        if args.dry_run:
            print_plan(plan_suite(suite_path(args.suite), quick=args.quick, results_dir=args.results_dir,
                                  runs_dir=args.runs_dir, seeds=seeds, rerun=args.rerun))
            return 0
        # as typed, minus what cannot change a number (--rerun); --jobs stays: it sets the wall time
        command = " ".join(["ledgformer bench", shlex.quote(args.suite)] + (["--quick"] if args.quick else [])
                           + ([f"--seeds {args.seeds}"] if args.seeds else [])
                           + ([f"--jobs {args.jobs}"] if args.jobs != 1 else [])
                           + ([f"--results-dir {shlex.quote(args.results_dir)}"]
                              if args.results_dir != "results" else [])
                           + ([f"--runs-dir {shlex.quote(args.runs_dir)}"]
                              if args.runs_dir != "runs/bench" else []))
        res = run_suite(suite_path(args.suite), quick=args.quick, results_dir=args.results_dir,
                        runs_dir=args.runs_dir, seeds=seeds, command=command, jobs=args.jobs,
                        rerun=args.rerun)
        name = res["suite"] + ("-quick" if args.quick else "")
        print(f"{len(res['runs'])} runs in {res['wall_seconds'] / 60:.1f} min -> "
              f"{args.results_dir}/{name}.json, {name}.md")
    if args.readme:
        changed = update_readme(args.readme, args.results_dir)
        print(f"{args.readme}: results block {'updated' if changed else 'unchanged'}")
    return 0


def print_plan(plan: dict) -> None:
    """The totals (planned, reused, to train), then each (setting, variant) that would train with its
    seeds."""
    from collections import defaultdict

    train: dict[tuple[str, str], list[int]] = defaultdict(list)
    for _, head, _ in plan["todo"]:
        train[(head["setting"], head["variant"])].append(head["seed"])
    source = plan["results_file"] if plan["old"] else "(no results file yet)"
    print(f"suite {plan['name']}: {len(plan['grid'])} runs planned, {len(plan['reused'])} reused from "
          f"{source}, {len(plan['todo'])} would train")
    for (setting, variant), seeds in train.items():
        print(f"  train  {setting} | {variant} | seeds {', '.join(map(str, seeds))}")
    changed = sorted({c for cards in plan["stale_cards"].values() for c in cards})
    if changed:
        print(f"  ({len(plan['stale_cards'])} of them ran before a change to the hardware cards they "
              f"read: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''})")
