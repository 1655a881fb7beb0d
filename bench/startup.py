"""Start-up time of the quick commands against bare Python measured in the same run.

    python bench/startup.py [--runs 9] [--root DIR] [--config PATH] [--json PATH]

Runs each command as a fresh process, --runs times, the commands taking turns so that a busy
machine slows them alike, and prints the median wall time of each, its ratio to the two
baselines and the heavy libraries it imported (from one more run under `-X importtime`):
  python -c pass                      the interpreter alone
  python -c "import json, sqlite3"    what any command of the agent needs at least
  invoice-agent --help | check -c CONFIG | status -c CONFIG   (as `python -m agent ...`)
--root runs the agent of another tree (a copy of an older commit, made with `git worktree
add /tmp/before HEAD` or `git archive HEAD | tar -x -C /tmp/before`) with its own config:
the before/after numbers of docs/benchmarks.md. Ratios, not seconds, compare across machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchjson

HERE = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "sklearn", "scipy", "skops", "apprise", "jinja2", "pydantic", "sqlite_utils",
         "prometheus_client", "chinese_calendar", "yaml", "regex", "simpleeval", "watchdog",
         "tqdm", "requests")


def commands(config: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "import json, sqlite3": [py, "-c", "import json, sqlite3"],
        "--help": [py, "-m", "agent", "--help"],
        "check": [py, "-m", "agent", "check", "-c", config],
        "status": [py, "-m", "agent", "status", "-c", config],
    }


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # check exits 1 on a config with problems: still timed
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]!r}")
    return took


def imported(argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The heavy top-level packages `argv` imports (a Python command only)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0]
             for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return [h for h in HEAVY if h in names]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, time every command, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (median)")
    parser.add_argument("--root", type=Path, default=HERE,
                        help="the tree whose `agent` package runs (default: this one)")
    parser.add_argument("--config", help="config file (default: ROOT/config/agent.yaml)")
    benchjson.add_argument(parser)
    args = parser.parse_args(argv)
    report = benchjson.Report("startup", args.json)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    root = args.root.resolve()
    config = args.config or str(root / "config" / "agent.yaml")
    # the tree's own package first (before an editable install of another checkout)
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmds = commands(config)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # one run each to warm the disk cache, not counted
        timed(cmd, env, root)
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd, env, root))
    median = {name: statistics.median(t) for name, t in times.items()}
    bare, least = median["python -c pass"], median["import json, sqlite3"]
    print(f"agent from {root}; median of {args.runs} runs; python {sys.version.split()[0]}")
    print(f"{'command':<22} {'median':>8} {'x pass':>7} {'x json':>7}  imports")
    for name, cmd in cmds.items():
        heavy = ", ".join(imported(cmd, env, root))
        print(f"{name:<22} {median[name] * 1000:6.0f}ms {median[name] / bare:7.1f} "
              f"{median[name] / least:7.1f}  {heavy or '-'}")
        if name != "import json, sqlite3":
            shown = name if name.startswith("python") else \
                f"invoice-agent {' '.join(cmd[3:]).replace(config, os.path.relpath(config, root))}"
            report.add(f"`{shown}`", median[name] * 1000, "ms",
                       '`python -c "import json, sqlite3"`', least * 1000)
    report.note(f"Median of {args.runs} runs of each command, as fresh processes.")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
