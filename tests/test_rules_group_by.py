"""`type: threshold` per key (`group_by`: one alert per host, error code, taxpayer) and over
several sources at once (`sources:` with `upload.failure_rate`-style names)."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.config import load_config
from agent.detect.loader import load_rules
from agent.detect.threshold import ThresholdRule
from agent.pipeline import Engine
from agent.types import Event, Transition

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


def engine_for(tmp_path: Path, rules: str) -> Engine:
    (tmp_path / "rules").mkdir(parents=True, exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("window: 5m\nlateness: 0s\nsources:\n"
                      "  - {name: upload, paths: [u.log]}\n  - {name: erp, paths: [e.log]}\n"
                      "rules: [rules/*.yaml]\n", encoding="utf-8")
    loaded = load_config(config)
    return Engine(loaded, load_rules(loaded.rule_globs(), ["upload", "erp"]))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(engine: Engine, events: list[Event], until: datetime) -> list[Transition]:
    for ev in sorted(events, key=lambda e: e.ts):
        engine.push(ev.ts, ev)
    engine.advance(until)
    return engine.take()


def upload(minutes: float, status: str = "ok", **fields: str) -> Event:
    return Event(ts=at(minutes), source="upload", status=status, **fields)


PER_HOST = """\
rules:
  - name: host_failures
    type: threshold
    source: upload
    when: "count >= 4 and failure_rate > 0.5"
    group_by: [host]
    summary: {en: "{host}: {failed}/{count} failed"}
"""


def test_one_alert_per_host_with_that_hosts_own_features(tmp_path):
    engine = engine_for(tmp_path, PER_HOST)
    events = [upload(1 + i * 0.1, "failed", host="fp-a") for i in range(4)]
    events += [upload(1 + i * 0.1, "ok", host="fp-b") for i in range(10)]
    events += [upload(2, "failed", host="fp-b")]
    events += [upload(6 + i * 0.1, "ok", host="fp-a") for i in range(4)]
    got = run(engine, events, at(10))
    # over the whole source 5/15 failed: no alert; fp-a alone 4/4
    assert [(t.state, t.ts, t.labels) for t in got] == [
        ("firing", at(5), {"source": "upload", "host": "fp-a"}),
        ("resolved", at(10), {"source": "upload", "host": "fp-a"})]
    assert got[0].summary["en"] == "fp-a: 4/4 failed"
    assert got[1].values["count"] == 4 and got[1].values["failed"] == 0


def test_a_firing_key_resolves_in_a_window_where_it_logged_nothing(tmp_path):
    engine = engine_for(tmp_path, PER_HOST)
    got = run(engine, [upload(1 + i * 0.1, "failed", host="fp-a") for i in range(4)]
              + [upload(7, "ok", host="fp-b")], at(10))
    assert [(t.state, t.ts) for t in got] == [("firing", at(5)), ("resolved", at(10))]
    assert got[1].values["count"] == 0


def test_events_without_the_key_field_belong_to_no_key(tmp_path):
    engine = engine_for(tmp_path, """\
        rules:
          - name: code_burst
            type: threshold
            source: upload
            when: "count >= 3"
            group_by: [error_code]
            summary: {en: "code {error_code} {count}x"}
        """)
    events = [upload(1 + i * 0.1, "ok") for i in range(10)]  # no code: not a key
    events += [upload(2 + i * 0.1, "failed", error_code="1001") for i in range(3)]
    events += [upload(3, "failed", error_code="2001")]
    got = run(engine, events, at(5))
    assert [(t.labels["error_code"], t.summary["en"]) for t in got] == [("1001", "code 1001 3x")]


def test_keys_beyond_max_keys_are_counted_in_keys_dropped(tmp_path):
    engine = engine_for(tmp_path, """\
        rules:
          - name: per_taxpayer
            type: threshold
            source: upload
            when: "failed >= 1"
            group_by: [taxpayer_id]
            max_keys: 3
            summary:
              en: "{taxpayer_id} failing ({keys_dropped} events of other taxpayers not tracked)"
        """)
    events = [upload(1 + i * 0.1, "failed", taxpayer_id=f"91{i:016d}") for i in range(5)]
    got = run(engine, events, at(5))
    assert len(got) == 3 and all(t.values["keys_dropped"] == 2 for t in got)
    assert got[0].summary["en"] == ("910000000000000000 failing (2 events of other taxpayers "
                                    "not tracked)")


def test_early_with_group_by_fires_at_the_line_for_that_key_only(tmp_path):
    engine = engine_for(tmp_path, """\
        rules:
          - name: host_burst
            type: threshold
            source: upload
            when: "failed >= 3"
            early: true
            group_by: [host]
        """)
    events = [upload(1 + i * 0.5, "failed", host="fp-a") for i in range(4)]
    events += [upload(1.2, "failed", host="fp-b"), upload(1.3, "failed", host="fp-b")]
    got = run(engine, events, at(4))  # before the window ends
    assert [(t.state, t.ts, t.labels["host"]) for t in got] == [("firing", at(2), "fp-a")]
    assert got[0].values["failed"] == 3


def test_open_windows_per_key_carry_across_a_restart(tmp_path):
    events = [upload(1 + i * 0.1, "failed", host="fp-a") for i in range(4)]
    first = engine_for(tmp_path, PER_HOST)
    assert run(first, events[:2], at(2)) == []
    second = engine_for(tmp_path, PER_HOST)
    second.restore(json.loads(json.dumps(first.state())), [])
    got = run(second, events[2:], at(5))
    assert [(t.state, t.values["count"]) for t in got] == [("firing", 4)]


def test_without_group_by_the_rule_is_the_plain_one(tmp_path):
    (rule,) = engine_for(tmp_path, PER_HOST.replace("    group_by: [host]\n", "")
                         .replace("{host}: ", "")).detectors
    assert type(rule) is ThresholdRule  # the per-line cost stays what it was


ACROSS = """\
rules:
  - name: uploads_fail_erp_silent
    type: threshold
    sources: [upload, erp]
    when: "upload.failure_rate > 0.2 and erp.count == 0"
    summary:
      zh: "上传失败率 {upload.failure_rate:.0%}，ERP 同步 {erp.count} 笔"
      en: "upload failure rate {upload.failure_rate:.0%}, {erp.count} ERP syncs"
"""


def test_a_condition_over_two_sources_of_the_same_window(tmp_path):
    engine = engine_for(tmp_path, ACROSS)
    events = [upload(1 + i * 0.1, "failed" if i < 3 else "ok") for i in range(10)]
    # the next window: uploads fail as much, but the ERP still syncs
    events += [upload(6 + i * 0.1, "failed" if i < 3 else "ok") for i in range(10)]
    events += [Event(ts=at(7), source="erp", status="ok")]
    got = run(engine, events, at(10))
    assert [(t.state, t.ts) for t in got] == [("firing", at(5)), ("resolved", at(10))]
    assert got[0].summary == {"zh": "上传失败率 30%，ERP 同步 0 笔",
                              "en": "upload failure rate 30%, 0 ERP syncs"}
    assert got[0].labels == {"source": "upload,erp"}
    assert got[1].values["erp.count"] == 1 and got[1].values["upload.failed"] == 3


def test_a_two_source_rule_waits_for_both_windows_across_a_restart(tmp_path):
    engine = engine_for(tmp_path, ACROSS)
    ev = upload(1, "failed")
    engine.push(ev.ts, ev)
    engine.advance(at(5))
    windows = {w.source: w for w in engine.drain().windows}
    # the engine's rule has judged these windows; another instance is shown one at a time
    (rule,) = engine_for(tmp_path / "first", ACROSS).detectors
    assert rule.on_window(windows["upload"]) == ()
    saved = json.loads(json.dumps(rule.state()))
    (again,) = engine_for(tmp_path / "again", ACROSS).detectors
    again.restore(saved)
    (finding,) = again.on_window(windows["erp"])
    assert finding.active and finding.values["upload.failure_rate"] == 1.0
