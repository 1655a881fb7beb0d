"""Peak memory of `invoice-agent replay` on a small and a 5x larger log, in the same run.

    python bench/replay_memory.py [--lines 200000] [--json PATH]

Runs replay as a subprocess on N and 5N upload lines and prints the peak RSS of each and their
ratio: close to 1 means memory stays flat as the input grows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import benchjson

from agent.demo import prepare


def peak_rss_mib(config: Path, log: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "replay", "-c", str(config),
                             str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)  # this child's own peak, not every child's
    proc.returncode = 0
    return usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("replay_memory", args.json)
    work = Path(tempfile.mkdtemp(prefix="ia-mem-"))
    try:
        config, _ = prepare(work)
        logs = config.parent / "logs"
        small, large = logs / "upload-small.log", logs / "upload-large.log"
        # written by a child: a forked child's peak RSS starts at its parent's, so the parent
        # must stay small
        maker = Path(__file__).with_name("make_log.py")
        for path, n in ((small, args.lines), (large, args.lines * 5)):
            subprocess.run([sys.executable, str(maker), str(path), "--lines", str(n)],
                           check=True, stderr=subprocess.DEVNULL)
        a = peak_rss_mib(config, small)
        b = peak_rss_mib(config, large)
        print(f"peak RSS {args.lines:,} lines: {a:.0f} MiB")
        print(f"peak RSS {args.lines * 5:,} lines: {b:.0f} MiB")
        print(f"ratio large/small: {b / a:.2f}")
        report.add(f"peak RSS of `invoice-agent replay`, {args.lines * 5:,} lines", b, "MiB",
                   f"the same replay of {args.lines:,} lines", a)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
