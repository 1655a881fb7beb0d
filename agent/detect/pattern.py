"""`type: pattern`: a regular expression over one field of a source's events, counted per key
over a sliding window of event time.

Each matching event counts one hit for its key (the `group_by` values: event fields or named
groups of the expression). Hits are kept in buckets of the agent's window (coarser for very
long rule windows), so at the end of each of the source's windows a key's count is the hits
of the last `window` of event time. A key fires when its count reaches `threshold`, and
resolves at the first window end after which the count is below it again.

The expression runs in the `regex` package with the parse layer's time limit (see
agent/parse/regex_lines.py): a pattern that backtracks badly costs at most a tenth of a second
per line and is counted as an evaluation error, never a hung daemon.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import regex
from pydantic import Field, ValidationInfo, field_validator

from agent.configtypes import PositiveDuration
from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    RuleError,
    Watch,
)
from agent.detect.keys import (
    DEFAULT_MAX_KEYS,
    UNREADABLE,
    Key,
    check_group_by,
    field_value,
    key_from_json,
    key_labels,
    key_to_json,
    key_values,
    text_of,
    unknown_field,
)
from agent.detect.prefilter import required_literals
from agent.parse.regex_lines import TOO_SLOW, search
from agent.types import Event, Finding, Window

MAX_TEXT = 200  # characters of the last matching text shown in messages
MAX_BUCKETS = 1440  # per key: a day of 1-minute windows; longer rule windows get coarser buckets


class PatternConfig(RuleConfig):
    """Fires for a key once `threshold` events of `source` matched `match` within `window`."""

    source: str
    match: str = Field(description="Regular expression searched in `field` (`regex` syntax)")
    field: str = Field("message", description="The event field searched: syslog puts the text "
                       "after the tag in `message`")
    threshold: int = Field(1, ge=1, description="Hits within `window` that fire")
    window: PositiveDuration | None = Field(
        None, description="How far back hits count (event time); default: the agent's window. "
        "Rounded up to whole agent windows")
    group_by: list[str] = Field(
        default_factory=list, description="One alert per value of these: event fields or named "
        "groups of `match`")
    max_keys: int = Field(DEFAULT_MAX_KEYS, ge=1, description="Keys tracked at most; hits of "
                          "further keys are counted as `keys_dropped`")

    @field_validator("match")
    @classmethod
    def _compiles(cls, v: str) -> str:
        if not v:
            raise ValueError("an empty pattern matches every event")
        try:
            regex.compile(v)  # what the rule runs it with
        except regex.error as exc:  # its text says where: "... at position 9"
            raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @field_validator("field")
    @classmethod
    def _readable(cls, v: str) -> str:
        why = unknown_field(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("group_by")
    @classmethod
    def _keys(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if "match" not in info.data:  # the pattern itself is wrong: that is the problem
            return v
        return check_group_by(v, list(regex.compile(info.data["match"]).groupindex))

    def template_names(self) -> set[str]:
        return {"hits", "threshold", "last_match", "window_minutes", "source", "keys_dropped",
                "keys", "window_start", "window_end", *self.group_by}

    def source_names(self) -> list[str]:
        return [self.source]

    def build(self, context: BuildContext) -> "PatternRule":
        return PatternRule(self, context.window)


class _Hits:
    """One key's hits per bucket, and the newest matching text of each bucket not yet judged."""

    __slots__ = ("counts", "texts", "last")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.texts: dict[int, str] = {}
        self.last = ""  # newest text judged so far


class PatternRule(Detector):
    def __init__(self, config: PatternConfig, window: timedelta = timedelta(minutes=5)):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        self.field = config.field
        self.threshold = config.threshold
        self.group_by = tuple(config.group_by)
        self.max_keys = config.max_keys
        self._regex = regex.compile(config.match)
        self._literals = required_literals(config.match)
        groups = self._regex.groupindex
        # per key part: the regex group it comes from, or None for an event field
        self._parts = tuple(g if g in groups else None for g in self.group_by)
        agent = window.total_seconds()
        if agent <= 0:
            raise RuleError("the agent's window must be longer than 0")
        span = config.window.total_seconds() if config.window is not None else agent
        self._windows = max(1, math.ceil(span / agent - 1e-9))  # whole agent windows
        self.span = self._windows * agent
        self._bucket = agent * math.ceil(self._windows / MAX_BUCKETS)
        self._keys: dict[Key, _Hits] = {}
        self._dropped: dict[int, int] = {}  # bucket -> hits of keys beyond max_keys
        self._firing: set[Key] = set()  # keys whose last verdict held

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=True)

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        value = field_value(ev, self.field)
        if value is None:
            return NO_FINDINGS
        text = value if isinstance(value, str) else str(value)
        if self._literals is not None and not self._literals.may_match(text):
            return NO_FINDINGS
        found = search(self._regex, text)
        if found is None:
            return NO_FINDINGS
        if isinstance(found, str):  # out of time: counted by the engine as an eval error
            raise ValueError(f"{TOO_SLOW}: {text[:80]!r}")
        key = tuple(text_of(found.group(g)) if g is not None else text_of(field_value(ev, f))
                    for g, f in zip(self._parts, self.group_by, strict=True))
        bucket = int(ev.ts.timestamp() // self._bucket)
        hits = self._keys.get(key)
        if hits is None:
            if len(self._keys) >= self.max_keys:
                self._dropped[bucket] = self._dropped.get(bucket, 0) + 1
                return NO_FINDINGS
            hits = self._keys[key] = _Hits()
        hits.counts[bucket] = hits.counts.get(bucket, 0) + 1
        hits.texts[bucket] = text[:MAX_TEXT]
        return NO_FINDINGS

    def on_window(self, window: Window) -> Collection[Finding]:
        end = window.end.timestamp()
        # buckets [lo, hi) hold the hits of [end - span, end): hits ahead of `end` (shown
        # before this window closed) wait for the windows they belong to
        hi = math.ceil(end / self._bucket - 1e-9)
        lo = math.floor((end - self.span) / self._bucket + 1e-9)
        dropped = _prune_sum(self._dropped, lo, hi)
        findings: list[Finding] = []
        gone: list[Key] = []
        for key, hits in self._keys.items():
            count = _prune_sum(hits.counts, lo, hi)
            judged = [b for b in hits.texts if b < hi]
            if judged:
                hits.last = hits.texts[max(judged)]
                for b in judged:
                    del hits.texts[b]
            active = count >= self.threshold
            if active or key in self._firing:
                findings.append(Finding(
                    self.name, active, window.end, key_labels(self.labels, self.group_by, key),
                    self._values(window, key, count, hits.last, dropped),
                    window_start=window.start))
            if active:
                self._firing.add(key)
            else:
                self._firing.discard(key)
                if not hits.counts:
                    gone.append(key)
        for key in gone:
            del self._keys[key]
        return findings

    def _values(self, window: Window, key: Key, count: int, last: str,
                dropped: int) -> dict[str, Any]:
        return {**key_values(self.group_by, key), "hits": count, "threshold": self.threshold,
                "last_match": last, "window_minutes": self.span / 60, "source": self.source,
                "keys_dropped": dropped, "keys": len(self._keys),
                "window_start": window.start.isoformat(), "window_end": window.end.isoformat()}

    # -- checkpoint ------------------------------------------------------------------------
    def _shape(self) -> list[Any]:
        # what the buckets mean: a checkpoint of another shape is not taken back
        return [list(self.group_by), self._bucket]

    def state(self) -> Any:
        return {
            "shape": self._shape(),
            "keys": [[key_to_json(k), {str(b): c for b, c in h.counts.items()},
                      {str(b): t for b, t in h.texts.items()}, h.last]
                     for k, h in self._keys.items()],
            "dropped": {str(b): c for b, c in self._dropped.items()},
            "firing": [key_to_json(k) for k in self._firing],
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict) or state.get("shape") != self._shape():
            return
        try:
            self._restore(state)
        except UNREADABLE:
            self._keys, self._dropped, self._firing = {}, {}, set()

    def _restore(self, state: dict[str, Any]) -> None:
        width = len(self.group_by)
        for item in state.get("keys", [])[:self.max_keys]:
            key = key_from_json(item[0], width)
            if key is None:
                continue
            hits = self._keys[key] = _Hits()
            hits.counts = {int(b): int(c) for b, c in item[1].items()}
            hits.texts = {int(b): str(t) for b, t in item[2].items()}
            hits.last = str(item[3])
        self._dropped = {int(b): int(c) for b, c in state.get("dropped", {}).items()}
        for k in state.get("firing", []):
            key = key_from_json(k, width)
            if key is not None:
                self._firing.add(key)
                self._keys.setdefault(key, _Hits())  # judged again, so it can resolve


def _prune_sum(buckets: dict[int, int], lo: int, hi: int) -> int:
    """The sum of buckets in [lo, hi); buckets before `lo` are dropped (no later window end
    reaches back to them)."""
    total = 0
    for b in [b for b in buckets if b < lo]:
        del buckets[b]
    for b, c in buckets.items():
        if b < hi:
            total += c
    return total
