"""bench/run_all.py: one command runs the benchmarks and rewrites the generated section of the
benchmarks document between its markers, keeping the hand-written text around it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
HAND_WRITTEN = """# Benchmarks

Why ratios, not seconds.

## Replay throughput

| date | ratio |
|---|---|
| 2026-11-22 (2 cores) | 0.25 |
"""


def run_all(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick",
                           "--out", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def blocks(text: str) -> dict[str, str]:
    """Each benchmark's part of the generated section, by name."""
    generated = text.split(START, 1)[1].split(END, 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(
        r"<!-- bench:block (\w+) [^>]*-->\n(.*?)<!-- bench:block-end -->", generated, re.DOTALL)}


def table_rows(block: str) -> list[list[str]]:
    """The figure rows of a block's table (header and rule left out), as cells."""
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    assert rows and rows[0].startswith("| figure |"), block
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[1:]]


def test_quick_run_writes_commands_and_ratio_tables_and_keeps_the_history(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text(HAND_WRITTEN, encoding="utf-8")

    done = run_all(out, "--only", "startup,model_score,replay_memory")

    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1
    assert text.index("Why ratios") < text.index(START)  # the summary comes first...
    assert text.index(END) < text.index("| 2026-11-22 (2 cores) | 0.25 |")  # ...history after
    assert "## Replay throughput" in text.split(END, 1)[1]
    generated = text.split(START, 1)[1].split(END, 1)[0]
    assert re.search(r"Last run: \d{4}-\d\d-\d\d \d\d:\d\d UTC", generated)
    assert "cores" in generated and "Python 3." in generated
    found = blocks(text)
    assert set(found) == {"startup", "model_score", "replay_memory"}
    for name, command in (("startup", "`python bench/startup.py --runs 1`"),
                          ("model_score", "`python bench/model_score.py --repeat 2`"),
                          ("replay_memory", "`python bench/replay_memory.py --lines 5000`")):
        assert command in found[name], found[name]
        rows = table_rows(found[name])
        assert rows, name
        for figure, value, baseline, ratio in rows:
            assert float(ratio.replace(",", "")) > 0, (name, figure, ratio)
            assert re.match(r"[\d,.]+ ", value) and re.search(r": [\d,.]+", baseline)


def test_a_failing_benchmark_is_reported_with_its_error_and_the_others_still_run(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text(HAND_WRITTEN, encoding="utf-8")
    first = run_all(out, "--only", "model_score")
    assert first.returncode == 0, first.stdout + first.stderr

    done = run_all(out, "--only", "startup,model_train", "--args", "startup=--runs 0")

    assert done.returncode == 1
    assert "failed: startup" in done.stdout
    found = blocks(out.read_text(encoding="utf-8"))
    assert "**Failed.**" in found["startup"]
    assert "--runs must be >= 1" in found["startup"]  # the end of its output
    assert "`python bench/startup.py --runs 0`" in found["startup"]
    assert table_rows(found["model_train"])  # ran after the failure
    # --only replaced these two and kept the earlier run's table of the third
    assert "`python bench/model_score.py --repeat 2`" in found["model_score"]
    assert table_rows(found["model_score"])


def test_an_unknown_benchmark_name_is_refused_with_the_known_ones(tmp_path):
    out = tmp_path / "benchmarks.md"

    done = run_all(out, "--only", "replay_speed")

    assert done.returncode == 2
    assert "unknown benchmark(s) replay_speed" in done.stderr and "replay_throughput" in done.stderr
    assert not out.exists()
