"""How long a crafted desired state keeps `load_desired_state` busy, against the shipped one.

Each attack is a copy of the shipped desired_state/ and policies/ with hostile files added:
alias-expanding documents in one file and spread over many files, dense flow sequences in
one file and in enough files to spend the load-wide event budget, a file of empty documents,
a file of blank lines, and a dataset line of 100,000 nested brackets. Every attack must be
refused (it is: the script says so), and the figure that matters is its time as a multiple
of loading the shipped desired state on this machine now: the parse budget is meant to keep
any of them to about a second.

Usage: python bench/parse_budget.py [--repeat 3]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.spec.loader import load_desired_state
from reconciler.spec.yaml_source import MAX_FILE_BYTES

PROJECT = Path(__file__).resolve().parents[1]
BOMB = (
    "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
)


def _fill(path: Path, unit: str) -> None:
    """Write `unit` repeated to just under the per-file size limit."""
    path.write_text(unit * ((MAX_FILE_BYTES - 16) // len(unit)))


def _one_file_bombs(repo: Path) -> None:
    (repo / "desired_state" / "bomb.yaml").write_text("---\n".join([BOMB] * 1_200))


def _spread_bombs(repo: Path) -> None:
    for number in range(100):
        (repo / "desired_state" / f"bomb-{number:03}.yaml").write_text("---\n".join([BOMB] * 4))


def _dense_flow(repo: Path) -> None:
    _fill(repo / "desired_state" / "dense.yaml", "- [a,b,c,d,e,f,g,h]\n")


def _dense_flow_files(repo: Path) -> None:
    """Enough dense files to spend the load-wide event budget, each refused at its own limit."""
    for number in range(12):
        _fill(repo / "desired_state" / f"dense-{number:02}.yaml", "- [a,b,c,d,e,f,g,h]\n")


def _empty_documents(repo: Path) -> None:
    _fill(repo / "desired_state" / "empty.yaml", "---\n")


def _blank_lines(repo: Path) -> None:
    for number in range(8):
        _fill(repo / "desired_state" / f"blank-{number}.yaml", "\n")


def _nested_dataset_line(repo: Path) -> None:
    dataset = repo / "desired_state" / "datasets" / "npc_dialogue" / "eval.jsonl"
    dataset.write_text(dataset.read_text() + "[" * 100_000 + "\n")


ATTACKS: dict[str, Callable[[Path], None]] = {
    "alias_bombs_one_file": _one_file_bombs,
    "alias_bombs_100_files": _spread_bombs,
    "dense_flow_sequences": _dense_flow,
    "dense_flow_12_files": _dense_flow_files,
    "empty_documents": _empty_documents,
    "blank_lines_8_files": _blank_lines,
    "nested_dataset_line": _nested_dataset_line,
}


def _repo(root: Path, name: str) -> Path:
    repo = root / name
    for folder in ("desired_state", "policies"):
        shutil.copytree(PROJECT / folder, repo / folder)
    return repo


def _seconds(repo: Path, repeat: int) -> tuple[float, bool]:
    best = float("inf")
    refused = False
    for _ in range(repeat):
        started = time.perf_counter()
        result = load_desired_state(repo)
        best = min(best, time.perf_counter() - started)
        refused = result.state is None
    return best, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many loads.")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        baseline, refused = _seconds(_repo(root, "shipped"), args.repeat)
        assert not refused, "the shipped desired state must load"
        print(f"shipped desired state: {baseline:.3f}s")
        figures["shipped_seconds"] = round(baseline, 4)
        worst = 0.0
        for name, attack in ATTACKS.items():
            repo = _repo(root, name)
            attack(repo)
            seconds, refused = _seconds(repo, args.repeat)
            worst = max(worst, seconds)
            verdict = "refused" if refused else "ACCEPTED"
            print(f"{name}: {seconds:.3f}s ({seconds / baseline:.0f}x the shipped), {verdict}")
            figures[f"{name}_seconds"] = round(seconds, 4)
            figures[f"{name}_refused"] = refused
        figures["worst_attack_seconds"] = round(worst, 4)
        figures["worst_attack_vs_shipped"] = round(worst / baseline, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
