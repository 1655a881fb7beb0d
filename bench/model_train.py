"""How long training takes: 60 days of 5-minute windows from a running agent's store, and
days of log files replayed.

    python bench/model_train.py [--days 60] [--log-days 14] [--json PATH]

Stored windows: DAYS days of synthetic window-level traffic (agent/model/synthetic.py, 4
sources) written to a store as the daemon writes them, then `train_from_store` (read from
SQLite, slots, profile, forest, threshold) and `save_model`. Log files: LOG_DAYS healthy days
of the demo's logs (agent.simulator) through `invoice-agent train` with the demo config and
rules (replay with the ledger, then fit). Results: docs/model.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchjson  # noqa: E402

from agent.model import synthetic  # noqa: E402
from agent.model.config import ModelConfig  # noqa: E402
from agent.model.features import FeatureSpec  # noqa: E402
from agent.model.files import save_model  # noqa: E402
from agent.store import DB_NAME, Batch, Store  # noqa: E402
from agent.training import demo_model  # noqa: E402
from agent.training.retrain import train_from_store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--log-days", type=int, default=14)
    benchjson.add_argument(ap)
    a = ap.parse_args()
    report = benchjson.Report("model_train", a.json)
    work = Path(tempfile.mkdtemp(prefix="ia-train-bench-"))
    try:
        import sklearn  # noqa: F401  before the clock: time the training, not the import

        windows = synthetic.generate(date(2026, 7, 1), a.days, seed=1)
        store = Store(work / DB_NAME)
        store.commit(Batch(windows=windows))
        store.close()
        spec = FeatureSpec.for_sources(synthetic.SOURCES)
        cfg = ModelConfig.model_validate({})
        t = time.perf_counter()
        model, fit = train_from_store(work / DB_NAME, spec, cfg, windows[0].end -
                                      windows[0].start, "Asia/Shanghai", {},
                                      windows[-1].end, days=a.days)
        trained = time.perf_counter() - t
        save_model(model, work / "m.skops")
        total = time.perf_counter() - t
        print(f"{a.days} days of stored windows ({len(windows):,} windows, {fit.windows:,} "
              f"slots): read + train {trained:.2f}s (fit alone {fit.seconds:.2f}s), "
              f"+ save {total - trained:.2f}s")
        report.add(f"train from {a.days} days of stored windows: read + train + save", total,
                   "s", "the forest's fit alone", fit.seconds)
        if a.log_days:
            t = time.perf_counter()
            config, files = demo_model.history(work / "logs", a.log_days)
            made = time.perf_counter() - t
            t = time.perf_counter()
            code = demo_model.build(work / "logs.skops", work / "logs2", a.log_days)
            took = time.perf_counter() - t
            print(f"{a.log_days} days of logs: simulated in {made:.1f}s; `invoice-agent train` "
                  f"(simulation again + replay + fit) {took:.1f}s, exit {code}")
            if code != 0:
                raise SystemExit(f"invoice-agent train exited {code}")
            report.add(f"`invoice-agent train` from {a.log_days} days of simulated logs "
                       "(simulation + replay + fit)", took, "s",
                       "simulating the same days alone", made)
        report.write()
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
