"""`ledgformer families list|generate`: seeded random variants of CNN families as ONNX files."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from ledgformer.errors import LedgformerError

EPILOG = """examples:
  ledgformer families list
  ledgformer families generate --family resnet --count 10 --seed 0 --out models/
  ledgformer families generate --family all --count 3 --seed 1 --out models/ --max-macs 300e6

The same --seed gives byte-identical ONNX files; configs.json lists every variant's
configuration, input shape, MACs and the ONNX file's sha256."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "families",
        help="generate seeded variants of CNN families (ResNet, MobileNet, ... NAS-Bench-201) as ONNX",
        description="Model families with randomised depth, width, kernel size, expansion, resolution and "
        "batch, drawn from a seed, exported to ONNX for latency measurement.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fam = p.add_subparsers(dest="families_command", metavar="ACTION", required=True)
    ls = fam.add_parser("list", help="list the families")
    ls.set_defaults(func=run_list)
    gen = fam.add_parser("generate", help="write COUNT variants per family as ONNX files + configs.json")
    gen.add_argument("--family", required=True, help="a family name, several comma-separated, or 'all'")
    gen.add_argument("--count", type=int, required=True, help="variants per family")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--out", required=True, help="output folder (created if missing)")
    gen.add_argument(
        "--max-macs",
        type=float,
        default=None,
        help="redraw variants above this many MACs (whole batch; default 1e9)",
    )
    gen.set_defaults(func=run_generate)


def run_list(args: argparse.Namespace) -> int:
    from ledgformer.families import FAMILIES

    width = max(len(n) for n in FAMILIES)
    sys.stdout.write("".join(f"{n:<{width}}  {FAMILIES[n].description}\n" for n in sorted(FAMILIES)))
    return 0


def family_names(text: str) -> list[str]:
    """'all' or 'a,b' -> family names (unknown names are an error naming the valid ones)."""
    from ledgformer.families import FAMILIES

    names = sorted(FAMILIES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise LedgformerError(
            f"--family {text!r}: unknown family {bad[0] if bad else '(none given)'!r}; "
            f"expected 'all' or some of: {', '.join(sorted(FAMILIES))}"
        )
    return names


def run_generate(args: argparse.Namespace) -> int:
    from ledgformer.families import generate
    from ledgformer.families.generators import DEFAULT_MAX_MACS

    if args.count < 1:
        raise LedgformerError(f"--count must be >= 1, got {args.count}")
    max_macs = DEFAULT_MAX_MACS if args.max_macs is None else int(args.max_macs)
    if max_macs < 1:
        raise LedgformerError(f"--max-macs must be positive, got {args.max_macs}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    listing = []
    for family in family_names(args.family):
        for model in generate(family, args.count, args.seed, max_macs=max_macs):
            blob = model.to_onnx().SerializeToString()
            path = out / f"{model.name}.onnx"
            path.write_bytes(blob)
            listing.append({**model.to_dict(), "onnx": path.name, "sha256": hashlib.sha256(blob).hexdigest()})
            sys.stderr.write(f"{path}  {model.macs / 1e6:.1f} MMACs  input {model.input_shape}\n")
    (out / "configs.json").write_text(
        json.dumps({"seed": args.seed, "max_macs": max_macs, "models": listing}, indent=1) + "\n"
    )
    sys.stdout.write(f"wrote {len(listing)} ONNX files and configs.json to {out}\n")
    return 0
