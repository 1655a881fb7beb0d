"""The counting path (agent/tally.py) decides exactly as the Event path: the same windows with
the same features, the same transitions, lines counted unparsed and late alike, the same
absence rule state, in replay and in the daemon. The reference is the same engine with the
counting path switched off.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent.pipeline as pipeline
from agent.demo import prepare
from agent.detect.absence import AbsenceConfig, AbsenceRule
from agent.detect.when import compile_when, leading_bound
from agent.features import _Acc, compute_features, growing
from agent.notify.render import jsonl_record
from agent.pipeline import Engine
from agent.replay import configured_files, replay
from agent.sources.files import FileSource
from agent.types import Block, LineBatch
from agent.wiring import load_all
from tests.test_daemon import Agent, db_rows, wait_for

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=TZ)

RULES = """\
rules:
  - name: upload_silence
    type: absence
    source: upload
    match: {status: ok}
    for: 15m
    severity: critical
    summary: {en: "no successful upload for {silent_minutes} minutes"}
  - name: upload_quiet
    type: absence
    source: upload
    for: 20m
    severity: warning
    summary: {en: "the upload log is quiet"}
  - name: failures
    type: threshold
    source: upload
    when: "failed >= 2"
    severity: warning
    summary: {en: "{failed} failed, top code {top_error_code}"}
  - name: slow
    type: threshold
    source: upload
    when: "latency_p95 > 500 and errors >= 1"
    severity: warning
    summary: {en: "p95 {latency_p95}"}
  - name: burst_early
    type: threshold
    source: upload
    when: "failed >= 2 and top_error_code != ''"
    early: true
    severity: warning
    summary: {en: "{failed} failed so far"}
  - name: busy_early
    type: threshold
    source: upload
    when: "count >= 12"
    early: true
    severity: info
    summary: {en: "{count} lines so far"}
  - name: code_early
    type: threshold
    source: upload
    when: "error_codes.get('E1001', 0) >= 2"
    early: true
    severity: info
    summary: {en: "E1001 twice"}
"""


# an early rule whose condition does not begin with a growing count: judged line by line
UNBOUNDED = """\
  - name: rate_early
    type: threshold
    source: upload
    when: "failure_rate > 0.6 and count >= 4"
    early: true
    severity: warning
    summary: {en: "{failure_rate} failed"}
"""


def setup(tmp: Path, rules: str = RULES, max_line_bytes: int = 300) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(rules, encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(textwrap.dedent(f"""\
        state_dir: state
        window: 5m
        lateness: 30s
        poll_interval: 200ms
        max_future: 3650d
        sources:
          - name: upload
            paths: ["logs/upload.log"]
            max_line_bytes: {max_line_bytes}
            fields: {{ts: time, status: result, latency_ms: cost, error_code: code,
                     level: lvl}}
            values: {{status: {{成功: ok, 失败: failed, 超时: timeout, "1": ok}}}}
        rules: ["rules/*.yaml"]
        notify: {{language: en}}
        """), encoding="utf-8")
    return config


def reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counting path off: every line an Event."""
    monkeypatch.setattr(pipeline, "tally_for", lambda *args: None)


# -- lines: ordinary, odd and broken -------------------------------------------------------

TIMES = st.integers(-400, 7200).map(lambda s: T0 + timedelta(seconds=s))
VALUES: dict[str, Any] = {
    "result": st.sampled_from(["成功", "失败", "超时", "OK", "1", 1, True, None, "", [1],
                               {"a": 1}]),
    "cost": st.one_of(st.sampled_from([None, True, "abc", "300", "", [2], -5]),
                      st.integers(0, 5000), st.floats(0, 5000, allow_nan=False),
                      st.decimals(0, 5000, places=2).map(str)),
    "code": st.sampled_from([None, "E1001", "E2002", 1001, "", False, 3.5]),
    "lvl": st.sampled_from([None, "info", "ERROR", "crit", 3, ""]),
}


@st.composite
def json_line(draw: st.DrawFn) -> str:
    ts = draw(TIMES)
    shape = draw(st.sampled_from(["iso", "iso", "iso", "T", "epoch", "missing", "bad"]))
    record: dict[str, Any] = {}
    if shape == "iso":
        record["time"] = ts.strftime("%Y-%m-%d %H:%M:%S")
    elif shape == "T":
        record["time"] = ts.isoformat()
    elif shape == "epoch":
        record["time"] = int(ts.timestamp() * 1000)
    elif shape == "bad":
        record["time"] = draw(st.sampled_from(["yesterday", "", None, [1], "2126-01-01 00:00:00"]))
    for key, values in VALUES.items():
        if draw(st.booleans()):
            record[key] = draw(values)
    if draw(st.booleans()):
        record["fphm"] = "2431" + str(draw(st.integers(0, 10**6)))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:  # the same key twice: the last one counts
        text = text[:-1] + (', ' if record else '') + '"result": "失败"}'
    return text


BROKEN = st.sampled_from([
    "", "   ", "not json", "[1, 2]", '{"time": }', '"text"', "null",
    '\ufeff{"time": "2026-11-02 09:00:01", "result": "成功"}',  # a byte-order mark
    ' \t{"time": "2026-11-02 09:00:01", "result": "成功"} ',  # blanks around the object
    '{"time": "2026-11-02 09:00:02", "result": "a\tb"}',  # a raw tab: the stdlib reads it
    '{"time": "2026-11-02 09:00:03", "cost": NaN}',
    '{"time": "2026-11-02 09:00:04"} {"time": "2026-11-02 09:00:05"}',
    '{"time": "2026-11-02 09:00:06", "result": "成功", "x": "' + "y" * 400 + '"}',  # cut
    '{"time": "2026-11-02 09:00:07", "result": "失败", "code": "E\\u1001"}',
])
LINES = st.lists(st.one_of(json_line(), json_line(), json_line(), BROKEN), max_size=60)


def write(path: Path, lines: list[str], crlf: bool, garbled: bool, dangling: bool) -> None:
    data = ("\r\n" if crlf else "\n").join(lines).encode("utf-8")
    if lines and not dangling:
        data += b"\r\n" if crlf else b"\n"
    if garbled:
        data += b'{"time": "2026-11-02 09:00:09", "result": "\xff\xfe"}\n'
    path.write_bytes(data)


def read_batches(config: Path, per_batch: int, max_line_bytes: int = 300) -> list[LineBatch]:
    """The log as the daemon and replay read it: blocks and single lines, a batch at a time."""
    reader = FileSource("upload", [str(config.parent / "logs" / "upload.log")],
                        max_line_bytes=max_line_bytes)
    out = []
    while True:
        batch = reader.read(per_batch) or reader.flush_batch()
        if not batch:
            break
        out.append(batch)
    reader.close()
    return out


def decided(config: Path, batches: list[LineBatch], counting: bool,
            limit: datetime | None = None) -> dict[str, Any]:
    """Everything the engine decided and holds after the batches and the end of data."""
    loaded, rules = load_all(config, notify=False, batch=True)
    # one clock for both ways: a line "in the future" is told so with the clock's time
    engine = Engine(loaded, rules, clock=lambda: NOW, batch=True)
    tally = engine.tallies.get("upload")
    assert tally is not None, "the counting path applies to this config"
    for batch in batches:
        if counting:
            mark = tally.last_confirmed(engine, batch)  # what the daemon bounds time by
            assert tally.count(engine, batch, limit).last == mark
        else:
            for confirmed, ev in engine.events(batch.raw()):
                engine.push(confirmed, ev, limit)
    state = json.loads(json.dumps(engine.state(), default=str))
    engine.finish(T0 + timedelta(hours=4))
    drained = engine.drain()
    return {
        "state": state,
        "windows": [(w.start.isoformat(), json.dumps(dict(w.features), default=str,
                                                     sort_keys=True)) for w in drained.windows],
        "transitions": [json.dumps(jsonl_record(t, "en"), sort_keys=True, default=str)
                        for t in engine.take()],
        "counts": engine.counts.drain(),
        "failures": [(f.line_no, f.reason) for f in drained.failures],
        "rules": {d.name: d.state() for d in engine.detectors},
    }


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=LINES, crlf=st.booleans(), garbled=st.booleans(), dangling=st.booleans(),
       per_batch=st.sampled_from([1, 7, 1000]), limited=st.booleans(),
       max_line_bytes=st.sampled_from([300, 65536]), unbounded=st.booleans())
def test_any_lines_count_the_same_as_events(tmp_path_factory, lines, crlf, garbled, dangling,
                                            per_batch, limited, max_line_bytes, unbounded):
    tmp = tmp_path_factory.mktemp("tally")
    config = setup(tmp, RULES + UNBOUNDED if unbounded else RULES, max_line_bytes)
    write(tmp / "logs" / "upload.log", lines, crlf, garbled, dangling)
    batches = read_batches(config, per_batch, max_line_bytes)
    limit = T0 + timedelta(minutes=30) if limited else None
    assert decided(config, batches, True, limit) == decided(config, batches, False, limit)


def test_blocks_are_counted_without_a_line_object_and_oddities_through_the_parser(tmp_path):
    config = setup(tmp_path, max_line_bytes=65536)
    good = [json.dumps({"time": (T0 + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S"),
                        "result": "失败" if s % 7 == 0 else "成功", "cost": 100 + s,
                        "code": "E1001" if s % 7 == 0 else None}, ensure_ascii=False)
            for s in range(0, 3600, 3)]
    lines = good[:500] + ["not json", '{"time": "never"}'] + good[500:]
    write(tmp_path / "logs" / "upload.log", lines, crlf=False, garbled=False, dangling=False)
    batches = read_batches(config, 50000, max_line_bytes=65536)
    assert any(type(p) is Block for b in batches for p in b.parts)  # read in blocks
    counted = decided(config, batches, True)
    assert counted == decided(config, batches, False)
    assert counted["counts"][("upload", "unparsed")] == 2
    assert [r for _, r in counted["failures"]][:2] == [
        "not JSON: Expecting value at column 1", "unreadable timestamp 'never'"]
    fired = [json.loads(t)["rule"] for t in counted["transitions"]
             if json.loads(t)["state"] == "firing"]
    assert "failures" in fired and "upload_silence" in fired  # windows and absence judged
    assert "burst_early" in fired and "busy_early" in fired  # early rules, at their lines
    early = [json.loads(t) for t in counted["transitions"]
             if json.loads(t)["rule"] == "burst_early" and json.loads(t)["state"] == "firing"]
    assert all("失败" in lines[r["line"] - 1] for r in early)  # the line that made it true


def test_a_replay_of_the_simulated_day_decides_the_same_both_ways(tmp_path, monkeypatch):
    """The demo config without its ledger and model, on a simulated upload log with its
    incidents: one source, its absence rule and thresholds, counted without Events."""
    config, _ = prepare(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.pop("ledger", None)
    data.pop("model", None)
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (tmp_path / "rules" / "invoice.yaml").unlink()
    log = config.parent / "logs" / "upload.log"  # the demo day's, with its incidents
    with log.open("a", encoding="utf-8") as f:  # and a day of steady uploads after
        f.write(_steady_day())

    def replayed() -> tuple[list[str], dict[str, dict[str, int]], int]:
        loaded, rules = load_all(config, notify=False, batch=True)
        pairs = [(s, p) for s, p in configured_files(loaded) if s.name == "upload"]
        result = replay(loaded, rules, pairs)
        return ([json.dumps(jsonl_record(t, "zh"), ensure_ascii=False, sort_keys=True)
                 for t in result.transitions], result.counters, result.windows)

    loaded, rules = load_all(config, notify=False, batch=True)
    assert "upload" in Engine(loaded, rules, batch=True).tallies
    counted = replayed()
    with monkeypatch.context() as m:
        reference(m)
        assert counted == replayed()
    assert counted[1]["upload"]["lines"] > 20_000 and counted[2] > 0
    fired = {json.loads(t)["rule"] for t in counted[0]}
    assert {"upload_outage", "upload_latency"} <= fired, fired


def _steady_day() -> str:
    """A day after the demo's of an upload every 4 s, a few failing: blocks of plain lines."""
    start = datetime(2026, 11, 3, 0, 0, tzinfo=TZ)
    return "".join(json.dumps({"time": (start + timedelta(seconds=s)).strftime(
        "%Y-%m-%d %H:%M:%S"), "action": "upload", "fphm": str(10**15 + s),
        "result": "失败" if s % 400 == 0 else "成功", "cost": 200 + s % 300,
        "code": "1001" if s % 400 == 0 else None}, ensure_ascii=False) + "\n"
        for s in range(0, 86400, 4))


def test_the_daemon_counting_lines_decides_as_replay_without_it(tmp_path, agents, monkeypatch):
    """`run` tails the file through the counting path, a replay with the path off reads the
    same lines: the same transitions."""
    config = setup(tmp_path)
    now = datetime.now(TZ).replace(microsecond=0)
    start = now - timedelta(hours=2)
    start -= timedelta(minutes=start.minute % 5, seconds=start.second)
    lines = []
    t = start
    while t < now - timedelta(minutes=5):
        quiet = start + timedelta(minutes=30) <= t < start + timedelta(minutes=60)
        burst = start + timedelta(minutes=80) <= t < start + timedelta(minutes=82)
        if not quiet:
            lines.append(json.dumps({"time": t.strftime("%Y-%m-%d %H:%M:%S"),
                                     "result": "失败" if burst else "成功",
                                     "code": "E1001" if burst else None,
                                     "cost": 900 if burst else 120, "lvl": "info"},
                                    ensure_ascii=False))
        t += timedelta(seconds=15)
    log = tmp_path / "logs" / "upload.log"
    write(log, lines, crlf=False, garbled=False, dangling=False)

    with monkeypatch.context() as m:
        reference(m)
        loaded, rules = load_all(config, notify=False, batch=True)
        offline = replay(loaded, rules, configured_files(loaded))
    expected = sorted((t.ts.isoformat(), t.rule, t.state) for t in offline.transitions
                      if t.reason != "repeat interval elapsed")
    assert {r for _, r, s in expected if s == "firing"} >= {"upload_silence", "failures"}

    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: len(db_rows(config, "SELECT * FROM alert_log")) >= len(expected),
             what="the live agent's transitions")
    assert agent.stop() == 0
    live = sorted((datetime.fromisoformat(ts).isoformat(), rule, state)
                  for ts, rule, state in db_rows(
                      config, "SELECT ts, rule, state FROM alert_log WHERE reason != "
                              "'repeat interval elapsed'"))
    assert live == expected


ROWS = st.lists(st.tuples(
    st.sampled_from([None, "ok", "failed", "error", "timeout", "pending", "weird"]),
    st.sampled_from([None, "", "E1001", "E2002", "E3003"]),
    st.sampled_from([None, "info", "ERROR", "Crit", "warn"]),
    st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
    st.none()), max_size=300)


@settings(max_examples=80, deadline=None)
@given(runs=st.lists(ROWS, max_size=12), pad=st.integers(0, 2100))
def test_a_run_of_rows_counts_as_its_events_one_by_one(runs, pad):
    """Columns counted at once leave a window exactly as counting each event does, also where
    the latencies pass the exact-sample limit and are moved to buckets."""
    one, many = _Acc(), _Acc()
    for acc in (one, many):
        for i in range(pad):
            acc.add("ok", None, None, float(i % 97))
    for rows in runs:
        for status, code, level, latency, _ in rows:
            one.add(status, code, level, latency)
        many.add_rows(rows)
    assert json.dumps(many.to_json()) == json.dumps(one.to_json())
    assert compute_features(many, timedelta(minutes=5)) == \
        compute_features(one, timedelta(minutes=5))


NEW_YORK = ZoneInfo("America/New_York")
FOLD = datetime(2026, 11, 1, 5, 0, tzinfo=timezone.utc).timestamp()  # 01:00 EDT, then EST


@settings(max_examples=150, deadline=None)
@given(window=st.integers(-30, 30), offsets=st.lists(st.integers(0, 299), min_size=1,
                                                        max_size=20),
       closed=st.one_of(st.none(), st.integers(-9000, 9000)),
       before=st.one_of(st.none(), st.integers(-9000, 9000)))
def test_an_absence_rule_shown_a_window_at_once_keeps_what_it_keeps_line_by_line(
        window, offsets, closed, before):
    """Around the hour New York repeats: its times compare by the clock on the wall."""
    config = AbsenceConfig.model_validate({"name": "quiet", "type": "absence",
                                           "source": "upload", "for": "15m",
                                           "summary": {"en": "quiet"}})
    start = FOLD + window * 300
    times = [datetime.fromtimestamp(start + o, NEW_YORK) for o in offsets]
    rules = [AbsenceRule(config, timedelta(minutes=5), "America/New_York") for _ in range(2)]
    for rule in rules:
        if closed is not None:
            rule._closed_until = datetime.fromtimestamp(FOLD + closed, NEW_YORK)
        if before is not None:
            rule._ahead[start] = datetime.fromtimestamp(FOLD + before, NEW_YORK)
    rules[0].saw(times)
    rules[1].saw_window(times)
    assert rules[1].state() == rules[0].state()
    assert [(t, t.fold) for t in rules[1]._ahead.values()] == \
        [(t, t.fold) for t in rules[0]._ahead.values()]


@pytest.mark.parametrize("when, bound", [
    ("count >= 100000", ("count", 100000.0, False)),
    ("failed > 2 and top_error_code != ''", ("failed", 2.0, True)),
    ("3 <= timeout", ("timeout", 3.0, False)),
    ("failure_rate > 0.5 and count >= 5", ("failure_rate", 0.5, True)),  # not growing
    ("count >= 5 or failed >= 1", None),
    ("top_error_code == '1001' and count >= 5", None),
    ("error_codes.get('1001', 0) >= 4", ("error_codes:1001", 4.0, False)),
    ("error_codes.get('1001', 1) >= 4", None),  # 1 until 1001 comes, then 1 again
    ("count >= 1e999", None),
])
def test_the_leading_count_threshold_of_a_condition(when, bound):
    assert leading_bound(compile_when(when, ["upload"])) == bound
    assert (bound is not None and growing(bound[0]) is not None) == (
        bound is not None and bound[0] != "failure_rate")
