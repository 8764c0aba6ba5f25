"""Record in committed results files the hardware cards each run read, as the code of its commit
saw them (one-off, for runs made before `ledgformer bench` recorded them itself).

For every run without a ``cards`` entry: the card names come from the run's checkpoint
(``extra.devices``, where its data config is the run's) or from another run of the same setting and
variant; the fingerprints (``HardwareCard.fingerprint``: text + features) are computed by the code
of the commit the run records, checked out in a temporary git worktree. A card edited since then
therefore shows up as stale (``ledgformer bench --dry-run``; tests/test_results_current.py). A run
made on a dirty tree (commit ``...+dirty``) cannot be pinned to one state of the code: it gets
``cards: null`` (unknown, not checked), and so does a run whose card names cannot be found.
Accuracy runs read no card: ``cards: {}``.

    python scripts/backfill_run_cards.py results/*.json results/studies/*.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
#: the fingerprint formula of HardwareCard.fingerprint, for code that predates the method
SNIPPET = """
import hashlib, json, sys
from ledgformer.hardware import load_card
out = {}
for name in json.load(sys.stdin):
    try:
        card = load_card(name)
    except Exception:
        out[name] = None
        continue
    payload = json.dumps({"text": card.to_text(), "features": [float(x) for x in card.features()]})
    out[name] = hashlib.sha256(payload.encode()).hexdigest()[:16]
print(json.dumps(out))
"""


def fingerprints_at(commit: str, names: list[str], tmp: Path) -> dict[str, str | None]:
    """Fingerprints of ``names`` computed by the code of ``commit`` (a throwaway worktree)."""
    tree = tmp / commit[:12]
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO, check=True,
                       capture_output=True)
    env = {"PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SNIPPET], input=json.dumps(names), env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def card_names(run: dict[str, Any], runs: list[dict[str, Any]]) -> list[str] | None:
    """The cards the run read: its checkpoint's devices, else those of a sibling run's checkpoint
    (same setting and variant) trained on the same data config."""
    same = [run] + [r for r in runs if (r["setting"], r["variant"]) == (run["setting"], run["variant"])]
    for r in same:
        path = REPO / r["config"]["out"] / "model.pt"
        if not path.is_file():
            continue
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt["config"].get("data") == run["config"].get("data"):
            return sorted({d for part in ckpt["extra"].get("devices", {}).values() for d in part})
    return None


def main(paths: list[str]) -> None:
    from ledgformer.hardware import load_card

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
        probe = ["help/raspi4", "mmb/torch/pixel4|3med|float"]
        assert fingerprints_at(head, probe, tmp) == {n: load_card(n).fingerprint() for n in probe}, \
            "SNIPPET no longer computes HardwareCard.fingerprint"
        for path in map(Path, paths):
            res = json.loads(path.read_text())
            todo = [r for r in res.get("runs", []) if "cards" not in r]
            if not todo:
                continue
            counts = {"recorded": 0, "dirty": 0, "no names": 0}
            for run in todo:
                # accuracy tasks read no hardware card
                names = [] if "accuracy" in run["config"].get("task", "") else card_names(run, res["runs"])
                commit = run.get("commit") or "+dirty"
                if names is None:
                    outcome, run["cards"] = "no names", None
                elif names and commit.endswith("+dirty"):
                    outcome, run["cards"] = "dirty", None
                else:
                    outcome, run["cards"] = "recorded", fingerprints_at(commit, names, tmp) if names else {}
                counts[outcome] += 1
            path.write_text(json.dumps(res, indent=1, default=str) + "\n")
            print(f"{path}: {counts}")
        for tree in tmp.iterdir():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
