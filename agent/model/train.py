"""Training: time slots of normal traffic in, a Model out (fit_model), and the two sources of
slots: log files replayed in event time, or the windows a running agent stored (history.py).

Slots inside alerts, silences or operator-given ranges are left out: the model must learn
normal, and an outage in the history would teach it that outages are normal. What training
refuses, it says in words: too little history (and how much is needed), no events at all,
NaN/inf values; constant measurements are named as a warning (they cannot tell normal from
abnormal, and the model ignores them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

from agent.model import forest
from agent.model.calendar import BusinessCalendar
from agent.model.config import ModelConfig
from agent.model.core import Model, deviation, input_names, norm
from agent.model.features import FEATURE_VERSION, FeatureSpec, Slot, calendar_matrix, raw_matrix
from agent.model.files import SAME_SCORE, model_meta
from agent.model.profile import Profile

log = logging.getLogger(__name__)

Span = tuple[datetime, datetime]
MAX_BAD_SHARE = 0.01  # rows with NaN/inf dropped silently up to this share of the history
PROBE_ROWS = 8


class TrainingRefused(ValueError):
    """Training cannot produce a useful model from this data; the message says why."""


@dataclass
class TrainReport:
    windows: int = 0  # time slots learned from
    excluded: int = 0  # inside alerts, silences or --exclude ranges
    nonfinite: int = 0  # dropped for NaN/inf values
    start: datetime | None = None
    end: datetime | None = None
    constant: list[str] = field(default_factory=list)
    threshold: float = 0.0
    abnormal_in_training: int = 0  # training slots above the threshold (about 1 - quantile)
    seconds: float = 0.0

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400 if self.start and self.end else 0

    def lines(self) -> list[str]:
        out = [f"learned from {self.windows} time slots ({self.days:.1f} days, "
               f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}) in "
               f"{self.seconds:.1f}s" if self.start and self.end else "no slots"]
        if self.excluded:
            out.append(f"left out {self.excluded} slots inside alerts or excluded ranges")
        if self.nonfinite:
            out.append(f"left out {self.nonfinite} slots with NaN/inf values")
        if self.constant:
            out.append(f"never changed in training (cannot tell normal from abnormal): "
                       f"{', '.join(self.constant)}")
        out.append(f"threshold {self.threshold:.3f}: {self.abnormal_in_training} training "
                   "slots above it")
        return out


def inside(slot: Slot, spans: Sequence[Span]) -> bool:
    return any(slot.start < b and a < slot.end for a, b in spans)


def fit_model(slots: Sequence[Slot], spec: FeatureSpec, cfg: ModelConfig, window: timedelta,
              zone: str, exclude: Sequence[Span] = ()) -> tuple[Model, TrainReport]:
    """Learn normal from `slots` (any order); raise TrainingRefused with the reason."""
    t0 = time.perf_counter()
    report = TrainReport()
    ordered = sorted(slots, key=lambda s: s.end)
    kept = [s for s in ordered if not inside(s, exclude)]
    report.excluded = len(ordered) - len(kept)
    width = len(spec.measured)
    if not spec.sources:
        raise TrainingRefused("no sources configured: nothing to learn from")
    raw = raw_matrix(kept, width)
    finite = np.isfinite(raw).all(axis=1)
    report.nonfinite = int((~finite).sum())
    if report.nonfinite > MAX_BAD_SHARE * max(1, len(kept)):
        bad = [n for n, ok in zip(spec.measured_names, np.isfinite(raw).all(axis=0),
                                  strict=True) if not ok]
        raise TrainingRefused(f"{report.nonfinite} of {len(kept)} time slots hold NaN or "
                              f"infinite values (in {', '.join(bad[:6])}): fix the source of "
                              "these features before training")
    kept = [s for s, ok in zip(kept, finite, strict=True) if ok]
    raw = raw[finite]
    need = cfg.min_days * 86400 / window.total_seconds()
    # an hour of slack: a replay's last window stays open when the files end mid-window, and
    # a week of logs must not be refused for lacking its final five minutes
    if len(kept) < need - 3600 / window.total_seconds():
        have_days = len(kept) * window.total_seconds() / 86400
        raise TrainingRefused(
            f"only {len(kept)} time slots of {window.total_seconds() / 60:g} minutes "
            f"({have_days:.1f} days) to learn from"
            + (f" after leaving out {report.excluded} inside alerts or excluded ranges"
               if report.excluded else "")
            + f"; training needs at least {cfg.min_days:g} days ({int(np.ceil(need))} slots, "
            "model.min_days): give more log files or keep windows longer (retention)")
    counts = [j for j, (_, m) in enumerate(spec.measured) if m == "count"]
    if not raw[:, counts].any():
        raise TrainingRefused("no events in any time slot: do the log files belong to the "
                              "configured sources, and do their lines parse?")
    report.constant = [n for n, sd in zip(spec.measured_names, raw.std(axis=0), strict=True)
                       if sd == 0]
    cal = calendar_of(cfg)
    tz = ZoneInfo(zone)
    cal_rows, at, kinds = calendar_matrix([s.start for s in kept], [s.end for s in kept], tz,
                                          cal)
    # the model is trained on the rounded profile it saves, so a loaded model scores the
    # same as the one just trained
    profile = Profile.fit(spec, raw, at, kinds).rounded()
    z = profile.z(raw, at, kinds)
    x = np.hstack([z, cal_rows])
    pipe = forest.fit(x, cfg.trees, cfg.max_samples, cfg.seed)
    f_raw = forest.score(pipe, x)
    arrays = forest.export(pipe)
    off = float(np.abs(arrays.score(x) - f_raw).max())
    if not off <= SAME_SCORE:  # the agent scores with the arrays: they must be the forest
        raise RuntimeError(f"the exported forest scores the training slots up to {off:.3g} "
                           f"off scikit-learn's (over {SAME_SCORE:g}): agent.model.trees does "
                           f"not compute what scikit-learn {forest.versions()['sklearn']} does")
    d_raw = deviation(z)
    f_norm, d_norm = _r(norm(f_raw)), _r(norm(d_raw))
    combined = np.maximum(f_raw / f_norm, d_raw / d_norm)
    threshold = _r(float(np.quantile(combined, cfg.threshold_quantile)))
    report.windows, report.start, report.end = len(kept), kept[0].start, kept[-1].end
    report.threshold = threshold
    report.abnormal_in_training = int((combined > threshold).sum())
    probe = np.linspace(0, len(kept) - 1, min(PROBE_ROWS, len(kept))).astype(int)
    probe = np.unique(np.append(probe, int(np.argmax(combined))))
    meta = model_meta({
        "feature_version": FEATURE_VERSION, "feature_names": spec.names,
        "sources": list(spec.sources), "ledger": spec.ledger,
        "model_inputs": input_names(spec), "window_seconds": window.total_seconds(),
        "timezone": zone,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training": {"start": report.start.isoformat(), "end": report.end.isoformat(),
                     "windows": report.windows, "excluded": report.excluded,
                     "nonfinite": report.nonfinite, "days": round(report.days, 2)},
        "versions": forest.versions(),
        "options": {"trees": cfg.trees, "max_samples": cfg.max_samples, "seed": cfg.seed,
                    "quantile": cfg.threshold_quantile},
        "threshold": threshold, "forest_norm": f_norm, "deviation_norm": d_norm,
        "calendar": {"month_end_days": cal.month_end_days,
                     "filing_last_day": cal.filing_last_day,
                     "fallback_years": sorted(cal.unknown_years)},
        "feature_stats": _stats(spec, raw, cal_rows),
        "constant": report.constant,
        "profile": profile.to_json(),
        "probe": {"inputs": x[probe].tolist(), "forest": f_raw[probe].tolist()},
    })
    model = Model(spec, arrays, profile, f_norm, d_norm, threshold, meta, pipeline=pipe)
    report.seconds = time.perf_counter() - t0
    return model, report


def calendar_of(cfg: ModelConfig) -> BusinessCalendar:
    return BusinessCalendar(cfg.holidays, cfg.workdays, cfg.month_end_days, cfg.filing_last_day)


def _r(v: float) -> float:
    """Rounded as the metadata keeps it (JSON floats round-trip exactly; this keeps them
    readable), and used rounded from the start so a loaded model decides the same."""
    return float(f"{v:.6g}")


def _stats(spec: FeatureSpec, raw: np.ndarray, cal_rows: np.ndarray) -> dict[str, dict]:
    """Per named feature: median and MAD over the training slots (raw units)."""
    allx = np.hstack([raw, cal_rows])
    med = np.median(allx, axis=0)
    mad = np.median(np.abs(allx - med), axis=0)
    return {n: {"median": _r(float(a)), "mad": _r(float(b))}
            for n, a, b in zip(spec.names, med, mad, strict=True)}
