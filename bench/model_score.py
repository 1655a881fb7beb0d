"""The agent's numpy forest (agent.model.trees) against scikit-learn's score_samples on the
shipped demo model: same scores, and the time per call at the batch sizes that matter.

    python bench/model_score.py [--repeat 20] [--json PATH]

Rows: the model's probe rows, resampled with noise. Batch sizes: 1 (live: one slot per
window), 512 (replay: model.batch_size), 4,096 and 20,000 (a long `evaluate`). Prints
the largest score difference and, per size, the best time of each and the ratio
sklearn / numpy (above 1: numpy faster). Results: docs/model.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchjson  # noqa: E402

from agent.model.files import load_model  # noqa: E402

MODEL = Path(__file__).resolve().parent.parent / "models" / "demo.skops"
SIZES = (1, 512, 4096, 20_000)


def best(f, x: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    benchjson.add_argument(ap)
    a = ap.parse_args()
    report = benchjson.Report("model_score", a.json)
    model = load_model(MODEL, with_pipeline=True)
    probe = np.array(model.meta["probe"]["inputs"])
    rng = np.random.default_rng(0)
    rows = probe[rng.integers(len(probe), size=max(SIZES))]
    rows = rows + rng.normal(0, 1.5, rows.shape)
    pipe, arrays = model.pipeline, model.forest
    diff = float(np.abs(arrays.score_samples(rows) - pipe.score_samples(rows)).max())
    print(f"{MODEL.name}: {arrays.n_trees} trees, {arrays.n_features} inputs, depth "
          f"{arrays.depth}; largest |numpy - sklearn| over {len(rows):,} rows: {diff:.3g}")
    print(f"{'rows':>7} {'sklearn':>12} {'numpy':>12} {'sklearn/numpy':>14}")
    for n in SIZES:
        x = rows[:n]
        ts = best(pipe.score_samples, x, a.repeat)
        tn = best(arrays.score_samples, x, a.repeat)
        print(f"{n:>7,} {ts * 1000:9.2f} ms {tn * 1000:9.2f} ms {ts / tn:13.2f}x")
        rows_text = f"{n:,} rows" if n > 1 else "1 row"
        report.add(f"score {rows_text}, numpy arrays (best of {a.repeat})", tn * 1000, "ms",
                   "scikit-learn score_samples", ts * 1000)
    report.note(f"Largest |numpy - sklearn| score difference {diff:.3g}.")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
