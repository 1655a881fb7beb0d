"""What is normal at this hour: per measurement, per hour of day and kind of day (day off,
business day, month-end business day), the training centre and spread; and each slot's
deviation from it as a z-score.

Why z-scores rather than raw values into the forest: 40 uploads is ordinary at 10:00 and a
collapse at 10:00 is not, but "40" alone is ordinary at either hour, and a forest isolates a
point by cutting one column at a time. Why per measurement kind: a rate over 2 uploads at
03:00 or a p95 over 3 samples swings wildly in normal traffic; read naively such swings are
"50 sigma" every night and hide a real incident. So counts carry their Poisson noise, rates
are compared as binomial counts, and a latency percentile weighs as much as its samples.

The explanation reuses the same numbers: the measurements furthest from their hour's normal,
with the range (5th-95th percentile) they kept at that hour in training. A (kind of day, hour)
cell with few training windows borrows the hour over all days, then all windows.

Each cell describes the middle of its hour; a slot between two middles gets a linear blend of
both. Traffic ramps up and down within an hour (19:00 busy, 19:55 nearly idle), and a cell's
single median would call the end of every evening ramp a collapse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.model.features import FeatureSpec

DAY_KINDS = 3
MIN_CELL = 24  # windows a cell needs before its own centre and spread are trusted
MIN_SAMPLES = 5  # latency: windows with samples a cell needs
Z_CLIP = 50.0  # beyond this a z-score adds nothing but float noise to the forest
MAD_TO_SD = 1.4826
SPREAD_FLOOR = 0.05  # on the log scale: 5%; a value that never moved is not "infinitely" off
LATENCY_WEIGHT = 5.0  # a percentile of n samples weighs n / (n + 5): 1 sample = 1/6
RATE_PRIOR = 50.0  # pseudo-events pulling a rate seen over few events toward ~1%
_ARRAYS = ("center", "spread", "low", "high")


class Profile:
    """Arrays indexed [kind of day, hour, measurement]; `cells` counts training windows."""

    def __init__(self, spec: FeatureSpec, center: np.ndarray, spread: np.ndarray,
                 low: np.ndarray, high: np.ndarray, cells: np.ndarray):
        self.spec = spec
        self.center, self.spread, self.low, self.high = center, spread, low, high
        self.cells = cells
        self._kinds = np.array(spec.kinds)
        names = [m for _, m in spec.measured]
        sources = [s for s, _ in spec.measured]
        # the event count behind each measurement (rates, latencies), -1 for none
        self._n_col = np.array([spec.column_of(s, "count") for s in sources])
        self._timeout_col = np.array([spec.column_of(s, "timeout_rate") for s in sources])
        self._names = names

    # -- training ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, spec: FeatureSpec, raw: np.ndarray, at: np.ndarray,
            kinds: np.ndarray) -> "Profile":
        """Learn from rows of raw measurements at fractional hours `at` (a slot's middle)."""
        hours = np.floor(at).astype(np.int64) % 24
        m = raw.shape[1]
        shape = (DAY_KINDS, 24, m)
        arrays = {k: np.zeros(shape) for k in _ARRAYS}
        cells = np.zeros((DAY_KINDS, 24), dtype=np.int64)
        prof = cls(spec, arrays["center"], arrays["spread"], arrays["low"], arrays["high"],
                   cells)
        everything = np.ones(len(raw), dtype=bool)
        sampled = np.column_stack([prof._samples(raw, j) >= 1 for j in range(m)]) if m else (
            np.zeros(raw.shape, dtype=bool))
        for h in range(24):
            at_hour = hours == h
            for k in range(DAY_KINDS):
                rows = at_hour & (kinds == k)
                cells[k, h] = int(rows.sum())
                choices = [rows, at_hour, everything]
                for j in range(m):
                    prof._fit_cell(raw, sampled, choices, k, h, j)
        return prof

    def _fit_cell(self, raw: np.ndarray, sampled: np.ndarray, choices: list[np.ndarray],
                  k: int, h: int, j: int) -> None:
        kind = self._kinds[j]
        for rows in choices:
            if kind == "latency":
                rows = rows & sampled[:, j]  # windows without samples say nothing
                enough = int(rows.sum()) >= MIN_SAMPLES
            else:
                enough = int(rows.sum()) >= MIN_CELL
            if enough:
                break
        x = raw[rows, j]
        if len(x) == 0:
            return  # never any sample (a source without latencies): z stays 0
        self.low[k, h, j], self.high[k, h, j] = np.percentile(x, 5), np.percentile(x, 95)
        if kind == "rate":
            n = raw[rows, self._n_col[j]]
            events = float((x * n).sum())
            self.center[k, h, j] = (events + 0.5) / (float(n.sum()) + RATE_PRIOR)
        elif kind == "diversity":
            self.center[k, h, j] = float(x.mean())
        else:
            lx = np.log1p(np.clip(x, 0, None))
            med = float(np.median(lx))
            self.center[k, h, j] = med
            self.spread[k, h, j] = max(float(np.median(np.abs(lx - med))) * MAD_TO_SD,
                                       SPREAD_FLOOR)

    def _samples(self, raw: np.ndarray, j: int) -> np.ndarray:
        """Latency samples behind column j per row (count less timeouts, which carry none)."""
        n_col, t_col = self._n_col[j], self._timeout_col[j]
        if n_col < 0:
            # a ledger lag: no sample count; 0 means nothing completed in the window
            return np.where(raw[:, j] > 0, np.inf, 0.0)
        n = raw[:, n_col]
        return n * (1 - raw[:, t_col]) if t_col >= 0 else n

    # -- scoring -----------------------------------------------------------------------------
    def _blend(self, a: np.ndarray, at: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """a[kind, hour] blended between the two hour middles around `at` (rows x m)."""
        x = at - 0.5
        h0 = np.floor(x).astype(np.int64)
        w = (x - h0)[:, None]
        return (1 - w) * a[kinds, h0 % 24] + w * a[kinds, (h0 + 1) % 24]

    def z(self, raw: np.ndarray, at: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """Each measurement's deviation from its normal at fractional hour `at`; + is more
        (events, failures, latency, backlog), - fewer events. Only counts are two-sided:
        fewer failures or a faster answer is never the problem."""
        c, s = self._blend(self.center, at, kinds), self._blend(self.spread, at, kinds)
        z = np.zeros(raw.shape)
        for j, kind in enumerate(self._kinds):
            x = raw[:, j]
            if kind in ("volume", "level"):
                lx = np.log1p(np.clip(x, 0, None))
                poisson = 1.0 / (np.expm1(c[:, j]) + 1.0) if kind == "volume" else 0.0
                z[:, j] = (lx - c[:, j]) / np.sqrt(s[:, j] ** 2 + poisson)
                if kind == "level":
                    z[:, j] = np.maximum(z[:, j], 0.0)
            elif kind == "rate":
                n = raw[:, self._n_col[j]]
                p = c[:, j]
                z[:, j] = np.maximum((x * n - n * p) / np.sqrt(n * p * (1 - p) + 1.0), 0.0)
            elif kind == "latency":
                n = self._samples(raw, j)
                finite = np.where(np.isinf(n), 0.0, n)  # inf: no sample count, full weight
                w = np.where(np.isinf(n), 1.0, np.sqrt(finite / (finite + LATENCY_WEIGHT)))
                lx = np.log1p(np.clip(x, 0, None))
                dev = np.where(s[:, j] > 0, (lx - c[:, j]) / np.where(s[:, j] > 0, s[:, j], 1),
                               0.0)
                z[:, j] = np.where(n >= 1, np.maximum(dev * w, 0.0), 0.0)
            else:  # diversity
                z[:, j] = np.maximum((x - c[:, j]) / np.sqrt(c[:, j] + 0.5), 0.0)
        return np.clip(z, -Z_CLIP, Z_CLIP)

    def normal_range(self, kind: int, at: float, col: int) -> tuple[float, float]:
        """The 5th-95th percentile range of a measurement around fractional hour `at`."""
        t, k = np.array([at]), np.array([kind])
        return (float(self._blend(self.low, t, k)[0, col]),
                float(self._blend(self.high, t, k)[0, col]))

    # -- metadata ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        # 5 significant digits: the metadata stays small and a person can read it; the model
        # is trained on the rounded profile (rounded()), so saving loses nothing
        out: dict[str, Any] = {k: _round(getattr(self, k)).tolist() for k in _ARRAYS}
        out["cells"] = self.cells.tolist()
        return out

    def rounded(self) -> "Profile":
        return Profile.from_json(self.spec, self.to_json())

    @classmethod
    def from_json(cls, spec: FeatureSpec, d: dict[str, Any]) -> "Profile":
        width = len(spec.measured)

        def a(key: str) -> np.ndarray:
            arr = np.array(d[key], dtype=float)
            if arr.size == 0:
                arr = arr.reshape(DAY_KINDS, 24, 0)
            if arr.shape != (DAY_KINDS, 24, width):
                raise ValueError(f"profile {key} has shape {arr.shape}, expected "
                                 f"{(DAY_KINDS, 24, width)}")
            return arr

        return cls(spec, a("center"), a("spread"), a("low"), a("high"),
                   np.array(d["cells"], dtype=np.int64))


def _round(a: np.ndarray) -> np.ndarray:
    flat = [float(f"{v:.5g}") for v in a.ravel().tolist()]
    return np.array(flat, dtype=float).reshape(a.shape)
