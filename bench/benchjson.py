"""The `--json PATH` report every benchmark script can write, read by bench/run_all.py.

    {"bench": name, "command": "python bench/x.py --lines 1000", "rows": [
        {"figure": str, "value": number, "unit": str, "baseline": str | null,
         "baseline_value": number | null, "ratio": number | null}, ...],
     "skipped": [{"figure": str, "why": str}, ...], "notes": [str, ...]}

A row is one measured figure with the baseline it is compared with in the same run (its
description and value in the same unit) and their ratio. `skipped` (optional) names the figures
that could not be measured on this machine and why (a tool not installed); `notes` (optional)
say what the figures assume.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def add_argument(parser: argparse.ArgumentParser) -> None:
    """`--json PATH` on a script's parser."""
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="also write the figures as JSON to PATH (bench/run_all.py reads it)")


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, as one would type it from the repository's root,
    without `--json PATH`."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = argv[0]
    rest, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            rest.append(arg)
    return shlex.join(["python", shown, *rest])


def _number(x: float | int | None) -> float | int | None:
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no inf/nan: "not measured"
    return x


class Report:
    """The rows of one benchmark run; `write()` saves them if `--json` was given."""

    def __init__(self, bench: str, path: Path | None):
        self.bench, self.path = bench, path
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.skipped: list[dict[str, str]] = []

    def add(self, figure: str, value: float, unit: str, baseline: str | None = None,
            baseline_value: float | None = None, ratio: float | None = None) -> None:
        """One figure; `ratio` defaults to value / baseline_value."""
        if ratio is None and baseline_value:
            ratio = value / baseline_value
        self.rows.append({"figure": figure, "value": _number(value), "unit": unit,
                          "baseline": baseline, "baseline_value": _number(baseline_value),
                          "ratio": _number(ratio)})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def skip(self, figure: str, why: str) -> None:
        """A figure not measured in this run, and why."""
        self.skipped.append({"figure": figure, "why": why})

    def write(self) -> None:
        if self.path is None:
            return
        data: dict[str, Any] = {"bench": self.bench, "command": command_line(),
                                "rows": self.rows}
        if self.skipped:
            data["skipped"] = self.skipped
        if self.notes:
            data["notes"] = self.notes
        self.path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
