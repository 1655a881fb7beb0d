"""A trained model in memory: the feature spec, the hourly profile, the forest, the threshold.

The score of a time slot combines two views of the same deviations from the hour's normal:
- the IsolationForest over every measurement's z-score and the calendar features: an unusual
  *combination* (slightly more failures with slightly slower answers at month-end);
- the largest single deviation: one measurement far outside its hour's range. The forest
  alone underrates this: its score saturates once a point is isolated in a few cuts, so an
  upload latency 18x normal scores about like the most unusual ordinary window of the
  history (measured: 2 of 4 latency incidents missed, bench/model_eval.py --forest-only).
Each view is divided by its 99th training percentile, the score is the larger of the two,
and the alert threshold is the configured quantile of the training scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import numpy as np

from agent.model.calendar import BusinessCalendar
from agent.model.features import CALENDAR, FeatureSpec, calendar_matrix
from agent.model.profile import Profile
from agent.model.trees import ForestArrays

NORM_QUANTILE = 0.99


@dataclass
class Scored:
    """Scores of rows, with what the explanation needs."""

    score: np.ndarray  # combined; > threshold is abnormal
    forest: np.ndarray  # the forest's view, normalised
    deviation: np.ndarray  # the largest |z|, normalised
    z: np.ndarray  # rows x measurements
    at: np.ndarray  # fractional hour of each slot's middle
    kinds: np.ndarray  # kind of day (agent.model.calendar.DAY_TYPES)


class Model:
    """What `train` produces and `files` saves: everything scoring needs. The forest scores
    from numpy arrays (agent.model.trees); `pipeline` is the scikit-learn pipeline they were
    exported from, present after training and for inspection (files.load_pipeline), None in
    a model loaded for scoring."""

    def __init__(self, spec: FeatureSpec, forest: ForestArrays, profile: Profile,
                 forest_norm: float, deviation_norm: float, threshold: float,
                 meta: dict[str, Any], pipeline: Any = None):
        self.spec = spec
        self.forest = forest
        self.pipeline = pipeline
        self.profile = profile
        self.forest_norm = forest_norm
        self.deviation_norm = deviation_norm
        self.threshold = threshold
        self.meta = meta  # the rest of the metadata file (period, versions, stats, ...)

    @property
    def input_names(self) -> list[str]:
        return input_names(self.spec)

    def score(self, raw: np.ndarray, starts: Sequence[datetime], ends: Sequence[datetime],
              zone: tzinfo, cal: BusinessCalendar) -> Scored:
        """Score rows of raw measurements (spec.measured order) of slots [start, end): one
        forest call for all of them."""
        cal_rows, at, kinds = calendar_matrix(starts, ends, zone, cal)
        z = self.profile.z(raw, at, kinds)
        if len(raw) == 0:
            empty = np.zeros(0)
            return Scored(empty, empty, empty, z, at, kinds)
        f = self.forest.score(np.hstack([z, cal_rows])) / self.forest_norm
        d = deviation(z) / self.deviation_norm
        return Scored(np.maximum(f, d), f, d, z, at, kinds)


def deviation(z: np.ndarray) -> np.ndarray:
    return np.abs(z).max(axis=1) if z.shape[1] else np.zeros(len(z))


def input_names(spec: FeatureSpec) -> list[str]:
    """The forest's columns: each measurement's deviation, then the calendar."""
    return [f"z:{n}" for n in spec.measured_names] + [f"calendar.{c}" for c in CALENDAR]


def norm(values: np.ndarray) -> float:
    """The 99th percentile, never 0 (a history without any deviation at all)."""
    q = float(np.quantile(values, NORM_QUANTILE)) if len(values) else 0.0
    return q if q > 1e-9 else 1.0
