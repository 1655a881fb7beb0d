"""Run every benchmark and write their figures at the top of docs/benchmarks.md.

    python bench/run_all.py [--quick] [--only NAME,...] [--out PATH] [--args NAME=ARGS]
                            [--logs DIR]

Each benchmark runs as its own process (`python bench/NAME.py ARGS --json FILE`), one after
the other, and reports rows of figures, each with the baseline it measured in the same run and
their ratio (bench/benchjson.py). The section between `<!-- bench:start -->` and
`<!-- bench:end -->` of --out (default docs/benchmarks.md) is rewritten: the date, the machine,
and per benchmark its command and a table; the hand-written text around it is kept. With
--only, the other benchmarks' tables from an earlier run stay as they were (each says when it
ran). A benchmark that fails is written as failed with the end of its output, the others still
run, and the exit status is 1.

--quick runs small sizes (a smoke test, a minute or two): its figures show the runner works,
not how fast the agent is. --args NAME="--lines 200000" replaces a benchmark's arguments.
fail2ban-regex (Debian: apt-get install fail2ban) is used when installed; otherwise its rows
say they were skipped. bench/live_cpu.py is included when the file exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import benchdoc

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Bench:
    name: str
    about: str  # what it measures, one line
    full: tuple[str, ...]  # arguments of the full-size run
    quick: tuple[str, ...]  # arguments of --quick
    sizes: str = ""  # why the full run's sizes differ from the script's defaults
    optional: bool = False  # run only if its script exists (written by someone else)
    timeout: float = 3600.0  # seconds (full run); a quick run gets 600


BENCHES = (
    Bench("replay_throughput", "replay lines/s of a JSON upload log and a syslog file, against "
          "a bare read-and-parse loop and fail2ban-regex",
          ("--lines", "1000000", "--repeat", "3", "--format", "both"),
          ("--lines", "20000", "--repeat", "1", "--format", "both")),
    Bench("replay_memory", "peak RSS of `invoice-agent replay` on N and 5N lines",
          ("--lines", "200000"), ("--lines", "5000")),
    Bench("live_latency", "line appended -> alert at a local webhook, p50/p99 over hundreds "
          "of alerts, against a bare watcher", ("--alerts", "300"),
          ("--alerts", "10", "--gap", "0.05", "--lateness", "0s")),
    Bench("live_resources", "RSS over millions of lines, idle CPU with 50 quiet files, 200 "
          "files at once", ("--lines", "5000000", "--idle-seconds", "60", "--files", "200"),
          ("--lines", "20000", "--idle-seconds", "2", "--files", "20", "--rounds", "1")),
    Bench("live_cpu", "CPU seconds per million lines, live against replay",
          ("--lines", "1000000", "--repeat", "3"), ("--lines", "20000"), optional=True),
    Bench("wake_cost", "what a wake-up after a sleep adds to the daemon's CPU per line "
          "(what read_interval trades)", (), ("--lines", "5000", "--repeat", "1",
                                               "--sleeps", "0.01")),
    Bench("ledger_bench", "the invoice ledger at a million invoices, against bare SQLite and "
          "the rules-only replay", ("--invoices", "1000000"),
          ("--invoices", "5000", "--lookups", "1000", "--repeat", "1")),
    Bench("state_size", "the state database's size over simulated days, against the bytes "
          "written", ("--days", "90", "--ledger-retention", "30d"),
          ("--days", "1", "--rate", "1"),
          sizes="ledger retention 30 days instead of the script's 400: the same shape as the "
                "second column of the history below, in 4.5 GiB of disk instead of 12.6"),
    Bench("startup", "start-up time of --help, check and status, against bare Python",
          ("--runs", "9"), ("--runs", "1")),
    Bench("reliability", "kill -9 rounds and rotation torture: lines counted against lines "
          "written", ("--crash-rounds", "200", "--rotations", "300", "--seed", "1"),
          ("--crash-rounds", "2", "--rotations", "5", "--seed", "1")),
    Bench("rules_scaling", "replay lines/s with none, one, early and 1,000 rules",
          ("--lines", "300000", "--repeat", "3"),
          ("--lines", "5000", "--repeat", "1", "--rules", "50")),
    Bench("model_eval", "the anomaly model's recall and false alerts on synthetic weeks",
          ("--seeds", "3"), ("--seeds", "1", "--per-kind", "1")),
    Bench("model_replay", "what the model costs replay, live scoring and memory",
          ("--days", "7", "--repeat", "3"), ("--days", "1", "--repeat", "1")),
    Bench("model_score", "the numpy forest against scikit-learn's score_samples",
          ("--repeat", "20"), ("--repeat", "2")),
    Bench("model_train", "training time from stored windows and from logs",
          ("--days", "60", "--log-days", "14"), ("--days", "7", "--log-days", "0")),
)


@dataclass
class Outcome:
    bench: Bench
    status: str  # "ok" | "failed" | "skipped"
    command: str
    seconds: float = 0.0
    data: dict = field(default_factory=dict)
    error: str = ""  # why it failed or was skipped: the end of its output


def machine() -> str:
    """Cores, CPU model and Python, one line."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def revision() -> str:
    """The commit the tree is at, and whether it has changes (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head}" + (" with uncommitted changes" if dirty.strip() else "")


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_report(data: object, name: str) -> str | None:
    """What is wrong with a benchmark's --json report, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return "no `rows` list"
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("figure"), str):
            return f"row {i} has no `figure`"
        for key in ("value", "baseline_value", "ratio"):
            if row.get(key) is not None and not isinstance(row[key], (int, float)):
                return f"row {i}: `{key}` is not a number"
    return None


def run(bench: Bench, args: tuple[str, ...], timeout: float, logs: Path) -> Outcome:
    script = BENCH / f"{bench.name}.py"
    command = shlex.join(["python", f"bench/{bench.name}.py", *args])
    report = logs / f"{bench.name}.json"
    log = logs / f"{bench.name}.log"
    report.unlink(missing_ok=True)  # a kept folder's report of an earlier run is not this one
    started = time.perf_counter()
    with open(log, "wb") as out:
        # its own session: on a timeout the benchmark and the agents it started are stopped
        proc = subprocess.Popen([sys.executable, str(script), *args, "--json", str(report)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    seconds = time.perf_counter() - started
    output = log.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        why = f"timed out after {timeout:.0f} s" if code is None else f"exit status {code}"
        return Outcome(bench, "failed", command, seconds, error=f"{why}\n{tail(output)}")
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Outcome(bench, "failed", command, seconds,
                       error=f"no readable --json report ({exc})\n{tail(output)}")
    problem = check_report(data, bench.name)
    if problem:
        return Outcome(bench, "failed", command, seconds,
                       error=f"bad --json report: {problem}\n{tail(output)}")
    return Outcome(bench, "ok", data.get("command") or command, seconds, data=data)


def parse_overrides(items: list[str], names: set[str]) -> dict[str, tuple[str, ...]]:
    out = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or name not in names:
            raise SystemExit(f"--args expects NAME=ARGS with NAME one of {', '.join(sorted(names))}"
                             f", not {item!r}")
        out[name] = tuple(shlex.split(rest))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--only", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md",
                    help="the Markdown file to rewrite (default: docs/benchmarks.md)")
    ap.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                    help="arguments for one benchmark instead of the runner's (repeatable)")
    ap.add_argument("--logs", type=Path, metavar="DIR",
                    help="keep each benchmark's whole output (NAME.log) and report (NAME.json) "
                         "in DIR (default: a temporary folder, removed)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    a = ap.parse_args(argv)
    names = {b.name for b in BENCHES}
    if a.list:
        for b in BENCHES:
            print(f"{b.name:<18} {b.about}")
        return 0
    chosen = list(BENCHES)
    if a.only:
        wanted = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: "
                     f"{', '.join(b.name for b in BENCHES)}")
        chosen = [b for b in BENCHES if b.name in wanted]
    overrides = parse_overrides(a.args, names)
    present = {b.name for b in chosen if (BENCH / f"{b.name}.py").exists()}  # at the start
    started = datetime.now(timezone.utc)
    host, rev = machine(), revision()
    print(f"{len(chosen)} benchmarks, {'quick' if a.quick else 'full'} sizes; {host}; {rev}",
          flush=True)
    outcomes = []
    t0 = time.perf_counter()
    if a.logs is not None:
        a.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ia-run-all-") as tmp:
        logs = a.logs if a.logs is not None else Path(tmp)
        for i, b in enumerate(chosen, 1):
            args = overrides.get(b.name, b.quick if a.quick else b.full)
            if b.name not in present:
                why = f"bench/{b.name}.py does not exist (yet) in this tree"
                outcomes.append(Outcome(b, "skipped", f"python bench/{b.name}.py", error=why))
                print(f"[{i}/{len(chosen)}] {b.name}: skipped, {why}", flush=True)
                continue
            print(f"[{i}/{len(chosen)}] {b.name}: "
                  f"{shlex.join(['python', f'bench/{b.name}.py', *args])}", flush=True)
            outcome = run(b, args, 600.0 if a.quick else b.timeout, logs)
            outcomes.append(outcome)
            print(f"    {outcome.status} in {benchdoc.duration(outcome.seconds)}"
                  + (f": {outcome.error.splitlines()[0]}" if outcome.error else ""), flush=True)
            if outcome.status == "failed":
                print(re.sub(r"(?m)^", "    | ", tail(outcome.error, 12)), flush=True)
    run_info = benchdoc.RunInfo(started, host, rev, a.quick, time.perf_counter() - t0,
                                shlex.join(["python", "bench/run_all.py",
                                            *(argv if argv is not None else sys.argv[1:])]))
    benchdoc.write(a.out, run_info, outcomes, [b.name for b in BENCHES])
    failed = [o.bench.name for o in outcomes if o.status == "failed"]
    print(f"wrote {a.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
