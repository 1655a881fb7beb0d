"""Evaluate the IsolationForest model on synthetic weeks with labelled incidents.

    /work/venv/bin/python bench/model_eval.py [--seeds 3] [--for 2] [--quantile 0.9995]
                                              [--trees 100] [--max-samples 256] [--forest-only]
                                              [--json PATH]

Trains on 60 days of normal window-level traffic (agent/model/synthetic.py: daily, weekly and
month-end rhythms, China's holidays and make-up workdays), then runs the model through the
real alert lifecycle over the next 9 weeks (two month-ends, Mid-Autumn and National Day) with
5 incidents of each kind, and prints per kind recall and detection delay (in windows from the
incident's start) and false model alerts per week. Results: docs/model.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchjson  # noqa: E402

from agent.model.config import ModelConfig  # noqa: E402
from agent.training.evaluate import synthetic_evaluation  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="independent runs (train + test)")
    p.add_argument("--for", dest="for_windows", type=int, default=None,
                   help="abnormal windows in a row before an alert (default: config default)")
    p.add_argument("--quantile", type=float, default=None, help="threshold quantile")
    p.add_argument("--trees", type=int, default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--per-kind", type=int, default=5, help="incidents of each kind per run")
    p.add_argument("--forest-only", action="store_true",
                   help="ablation: the IsolationForest's score alone")
    p.add_argument("-v", "--verbose", action="store_true", help="list every false alert")
    benchjson.add_argument(p)
    a = p.parse_args()
    report = benchjson.Report("model_eval", a.json)
    opts = {k: v for k, v in {"for": a.for_windows, "quantile": a.quantile, "trees": a.trees,
                              "max_samples": a.max_samples}.items() if v is not None}
    cfg = ModelConfig.model_validate(opts)
    print(f"model: for={cfg.for_windows} quantile={cfg.threshold_quantile} trees={cfg.trees} "
          f"max_samples={cfg.max_samples}{' FOREST ONLY' if a.forest_only else ''}")
    totals: dict[str, list] = {}
    false = 0
    weeks = 0.0
    for seed in range(a.seeds):
        t0 = time.perf_counter()
        ev = synthetic_evaluation(cfg, seed=seed, per_kind=a.per_kind,
                                  forest_only=a.forest_only)
        print(f"\n-- seed {seed} ({time.perf_counter() - t0:.1f}s): {ev.train_report[0]}")
        lines = ev.table()
        print("\n".join(lines if a.verbose else lines[:len(ev.delays) + 2]))
        for k, ds in ev.delays.items():
            totals.setdefault(k, []).extend(ds)
        false += len(ev.false_alerts)
        weeks += ev.weeks
    print(f"\n== all seeds: {weeks:.0f} test weeks")
    print(f"{'incident':<16} {'recall':>9} {'within 2':>9} {'mean delay':>11} {'max delay':>10}")
    for k, ds in totals.items():
        hit = [d for d in ds if d is not None]
        within = sum(d <= 2 for d in hit)
        mean = f"{sum(hit) / len(hit):.1f}" if hit else "-"
        print(f"{k:<16} {len(hit):>4}/{len(ds):<4} {within:>4}/{len(ds):<4} {mean:>11} "
              f"{max(hit) if hit else '-':>10}")
        report.add(f"{k}: detected (within 2 windows {within}/{len(ds)}, mean delay {mean} "
                   "windows)", len(hit), "incidents", "incidents injected", len(ds))
    print(f"false model alerts: {false} in {weeks:.0f} weeks = {false / weeks:.2f} per week")
    report.add(f"false model alerts per week ({weeks:.0f} test weeks)", false / weeks,
               "per week")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
