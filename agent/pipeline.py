"""The decision pipeline shared by `run`, `replay` and `demo`: parse -> windows -> rules -> alerts.

Pure apart from the parser's clock (for "timestamp in the future"): lines go in, alert
transitions come out, and `now` is always passed in. The daemon feeds it from tailed files
with the wall clock; replay feeds it from files merged in event time.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from agent.alerts import AlertBook, AlertState
from agent.config import AgentConfig, LoadedConfig, SourceConfig
from agent.detect.base import Rule
from agent.features import Windows
from agent.parse import ParseSpec, build_parser
from agent.types import Event, ParseFailure, RawLine, Transition, Window

log = logging.getLogger(__name__)


def parse_spec(src: SourceConfig, cfg: AgentConfig) -> ParseSpec:
    return ParseSpec(name=src.name, format=src.format, fields=dict(src.fields),
                     values={k: dict(v) for k, v in src.values.items()}, pattern=src.pattern,
                     timestamp_format=src.timestamp_format, event=src.event,
                     timezone=cfg.timezone, max_future=cfg.max_future)


class Engine:
    """Everything between a raw line and an alert transition, for one config and rule set."""

    def __init__(self, loaded: LoadedConfig, rules: list[Rule],
                 clock: Callable[[], datetime] | None = None):
        cfg = loaded.config
        self.config = cfg
        self.parsers = {s.name: build_parser(parse_spec(s, cfg), clock)
                        for s in cfg.sources}
        self.windows = Windows(self.parsers, cfg.window, cfg.lateness)
        self.rules = rules
        self._observers: dict[str, list[Rule]] = {}
        for r in rules:
            if type(r).observe is not Rule.observe:
                src = getattr(r, "source", None)
                for s in ([src] if src else self.parsers):
                    self._observers.setdefault(s, []).append(r)
        # rules that also look at the open window at every line of their source
        self._early: dict[str, list[Rule]] = {}
        for r in rules:
            if getattr(r.config, "early", False):
                self._early.setdefault(getattr(r, "source", ""), []).append(r)
        self.early: list[Transition] = []  # transitions caused by single lines, not yet taken
        self.book = AlertBook({r.name: r for r in rules}, cfg.notify.repeat_interval)
        # per source, the newest event time confirmed by the event after it: one line stamped
        # hours ahead (a wrong clock) must not move time forward and make every other line late
        self.watermarks: dict[str, datetime] = {}
        self._last: dict[str, datetime] = {}
        self.counters: Counter[tuple[str, str]] = Counter()  # drained into each batch
        self.failures: list[ParseFailure] = []  # samples, drained into each batch
        self.closed: list[Window] = []  # drained into each batch
        self.changed: list[AlertState] = []  # alert states to persist, drained into each batch
        self.eval_errors: dict[str, str] = {}  # rule -> its last evaluation error

    # -- lines in --------------------------------------------------------------------------
    def parse(self, raw: RawLine) -> Event | ParseFailure:
        src = raw.source
        self.counters[(src, "lines")] += 1
        if raw.truncated:
            self.counters[(src, "truncated")] += 1
        if raw.replaced:
            self.counters[(src, "replaced")] += 1
        result = self.parsers[src].parse(raw)
        if isinstance(result, ParseFailure):
            self.counters[(src, "unparsed")] += 1
            if len(self.failures) < 20:
                self.failures.append(result)
        return result

    def ingest(self, ev: Event) -> None:
        """Count an event into its window and show it to the rules that watch events."""
        if not self.windows.add(ev):
            self.counters[(ev.source, "late")] += 1
        elif ev.source in self._early:
            self._fire_early(ev)
        for r in self._observers.get(ev.source, ()):
            r.observe(ev)
        src, ts = ev.source, ev.ts
        prev = self._last.get(src)
        self._last[src] = ts
        confirmed = ts if prev is None or ts < prev else prev
        wm = self.watermarks.get(src)
        if wm is None or confirmed > wm:
            self.watermarks[src] = confirmed

    def _fire_early(self, ev: Event) -> None:
        so_far = None
        findings = []
        for r in self._early[ev.source]:
            if self.book.is_firing(r.name, r.labels):
                continue  # nothing to learn from this line until the window closes
            so_far = so_far or self.windows.so_far(ev)
            if so_far is None:
                return
            try:
                f = r.evaluate_early(ev, so_far)
            except ValueError as exc:
                self._eval_failed(r, exc)
                continue
            if f is not None:
                findings.append(f)
        if findings:
            transitions, changed = self.book.process(findings)
            self.early.extend(transitions)
            self.changed.extend(changed)

    def take_early(self) -> list[Transition]:
        out, self.early = self.early, []
        return out

    def _eval_failed(self, r: Rule, exc: ValueError) -> None:
        self.counters[("rule:" + r.name, "eval_errors")] += 1
        if r.name not in self.eval_errors:
            log.warning("rule %s cannot be evaluated (counted, not repeated): %s", r.name, exc)
        self.eval_errors[r.name] = str(exc)

    def feed(self, lines: Iterable[RawLine]) -> None:
        for raw in lines:
            result = self.parse(raw)
            if not isinstance(result, ParseFailure):
                self.ingest(result)

    # -- time moves ------------------------------------------------------------------------
    def advance(self, now: datetime) -> list[Transition]:
        """Close the windows `now` has passed, evaluate the rules, return alert transitions
        (after those that single lines caused since the last call)."""
        # no-ops for what already started; a source or rule added by a reload starts here
        self.windows.start(now)
        for r in self.rules:
            r.start(now)
        early = self.take_early()
        closed = self.windows.advance(now)
        if not closed:
            return early
        self.closed.extend(closed)
        findings = []
        for w in closed:
            for r in self.rules:
                try:
                    f = r.evaluate(w)
                except ValueError as exc:  # a rule that cannot be evaluated is counted, not fatal
                    self._eval_failed(r, exc)
                    continue
                if f is not None:
                    findings.append(f)
        transitions, changed = self.book.process(findings)
        self.changed.extend(changed)
        return early + transitions

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "windows": self.windows.state(),
            "rules": {r.name: r.state() for r in self.rules},
            "watermarks": {k: v.isoformat() for k, v in self.watermarks.items()},
        }

    def restore(self, state: dict[str, Any], alerts: Iterable[dict[str, Any]]) -> None:
        if not state:
            return
        self.windows.restore(state.get("windows", {}))
        saved = state.get("rules", {})
        for r in self.rules:
            if r.name in saved:
                r.restore(saved[r.name])
        self.watermarks = {k: datetime.fromisoformat(v)
                           for k, v in state.get("watermarks", {}).items() if k in self.parsers}
        self.book.restore(alerts)

    def drain(self) -> "Drained":
        """Hand over what accumulated since the last call (for the next batch commit)."""
        out = Drained(self.counters, self.failures, self.closed, self.changed)
        self.counters, self.failures, self.closed, self.changed = Counter(), [], [], []
        return out


@dataclass(frozen=True, slots=True)
class Drained:
    counters: Counter[tuple[str, str]]
    failures: list[ParseFailure]
    windows: list[Window]
    alerts: list[AlertState]
