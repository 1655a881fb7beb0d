"""`type: threshold`: a condition over a source's window features.

Three runtimes, one config: the plain rule (one alert for the source), one alert per key
(`group_by`, threshold_keyed.py) and one condition over the windows of several sources
(`sources:`, threshold_sources.py).

The engine judges the plain rules of a source together (`SourceThresholds`): a thousand rules
share one window's features, a `when:` written the same by several rules is evaluated once,
and a rule with `early` is judged at a line only when a feature it reads changed with it.
Verdicts are those of each rule's own `on_event`/`on_window`, in the same order.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    RuleError,
    Watch,
)
from agent.detect.keys import DEFAULT_MAX_KEYS, check_group_by
from agent.detect.threshold_keyed import KeyedThresholdRule
from agent.detect.threshold_sources import SourcesThresholdRule
from agent.detect.when import (
    When,
    changes,
    compile_when,
    features_of,
    leading_bound,
    reads,
    window_names,
)
from agent.features import ExprFeatures, OpenFeatures, Windows, _Acc, growing
from agent.ledger.config import LEDGER_SOURCE
from agent.types import Event, Finding, Window


class ThresholdConfig(RuleConfig):
    """Fires while `when` holds for the source's windows (after `for:`)."""

    source: str | None = Field(None, description="The source whose windows are judged")
    sources: list[str] | None = Field(
        None, description="Instead of `source`: several sources, judged together once each "
        "one's window of the same start has closed; `when` names `source.feature`")
    when: str
    early: bool = False
    """Also test the open window at every line, firing at the line that makes `when` true
    instead of at the window's end. For conditions that only grow within a window (`failed >=
    3`), not for rates of a few lines; resolving still waits for a window after the firing."""
    group_by: list[str] = Field(
        default_factory=list, description="One alert per value of these event fields (host, "
        "error_code, taxpayer_id): the features are computed per key and source window")
    max_keys: int = Field(DEFAULT_MAX_KEYS, ge=1, description="Keys tracked per window at "
                          "most; events of further keys are counted as `keys_dropped`")

    @field_validator("group_by")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        return check_group_by(v)

    @field_validator("sources")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("name at least one source")
            if len(set(v)) != len(v):
                raise ValueError("a source is listed twice")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> "ThresholdConfig":
        if (self.source is None) == (self.sources is None):
            raise ValueError("give either `source:` (one source) or `sources:` (several), "
                             "not both" if self.source else "`source:` or `sources:` is required")
        if self.sources is not None and (self.early or self.group_by):
            raise ValueError("`early` and `group_by` work with one `source:`, not `sources:`")
        return self

    def source_names(self) -> list[str]:
        return list(self.sources) if self.sources is not None else [str(self.source)]

    def template_names(self) -> set[str]:
        if self.sources is not None:
            return {f"{s}.{f}" for s in self.sources for f in features_of(s)} | {
                "source", "window_start", "window_end"}
        names = set(features_of(str(self.source))) | {"source", "window_start", "window_end"}
        if self.group_by:
            names |= {*self.group_by, "keys_dropped"}
        return names

    def build(self, context: BuildContext) -> Detector:
        if self.sources is not None:
            return SourcesThresholdRule(self, self.sources, compile_when(self.when, self.sources,
                                                                         qualified=True))
        source = str(self.source)
        if self.group_by:
            if source == LEDGER_SOURCE:
                raise RuleError("the ledger's windows have no events to group", key="group_by")
            return KeyedThresholdRule(self, source, compile_when(self.when, [source]),
                                      context.window, early=self.early,
                                      group_by=self.group_by, max_keys=self.max_keys)
        return ThresholdRule(self, context.window)


class ThresholdRule(Detector):
    """One alert for the source: its windows' features, as they close (or at each line while
    the open window's features make `when` true, with `early`)."""

    def __init__(self, config: ThresholdConfig, window: timedelta = timedelta(minutes=5)):
        source = str(config.source)
        super().__init__(config, {**config.labels, "source": source})
        self.source = source
        self.early = config.early
        self._len = window.total_seconds()
        self._fired_in: float | None = None  # start of the open window an early firing was in
        self.when = compile_when(config.when, [source])

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=self.early)

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        """A firing verdict at the line `ev`, from its window so far (only the features
        `when` reads are computed)."""
        t = ev.ts.timestamp()
        start = t - t % self._len
        if self._fired_in == start:
            # fired at an earlier line of this window: the rest is its end's business
            return NO_FINDINGS
        so_far = open_window.so_far(ev)
        if so_far is None:
            return NO_FINDINGS
        if not self.when(window_names(so_far.features)):
            return NO_FINDINGS
        self._fired_in = start
        return (Finding(self.name, True, ev.ts, self.labels, values_of(so_far),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        return (Finding(self.name, self.when(window_names(window.features)), window.end,
                        self.labels, values_of(window), window_start=window.start),)


def values_of(w: Window) -> dict[str, Any]:
    """What a plain rule's finding carries for its templates: the window's features and where
    it lies (the same for every plain rule of the source)."""
    return dict(w.features, source=w.source, window_start=w.start.isoformat(),
                window_end=w.end.isoformat())


def _short(features: Mapping[str, Any], name: str, number: float, strict: bool) -> bool:
    """Whether the closed window's `name` (`error_codes:CODE`: that code's count) is short of
    `number`, as `name >= number` (strict: `>`) would find it; False when it is no number."""
    if name.startswith("error_codes:"):
        value = features["error_codes"].get(name.partition(":")[2], 0)
    else:
        value = features.get(name)
    if type(value) is not int and type(value) is not float:
        return False
    return value <= number if strict else value < number


class _LeadIndex:
    """The distinct conditions of a source's plain rules, those with a leading comparison
    sorted by its number under their feature: at a window's end, the conditions worth
    judging are found by bisection, not by trying each (a thousand `failed >= N` rules)."""

    def __init__(self, whens: list[tuple[str, tuple[When, list[tuple[int, ThresholdRule]]]]],
                 leads: Mapping[str, tuple[str, float, bool] | None]):
        self._whens = whens
        self._always: list[int] = []  # no leading comparison: always judged
        # feature -> ([number], [its place in whens]) for `>=`, and for `>`, by number
        self._index: dict[str, tuple[list[float], list[int], list[float], list[int]]] = {}
        self._place_of: dict[str, int] = {}  # rule name -> its condition's place in whens
        sorted_leads: dict[str, tuple[list[tuple[float, int]], list[tuple[float, int]]]] = {}
        for place, (text, (_, rules)) in enumerate(whens):
            for _, r in rules:
                self._place_of[r.name] = place
            lead = leads[text]
            if lead is None:
                self._always.append(place)
                continue
            name, number, strict = lead
            pair = sorted_leads.setdefault(name, ([], []))
            pair[strict].append((number, place))
        for name, (plain, strict_) in sorted_leads.items():
            plain.sort()
            strict_.sort()
            self._index[name] = ([n for n, _ in plain], [p for _, p in plain],
                                 [n for n, _ in strict_], [p for _, p in strict_])

    def worth_judging(self, features: Mapping[str, Any], live: set[str]
                      ) -> list[tuple[str, tuple[When, list[tuple[int, ThresholdRule]]]]]:
        """The conditions, in their order, that the window's `features` may make true (their
        leading comparison holds, or they have none) or that a rule with a live alert reads
        (its false verdict ends the alert): every other one is false and changes nothing."""
        places = list(self._always)
        for name, (plain, plain_at, strict, strict_at) in self._index.items():
            if name.startswith("error_codes:"):
                value = features["error_codes"].get(name.partition(":")[2], 0)
            else:
                value = features.get(name)
            if (type(value) is not int and type(value) is not float) or value != value:
                places += plain_at  # no number (or NaN): the comparison itself decides
                places += strict_at
                continue
            places += plain_at[:bisect_right(plain, value)]  # number <= value
            places += strict_at[:bisect_left(strict, value)]  # number < value
        for name in live:
            place = self._place_of.get(name)
            if place is not None:
                places.append(place)
        whens = self._whens
        return [whens[p] for p in sorted(set(places))]


Placed = list[tuple[int, Finding]]  # findings with their rule's place in the engine's order
Failed = Callable[[Detector, ValueError], None]  # told of a rule that cannot be evaluated


class _Early:
    """The early rules of one source with the same `when`: their verdicts at a line are one."""

    __slots__ = ("when", "reads", "rules", "fired_in", "clean_in", "bound", "lead", "place")

    def __init__(self, when: When, rules: list[tuple[int, ThresholdRule]], place: int):
        self.when = when
        self.reads = reads(when.names)
        self.place = place  # among the source's early rules
        # a leading `feature >= number` over a growing feature: (its value in a window's
        # counts, the number, strict), telling for how many lines the rule cannot hold
        lead = leading_bound(when)
        get = None if lead is None else growing(lead[0])
        self.bound = None if lead is None or get is None else (get, lead[1], lead[2])
        self.lead = None if self.bound is None or lead is None else lead[0]
        self.rules = rules
        self.fired_in: float | None = None  # the window it fired in at a line
        # a window in which it was found false (without error) at a line: while none of the
        # features it reads changes, that verdict stands. A rule whose leading count is short
        # is not visited at all (Due.reached leaves it out), so this need not be set for it
        self.clean_in: float | None = None


class Due:
    """Early rules a line may have to judge. Those that begin with a growing count are
    grouped by it and sorted by their number: a line judges only the ones its count reached
    (a thousand `failed >= N` rules are not each asked whether `failed` is short of N)."""

    __slots__ = ("rules", "other", "counts")

    def __init__(self, rules: list[_Early]):
        self.rules = rules
        self.other = [e for e in rules if e.bound is None]
        groups: dict[str, list[tuple[float, bool, Callable[[_Acc], int], _Early]]] = {}
        for e in rules:
            if e.bound is not None and e.lead is not None:
                get, number, strict = e.bound
                groups.setdefault(e.lead, []).append((number, strict, get, e))
        # (the count, [(number, strict)], the rules in that order): a count reaches the rules
        # of a prefix, `>=` ones up to its value and `>` ones below it
        self.counts: list[tuple[Callable[[_Acc], int], list[tuple[float, bool]], list[_Early]]] = []
        for group in groups.values():
            group.sort(key=lambda g: (g[0], g[1]))
            self.counts.append((group[0][2], [(n, strict) for n, strict, _, _ in group],
                                [e for _, _, _, e in group]))

    def reached(self, acc: _Acc) -> list[_Early]:
        """The rules whose leading count in `acc` is not short of its number, and the rules
        without one, in their order."""
        out = list(self.other)
        for get, keys, group in self.counts:
            n = bisect_left(keys, (get(acc), True))
            if n:
                out += group[:n]
        if len(out) > 1 and self.counts:
            out.sort(key=_place)
        return out


def _place(e: _Early) -> int:
    return e.place


class SourceThresholds:
    """The plain threshold rules of one source, judged together by the engine.

    At a window's end each distinct `when` is evaluated once, and only rules whose verdict
    holds, or whose alert is live, get a finding (a false verdict for a rule without a live
    alert changes nothing). At a line, the early rules are judged on the open window's
    features computed as read, and only those reading a feature the line changed, or not yet
    judged in that window."""

    def __init__(self, source: str, rules: list[tuple[int, ThresholdRule]],
                 length: timedelta):
        self.source = source
        self.length = length
        self._len = length.total_seconds()
        self._by_when: dict[str, tuple[When, list[tuple[int, ThresholdRule]]]] = {}
        early: dict[str, list[tuple[int, ThresholdRule]]] = {}
        for pos, r in rules:
            self._by_when.setdefault(r.when.text, (r.when, []))[1].append((pos, r))
            if r.early:
                early.setdefault(r.when.text, []).append((pos, r))
        # each condition's leading `feature >= number` (see leading_bound): at a window's
        # end, a rule whose leading comparison is false is false without evaluating the rest
        self._leads = {text: leading_bound(when) for text, (when, _) in self._by_when.items()}
        self._leading = _LeadIndex(list(self._by_when.items()), self._leads)
        self.early = [_Early(group[0][1].when, group, place)
                      for place, group in enumerate(early.values())]
        self._bounded = [e for e in self.early if e.bound is not None]
        self._unbounded = [e for e in self.early if e.bound is None]
        self._all = Due(self.early)
        self._due: dict[int, Due] = {}  # changed bits -> the rules reading them
        self._start: float | None = None  # the window of the last line, all judged on it
        self._names: ExprFeatures | None = None  # the open window's, moved at each line

    def on_window(self, w: Window, live: set[str], failed: Failed) -> Placed:
        """Findings for the closed window `w`. `live`: the rules with a live alert, to which
        the rules found true here are added (a later window of the same batch may end it)."""
        names: Mapping[str, Any] | None = None
        values: dict[str, Any] | None = None
        out: Placed = []
        features = w.features
        for text, (when, rules) in self._leading.worth_judging(features, live):
            lead = self._leads[text]
            if lead is not None and _short(features, *lead):
                verdict = False
            else:
                if names is None:
                    names = window_names(features)
                try:
                    verdict = when(names)
                except ValueError as exc:
                    for _, r in rules:
                        failed(r, exc)
                    continue
            for pos, r in rules:
                if verdict or r.name in live:
                    if values is None:
                        values = values_of(w)
                    out.append((pos, Finding(r.name, verdict, w.end, r.labels, values,
                                             window_start=w.start)))
                    if verdict:
                        live.add(r.name)
        return out

    def on_event(self, ev: Event, windows: Windows, failed: Failed) -> Placed:
        """Firing findings at the line `ev`, just counted into `windows`."""
        start, bits = windows.last_start, changes(ev)
        due = self.due_at(start, bits)
        return self.judge(ev, windows, failed, due, start, bits) if due else []

    def due_at(self, start: float, bits: int) -> Due | None:
        """The early rules to judge at a line changing the features `bits` in the window
        that starts at `start` (and the window noted as the last line's). Most lines have
        none: agent/tally.py counts those without an Event."""
        if start == self._start:  # every rule was judged on this window at the last line
            due = self._due.get(bits)
            if due is None:
                due = self._due[bits] = Due([e for e in self.early if e.reads & bits])
        else:
            self._start, due = start, self._all
        for e in due.rules:
            if not (e.fired_in == start or (e.clean_in == start and not e.reads & bits)):
                return due
        return None

    def quiet_lines(self, start: float, acc: _Acc, pending: int) -> int:
        """For how many lines, this one included, no early rule can hold in the window that
        starts at `start`, whose counts are `acc` plus `pending` lines not counted into it
        yet: each rule fired in it already, or begins with a growing feature still short of
        its number (a line adds at most one). 0 if any other rule may hold. Each rule not
        fired is then marked found false in the window, as judging it at those lines would."""
        for e in self._unbounded:
            if e.fired_in != start:
                return 0
        lines = 1 << 62
        for e in self._bounded:
            if e.fired_in == start:
                continue
            get, number, strict = e.bound  # type: ignore[misc]
            room = number - (get(acc) + pending)
            n = math.floor(room) + 1 if strict else math.ceil(room)
            if n <= 0:
                return 0
            lines = min(lines, n)
        self._start = start
        for e in self.early:
            if e.fired_in != start:
                e.clean_in = start
        return lines

    def judge(self, ev: Event, windows: Windows, failed: Failed, due: Due,
              start: float, bits: int) -> Placed:
        """The early rules `due` judged on the open window `ev` was just counted into. Those
        whose leading count is short of its number are false as they are, and skipped."""
        out: Placed = []
        acc = windows.last_acc
        assert acc is not None
        names: Mapping[str, Any] | None = None
        for e in due.reached(acc):
            if e.fired_in == start or (e.clean_in == start and not e.reads & bits):
                continue
            if names is None:
                if self._names is None:
                    self._names = ExprFeatures(acc, self.length)
                names = self._names.show(acc)
            try:
                if not e.when.test(names):
                    e.clean_in = start
                    continue
            except Exception as exc:
                e.clean_in = self._start = None  # judged again at the next line
                for _, r in e.rules:
                    failed(r, e.when.failure(exc))
                continue
            e.fired_in, e.clean_in = start, None
            ws = datetime.fromtimestamp(start, ev.ts.tzinfo)
            values = values_of(Window(self.source, ws, ws + self.length,
                                      OpenFeatures(acc, self.length)))
            for pos, r in e.rules:
                out.append((pos, Finding(r.name, True, ev.ts, r.labels, values,
                                         line_no=ev.line_no, path=ev.path)))
        return out
