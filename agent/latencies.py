"""Latency samples of one window: exact while few, then 1%-wide logarithmic buckets
(agent/features.py counts them per window; the ledger uses them for its lags)."""

from __future__ import annotations

import math
from typing import Any

EXACT_LATENCIES = 2000  # samples per window kept exactly; beyond, 1% buckets
_STEP = math.log(1.01)


class Latencies:
    """Latency samples of one window: exact while few, then 1%-wide logarithmic buckets.

    Percentiles stay exact for ordinary windows; a month-end window with hundreds of thousands
    of uploads costs a few hundred buckets in memory and in each checkpoint, not every sample,
    and its p50/p95 are within 1%.
    """

    __slots__ = ("exact", "buckets", "n", "total", "max")

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.buckets: dict[int, int] = {}  # log-bucket -> count, for samples moved out of exact
        self.n = 0  # samples in buckets
        self.total = 0.0
        self.max = 0.0

    def compact(self) -> None:
        for v in self.exact:
            b = int(math.log(v) / _STEP) if v > 1.0 else 0
            self.buckets[b] = self.buckets.get(b, 0) + 1
            self.total += v
            if v > self.max:
                self.max = v
        self.n += len(self.exact)
        self.exact = []

    def summary(self) -> tuple[int, float, float, float, float]:
        """(count, p50, p95, max, mean)."""
        if not self.buckets:
            lat = sorted(self.exact)
            if not lat:
                return 0, 0.0, 0.0, 0.0, 0.0
            return (len(lat), _percentile(lat, 0.50), _percentile(lat, 0.95), lat[-1],
                    sum(lat) / len(lat))
        self.compact()
        return (self.n, self._bucket_percentile(0.50), self._bucket_percentile(0.95), self.max,
                self.total / self.n)

    def _bucket_percentile(self, q: float) -> float:
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(self.max, math.exp((b + 0.5) * _STEP)) if b else min(self.max, 1.0)
        return self.max

    def to_json(self) -> dict[str, Any]:
        return {"exact": self.exact, "buckets": {str(k): v for k, v in self.buckets.items()},
                "n": self.n, "total": self.total, "max": self.max}

    @classmethod
    def from_json(cls, d: Any) -> "Latencies":
        lat = cls()
        if isinstance(d, list):  # state written before buckets existed
            lat.exact = list(d)
            return lat
        lat.exact = list(d["exact"])
        lat.buckets = {int(k): v for k, v in d["buckets"].items()}
        lat.n, lat.total, lat.max = d["n"], d["total"], d["max"]
        return lat


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: a value that really occurred, as operators expect."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[k]
