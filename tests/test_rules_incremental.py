"""Rules at scale decide as each rule alone would: early rules judged on the open window's
features computed as read (and only when a feature they read changed), plain threshold rules
of a source judged together, `when:` compiled to closures.

The reference is the per-rule path as it was: every feature of the open window computed at
every line, `when:` walked by simpleeval, every rule shown every window on its own.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.demo import prepare
from agent.detect.base import NO_FINDINGS, Detector, OpenWindow
from agent.detect.expr import ExprError, Expression
from agent.detect.threshold import ThresholdRule, values_of
from agent.detect.when import DEPENDS, When, changes, features_of, window_names
from agent.features import FEATURES, ExprFeatures, OpenFeatures, Windows, _Acc, compute_features
from agent.pipeline import Engine
from agent.replay import ReplayResult, configured_files, match_files, replay
from agent.simulator import write_upload_lines
from agent.types import Event, Finding, Window
from agent.wiring import load_all

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
FIVE = timedelta(minutes=5)


class Reference(ThresholdRule):
    """A plain threshold rule judged the way it was before rules shared their work."""

    def __init__(self, rule: ThresholdRule, window: timedelta):
        super().__init__(rule.config, window)
        self.plain = Expression(self.when.text, features_of(self.source))

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        t = ev.ts.timestamp()
        start = t - t % self._len
        if self._fired_in == start:
            return NO_FINDINGS
        so_far = open_window.so_far(ev)
        assert so_far is not None
        full = Window(so_far.source, so_far.start, so_far.end, dict(so_far.features))
        if not self.plain(window_names(full.features)):
            return NO_FINDINGS
        self._fired_in = start
        return (Finding(self.name, True, ev.ts, self.labels, values_of(full),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        return (Finding(self.name, self.plain(window_names(window.features)), window.end,
                        self.labels, values_of(window), window_start=window.start),)


def as_reference(detectors: list[Detector], window: timedelta) -> list[Detector]:
    return [Reference(d, window) if type(d) is ThresholdRule else d for d in detectors]


def both(config: Path, files: list[str] | None = None, model: bool = True
         ) -> tuple[ReplayResult, ReplayResult]:
    """The replay of `config`'s logs (or `files`) as the agent runs it, and by the reference."""
    out = []
    for reference in (False, True):
        loaded, rules = load_all(config, notify=False, batch=True, model=model)
        if reference:
            rules = as_reference(rules, loaded.config.window)
        pairs = configured_files(loaded) if files is None else match_files(loaded, files)
        out.append(replay(loaded, rules, pairs))
    return out[0], out[1]


EARLY_RULES = [
    {"name": "burst_early", "type": "threshold", "source": "upload", "when": "failed >= 3",
     "early": True, "summary": {"en": "{failed} failed, top {top_error_code}"}},
    {"name": "burst_at_end", "type": "threshold", "source": "upload", "when": "failed >= 3"},
    {"name": "failing_share", "type": "threshold", "source": "upload", "early": True,
     "when": "count >= 20 and failure_rate > 0.1", "for": "5m"},
    {"name": "slow_now", "type": "threshold", "source": "upload", "early": True,
     "when": "latency_p95 > 2000 and latency_count >= 10"},
    {"name": "erp_codes", "type": "threshold", "source": "erp", "early": True,
     "when": "error_codes.get('E201', 0) >= 2 or top_error_code_count >= 3"},
    {"name": "per_code", "type": "threshold", "source": "upload", "when": "failed >= 2",
     "early": True, "group_by": ["error_code"]},
]


def test_demo_replay_with_early_rules_decides_as_the_reference(tmp_path):
    config, _ = prepare(tmp_path)
    (tmp_path / "rules" / "zz_early.yaml").write_text(yaml.safe_dump({"rules": EARLY_RULES}),
                                                     encoding="utf-8")
    new, ref = both(config)
    fired = {t.rule for t in new.transitions if t.state == "firing"}
    assert {"burst_early", "burst_at_end", "failing_share", "slow_now", "erp_codes",
            "per_code", "upload_outage"} <= fired  # the shipped rules and the added ones
    early = [t for t in new.transitions if t.rule == "burst_early" and t.state == "firing"]
    assert early and all(t.line_no is not None for t in early)  # at the line, not window end
    assert new.transitions == ref.transitions
    assert new.notices == ref.notices and new.muted == ref.muted


def many_rules(n: int) -> list[dict[str, Any]]:
    """Thresholds of a few shapes, some written alike, every fifth early."""
    out = []
    for i in range(n):
        k = i // 4 + 1
        when = (f"failed >= {k}", f"timeout >= {k}", "failed >= 3",
                f"failure_rate > {k / 500:.3f} and count >= {k}")[i % 4]
        if i % 5 == 0:
            when = when if i % 4 != 3 else f"error_codes.get('1001', 0) >= {k}"
        out.append({"name": f"rule_{i:03d}", "type": "threshold", "source": "upload",
                    "when": when, "early": i % 5 == 0})
    return out


def test_a_hundred_rules_decide_as_each_rule_alone(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(yaml.safe_dump({"rules": many_rules(100)}),
                                               encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        window: 5m
        lateness: 30s
        sources:
          - name: upload
            paths: ["logs/upload*.log"]
            fields: {ts: time, latency_ms: cost, status: result, error_code: code}
            values: {status: {成功: ok, 失败: failed, 超时: timeout}}
        rules: ["rules/*.yaml"]
        """), encoding="utf-8")
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "upload.log"
    write_upload_lines(log, 9_000)  # 5 lines a second: 30 minutes, 6 windows
    new, ref = both(config, [str(log)], model=False)
    assert len({t.rule for t in new.transitions}) > 20
    assert new.transitions == ref.transitions
    assert new.notices == ref.notices


def engine_for(tmp_path: Path, rules: str) -> Engine:
    from agent.config import load_config
    from agent.detect.loader import load_rules

    (tmp_path / "rules").mkdir(parents=True, exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("window: 5m\nlateness: 0s\nsources:\n  - {name: upload, paths: [u.log]}\n"
                      "rules: [rules/*.yaml]\n", encoding="utf-8")
    loaded = load_config(config)
    return Engine(loaded, load_rules(loaded.rule_globs(), ["upload"]))


def upload(second: float, status: str | None = "ok", **fields: Any) -> Event:
    return Event(ts=T0 + timedelta(seconds=second), source="upload", status=status,
                 line_no=int(second), **fields)


def push_all(engine: Engine, events: list[Event], until: datetime) -> list[tuple]:
    for ev in events:
        engine.push(ev.ts, ev)
    engine.advance(until)
    return [(t.rule, t.state, t.ts, t.line_no) for t in engine.take()]


def test_rules_firing_at_one_line_alert_in_the_order_they_are_written(tmp_path):
    engine = engine_for(tmp_path, """\
        rules:
          - {name: a_plain, type: threshold, source: upload, when: "failed >= 2", early: true}
          - {name: b_keyed, type: threshold, source: upload, when: "failed >= 2", early: true,
             group_by: [host]}
          - {name: c_plain, type: threshold, source: upload, when: "failed >= 2", early: true}
          - {name: d_other, type: threshold, source: upload, when: "count >= 2", early: true}
        """)
    got = push_all(engine, [upload(1, "failed", host="h"), upload(2, "failed", host="h")],
                   T0 + timedelta(minutes=1))
    at = T0 + timedelta(seconds=2)
    assert got == [("a_plain", "firing", at, 2), ("b_keyed", "firing", at, 2),
                   ("c_plain", "firing", at, 2), ("d_other", "firing", at, 2)]


def test_a_window_true_then_one_false_in_the_same_catch_up_resolves(tmp_path):
    # one event at 09:01, the next at 09:16: the windows 09:00, 09:05 and 09:10 close together;
    # the second must resolve what the first fired although no alert was live before
    engine = engine_for(tmp_path, """\
        rules:
          - {name: any_failure, type: threshold, source: upload, when: "failed >= 1"}
        """)
    got = push_all(engine, [upload(60, "failed"), upload(960)], T0 + timedelta(minutes=16))
    assert got == [("any_failure", "firing", T0 + FIVE, None),
                   ("any_failure", "resolved", T0 + 2 * FIVE, None)]


def test_an_early_rule_that_cannot_be_evaluated_is_counted_at_each_line(tmp_path):
    rules = """\
        rules:
          - {name: code_1001, type: threshold, source: upload, early: true,
             when: "count == 0 or error_codes['1001'] >= 2"}
          - {name: code_1001_too, type: threshold, source: upload, early: true,
             when: "count == 0 or error_codes['1001'] >= 2"}
        """
    events = [upload(1, "failed", error_code="2001"), upload(2, "ok"),
              upload(3, "failed", error_code="1001"), upload(4, "failed", error_code="1001")]
    engine = engine_for(tmp_path, rules)
    got = push_all(engine, events, T0 + timedelta(seconds=30))
    at = T0 + timedelta(seconds=4)
    assert got == [("code_1001", "firing", at, 4), ("code_1001_too", "firing", at, 4)]
    counts = engine.counts.drain()
    # the first two lines have no code 1001: a KeyError at each, for each rule
    assert counts[("rule:code_1001", "eval_errors")] == 2
    assert counts[("rule:code_1001_too", "eval_errors")] == 2
    assert engine.eval_errors["code_1001"] == "\"count == 0 or error_codes['1001'] >= 2\" " \
                                              "failed: '1001'"


def test_an_early_rule_on_the_top_code_fires_at_its_line_among_many_codes(tmp_path):
    engine = engine_for(tmp_path, """\
        rules:
          - {name: one_code_dominates, type: threshold, source: upload, early: true,
             when: "top_error_code_count >= 3 and distinct_error_codes >= 1000"}
        """)
    events = [upload(i * 0.01, "failed", error_code=f"E{i:05d}") for i in range(1000)]
    events += [upload(11, "failed", error_code="E00007"), upload(12, "failed",
                                                                error_code="E00007")]
    got = push_all(engine, events, T0 + timedelta(seconds=30))
    assert got == [("one_code_dominates", "firing", T0 + timedelta(seconds=12), 12)]
    (alert,) = engine.book.live.values()
    assert alert.values["top_error_code"] == "E00007" and alert.values["error_count"] == 1002


# -- the pieces -----------------------------------------------------------------------------

EVENTS = st.builds(
    lambda s, status, code, lat, level: Event(
        ts=T0 + timedelta(seconds=s), source="upload", status=status, error_code=code,
        latency_ms=lat, level=level),
    st.integers(0, 299),
    st.sampled_from([None, "ok", "failed", "fail", "error", "FAILED", "timeout", "pending",
                     "retry"]),
    st.sampled_from([None, "", "1001", "1002", "NET_TIMEOUT"]),
    st.one_of(st.none(), st.floats(1, 10_000)),
    st.sampled_from([None, "info", "ERROR", "crit"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(EVENTS, max_size=40), EVENTS)
def test_what_an_event_changes_is_what_counting_it_changed(before, ev):
    acc = _Acc()
    for e in before:
        _count(acc, e)
    old = compute_features(acc, FIVE)
    _count(acc, ev)
    new = compute_features(acc, FIVE)
    assert new == dict(OpenFeatures(acc, FIVE))  # computed as read: the same features
    bits = changes(ev)
    for name in FEATURES:
        if old[name] != new[name]:
            assert DEPENDS[name] & bits, (name, ev)


def test_an_expression_sees_the_open_windows_codes_without_a_copy_it_could_change():
    acc = _Acc()
    _count(acc, upload(1, "failed", error_code="1001"))
    names = ExprFeatures(acc, FIVE)
    with pytest.raises(TypeError):
        names["error_codes"]["1001"] = 0
    _count(acc, upload(2, "failed", error_code="1001"))
    assert names["error_codes"]["1001"] == 2  # the window as it is now
    assert OpenFeatures(acc, FIVE)["error_codes"] == {"1001": 2}  # a finding's own copy


def _count(acc: _Acc, ev: Event) -> None:
    acc.add(ev.status, ev.error_code, ev.level, ev.latency_ms)


WINDOW = {**compute_features(_Acc(), FIVE), "count": 10, "failed": 4, "failure_rate": 0.4,
          "error_codes": MappingProxyType({"1001": 3, "2001": 1}), "top_error_code": "1001",
          "latency_p95": 812.5}


@pytest.mark.parametrize("text", [
    "failed >= 3", "failed >= 5", "count > 0 and failure_rate > 0.3", "not failed",
    "failed >= 3 or count < 2", "1 < failed < 5", "1 < failed < 3 < count",
    "error_codes.get('1001', 0) >= 3", "error_codes.get('9999', 0) + failed > 3",
    "error_codes['1001'] == 3", "error_codes['9999'] > 0",  # KeyError: an evaluation error
    "'1001' in error_codes", "'9' not in error_codes.keys()", "top_error_code == '1001'",
    "top_error_code.startswith('10') and latency_p95 / count > 80",
    "max(failed, count) - min(failed, 2) * 2 ** 3 >= -30", "round(latency_p95, 1) > 800",
    "round(latency_p95, ndigits=-1) == 810", "abs(-failed) % 3 == 1", "len(error_codes) == 2",
    "failed // 0 > 1",  # ZeroDivisionError
    "top_error_code > 3",  # TypeError
    "count if failed else 0", "-failed < ~count", "failed is not None",
    "top_error_code[1:3] == '00'", "top_error_code[0] == '1'",
    "[failed, count][0] == 4",  # a list literal: left to simpleeval
    # refused as they run: integers past 256 bits, '%' on text
    "(count * 1000) ** (count * 10) > 1", "failed << 300 > 1", "top_error_code % count != ''",
    "'a' * 3 == 'aaa'", "top_error_code * 200000 == ''",
])
def test_a_compiled_condition_gives_simpleevals_verdict_and_error(text):
    plain, compiled = Expression(text, FEATURES), When(text, FEATURES)

    def outcome(check: Expression) -> Any:
        try:
            return check(WINDOW)
        except ExprError as exc:
            return f"error: {exc}"

    assert outcome(compiled) == outcome(plain)
    if text.startswith("["):
        assert compiled.test == compiled._simpleeval  # left to simpleeval


def test_a_qualified_condition_compiles_and_agrees():
    from agent.detect.when import compile_when, sources_names

    when = compile_when("upload.failure_rate > 0.2 and erp.count == 0", ["upload", "erp"],
                        qualified=True)
    names = sources_names({"upload": WINDOW, "erp": compute_features(_Acc(), FIVE)})
    assert when(names) is True
    assert when.names == {"erp", "upload"}


def test_the_open_window_of_the_last_event_is_shared_by_the_rules_shown_it():
    windows = Windows(["upload"], FIVE, timedelta(0))
    ev = upload(3, "failed", error_code="1001", latency_ms=120.0)
    assert windows.add(ev)
    first, again = windows.so_far(ev), windows.so_far(ev)
    assert first is again and first is not None
    assert windows.last_acc is not None
    assert dict(first.features) == compute_features(windows.last_acc, FIVE)
    later = upload(4)
    windows.add(later)
    assert windows.so_far(later) is not first


LEAD_NAMES = ["failed", "count", "latency_p95", "error_codes:1001"]
lead_values = st.one_of(st.integers(-3, 12), st.floats(-5, 15),
                        st.sampled_from([math.nan, math.inf]), st.none(), st.booleans(),
                        st.just("5"))


@settings(max_examples=300, deadline=None)
@given(leads=st.lists(st.one_of(st.none(), st.tuples(
           st.sampled_from(LEAD_NAMES),
           st.one_of(st.integers(-2, 10).map(float), st.floats(-5, 15)), st.booleans())),
           min_size=1, max_size=25),
       values=st.fixed_dictionaries({n: lead_values for n in LEAD_NAMES[:3]}),
       code_count=st.one_of(st.none(), st.integers(0, 12)),
       live=st.sets(st.integers(0, 30), max_size=5))
def test_the_conditions_judged_at_a_window_end_are_those_not_short_or_live(
        leads, values, code_count, live):
    """At a window's end, the bisected index hands out exactly the conditions whose leading
    comparison is not short of its number (or that have none, or whose number is no number
    in the window), and those a live alert's rule reads, in their order."""
    from agent.detect.threshold import _LeadIndex, _short

    class Named:
        def __init__(self, name: str):
            self.name = name

    whens = [(f"c{i}", (None, [(i, Named(f"r{i}"))])) for i in range(len(leads))]
    features = dict(values, error_codes={} if code_count is None else {"1001": code_count})
    live_names = {f"r{i}" for i in live} | {"another_sources_rule"}
    index = _LeadIndex(whens, {f"c{i}": lead for i, lead in enumerate(leads)})  # type: ignore[arg-type]
    expected = [w for (text, w), lead in zip(whens, leads, strict=True)
                if lead is None or not _short(features, *lead) or f"r{text[1:]}" in live_names]
    assert [w for _, w in index.worth_judging(features, live_names)] == expected


@settings(max_examples=300, deadline=None)
@given(whens=st.lists(st.one_of(
           st.tuples(st.sampled_from(["failed", "timeout", "error_codes.get('1001', 0)",
                                      "count"]),
                     st.sampled_from([">=", ">"]), st.integers(0, 8),
                     st.sampled_from(["", " and latency_count >= 1"])).map(
               lambda t: f"{t[0]} {t[1]} {t[2]}{t[3]}"),
           st.sampled_from(["failure_rate > 0.2", "3 <= failed", "top_error_code_count >= 2"])),
           min_size=1, max_size=20, unique=True),
       statuses=st.lists(st.sampled_from(["ok", "failed", "timeout"]), max_size=12),
       codes=st.lists(st.sampled_from(["1001", "1002"]), max_size=6))
def test_an_early_rule_is_judged_once_its_leading_count_reaches_its_number(whens, statuses,
                                                                          codes):
    """The early rules a line judges are those without a leading growing count and those
    whose count is not short of its number (`>=`: at it, `>`: past it), in their order."""
    from agent.detect.threshold import Due, _Early
    from agent.detect.when import compile_when

    early = [_Early(compile_when(w, ["upload"]), [], place) for place, w in enumerate(whens)]
    acc = _Acc()
    for s in statuses:
        acc.add(s, None, None, 100)
    for c in codes:
        acc.add("failed", c, None, None)
    features = compute_features(acc, FIVE)

    def short(e: _Early) -> bool:
        assert e.bound is not None
        get, number, strict = e.bound
        return get(acc) <= number if strict else get(acc) < number

    expected = [e for e in early if e.bound is None or not short(e)]
    assert Due(early).reached(acc) == expected
    # and a rule left out is false on the window as it stands
    for e in early:
        if e not in expected:
            assert not e.when.test(window_names(features))
