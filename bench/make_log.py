"""Write a big simulated upload log for benchmarks.

    python bench/make_log.py OUT --lines 1000000 [--seed N]

The log is steady upload traffic (JSON lines, utf-8) with a few outages, slow stretches, error
bursts and unparseable lines sprinkled in; see agent.simulator.write_upload_lines.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.simulator import write_upload_lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the log, report lines, bytes and seconds on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="file to write (overwritten)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines to write")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same bytes)")
    args = parser.parse_args(argv)
    if args.lines < 0:
        parser.error("--lines must be >= 0")
    started = time.perf_counter()
    written = write_upload_lines(args.out, args.lines, seed=args.seed)
    took = time.perf_counter() - started
    size = args.out.stat().st_size
    print(f"wrote {written} lines, {size / 1e6:.1f} MB to {args.out} in {took:.2f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
