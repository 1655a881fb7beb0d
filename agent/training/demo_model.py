"""Rebuild the demo's shipped model (models/demo.skops) the documented way:

    python -m agent.training.demo_model models/demo.skops

lays out the demo (config/agent.yaml and the shipped rules, as `invoice-agent demo` does),
simulates DAYS healthy days before the demo day with agent.simulator (no incidents, one seed
per day), and runs `invoice-agent train -c CONFIG --out OUT LOGFILE...` on them, printing that
command. Deterministic: the same simulator, config and scikit-learn give the same model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

DEMO_DAY = date(2026, 11, 2)  # agent.simulator's default day
DAYS = 14  # two weeks: each weekday and each (simulated) weekend twice
SEED = 1000  # + day index: unlike the demo day's seed 7


def history(workdir: Path, days: int = DAYS, last: date = DEMO_DAY - timedelta(days=1)
            ) -> tuple[Path, list[Path]]:
    """(config path, log files) of `days` healthy simulated days ending on `last`."""
    from agent.demo import prepare
    from agent.simulator import simulate

    config, _ = prepare(workdir)
    shutil.rmtree(workdir / "config" / "logs")  # the demo day with incidents: not for training
    files: list[Path] = []
    for i in range(days):
        day = last - timedelta(days=days - 1 - i)
        sim = simulate(workdir / "history" / day.isoformat(), day=day, seed=SEED + i,
                       incidents=False)
        files += [sim.files[k] for k in ("platform", "upload", "erp_sync", "syslog")]
    return config, files


def build(out: Path, workdir: Path | None = None, days: int = DAYS) -> int:
    """Write the demo model to `out`; the exit code of `invoice-agent train`."""
    from agent.training.commands import add_commands

    tmp = None
    if workdir is None:
        workdir = Path(tmp := tempfile.mkdtemp(prefix="invoice-agent-demo-model-"))
    try:
        config, files = history(workdir, days)
        argv = ["train", "-c", str(config), "--out", str(out), *map(str, files)]
        print("invoice-agent " + " ".join(argv[:5]) + f" <{len(files)} log files>")
        parser = argparse.ArgumentParser(prog="invoice-agent")
        add_commands(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
        args = parser.parse_args(argv)
        code: int = args.func(args)
        return code
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Rebuild the demo's shipped model.")
    p.add_argument("out", type=Path, help="model file to write, e.g. models/demo.skops")
    p.add_argument("--days", type=int, default=DAYS, help=f"healthy days (default {DAYS})")
    a = p.parse_args()
    sys.exit(build(a.out, days=a.days))
