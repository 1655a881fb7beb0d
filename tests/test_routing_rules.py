"""A rule's `active_hours` (threshold and absence) and `escalate`, over real log files through
the engine: what fires, when, and the messages it makes."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.alerts import ESCALATED, FIRST, REPEAT, RESOLVED
from agent.config import LoadedConfig, load_config
from agent.detect.base import Detector
from agent.detect.loader import load_rules
from agent.pipeline import Engine
from agent.types import RawLine
from agent.yamlfile import FileProblems

TZ = timezone(timedelta(hours=8))
MON = datetime(2026, 11, 2, tzinfo=TZ)  # a Monday; Tuesday 11-03 is a business day too


def setup(tmp: Path, rules: str, extra: str = "") -> LoadedConfig:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        state_dir: state
        window: 5m
        lateness: 30s
        sources:
          - name: upload
            paths: ["logs/upload.log"]
            fields: {ts: time, status: result}
            values: {status: {成功: ok, 失败: failed}}
        rules: ["rules/*.yaml"]
        """) + textwrap.dedent(extra), encoding="utf-8")
    return load_config(config)


def at(day: int, h: int, m: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=h, minutes=m)


def every_minute(start: datetime, end: datetime, status: str = "成功") -> list[tuple]:
    out, t = [], start
    while t < end:
        out.append((t, status))
        t += timedelta(minutes=1)
    return out


def write_log(loaded: LoadedConfig, lines: list[tuple]) -> Path:
    path = loaded.base / "logs" / "upload.log"
    path.write_text("".join(json.dumps({"time": t.isoformat(), "result": s},
                                       ensure_ascii=False) + "\n" for t, s in sorted(lines)),
                    encoding="utf-8")
    return path


def engine_over(loaded: LoadedConfig, path: Path, rules: list[Detector] | None = None
                ) -> Engine:
    """The engine over one file, line by line, as `replay` drives it; then finished."""
    if rules is None:
        rules = load_rules(loaded.rule_globs(), ["upload"], loaded.config.window,
                           timezone=loaded.config.timezone)
    engine = Engine(loaded, rules)
    newest = None
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for confirmed, ev in engine.events([RawLine("upload", str(path), i, text)]):
            engine.push(confirmed, ev)
            newest = ev.ts if newest is None or ev.ts > newest else newest
    assert newest is not None
    engine.finish(newest + loaded.config.window + loaded.config.lateness, data_end=newest)
    return engine


def alerts(engine: Engine) -> list[tuple[str, str, datetime]]:
    """Firings and resolutions (not the reminders of a still-firing alert)."""
    return [(t.rule, t.state, t.ts) for t in engine.take() if t.reason != REPEAT]


OFFICE = '{days: [business], start: "08:00", end: "20:00"}'

SILENCE = f"""\
    rules:
      - name: upload_silence
        type: absence
        source: upload
        match: {{status: ok}}
        for: 45m
        active_hours: {OFFICE}
      - name: upload_silence_always
        type: absence
        source: upload
        match: {{status: ok}}
        for: 45m
    """


def test_absence_after_a_quiet_night_counts_silence_from_the_start_of_active_hours(tmp_path):
    loaded = setup(tmp_path, SILENCE)
    # uploads until 19:30 on Monday, then nothing until Tuesday 08:30
    path = write_log(loaded, every_minute(at(0, 7), at(0, 19, 30))
                     + every_minute(at(1, 8, 30), at(1, 9)))
    assert alerts(engine_over(loaded, path)) == [
        # without active_hours the night is an outage
        ("upload_silence_always", "firing", at(0, 20, 15)),
        ("upload_silence_always", "resolved", at(1, 8, 35)),
        # with them: nothing at 20:15 (outside), nothing at 08:00; 30 min is not 45
    ]


def test_absence_in_active_hours_fires_for_after_their_start(tmp_path):
    loaded = setup(tmp_path, SILENCE[:SILENCE.index("  - name: upload_silence_always")])
    path = write_log(loaded, every_minute(at(0, 7), at(0, 19, 30))
                     + every_minute(at(1, 9), at(1, 9, 30)))
    assert alerts(engine_over(loaded, path)) == [
        ("upload_silence", "firing", at(1, 8, 45)),  # 45 min after 08:00, not at 08:00
        ("upload_silence", "resolved", at(1, 9, 5)),
    ]


BURSTS = f"""\
    rules:
      - name: failures
        type: threshold
        source: upload
        when: "failed >= 3"
        active_hours: {OFFICE}
    """


def test_a_threshold_rule_outside_active_hours_resolves_and_does_not_fire(tmp_path):
    loaded = setup(tmp_path, BURSTS)
    fails = (every_minute(at(0, 19, 50), at(0, 20, 15), "失败")  # across 20:00
             + every_minute(at(0, 21), at(0, 21, 10), "失败")  # at night
             + every_minute(at(1, 7, 50), at(1, 8, 10), "失败"))  # across 08:00
    path = write_log(loaded, fails + every_minute(at(0, 19, 40), at(1, 8, 30)))
    assert alerts(engine_over(loaded, path)) == [
        ("failures", "firing", at(0, 19, 55)),  # the window 19:50-19:55 is in office hours
        ("failures", "resolved", at(0, 20, 5)),  # 20:00-20:05 is not: the alert ends
        ("failures", "firing", at(1, 8, 5)),  # 07:55-08:00 did not count; 08:00-08:05 does
        ("failures", "resolved", at(1, 8, 15)),
    ]


ESCALATING = """\
    rules:
      - name: failures
        type: threshold
        source: upload
        when: "failed >= 1"
        severity: warning
        escalate: {after: 1h, to: critical}
    """


def test_a_warning_still_firing_after_an_hour_escalates_to_critical_and_is_told_again(tmp_path):
    loaded = setup(tmp_path, ESCALATING, "notify: {group_wait: 30s, group_interval: 5m}\n")
    path = write_log(loaded, every_minute(at(0, 10), at(0, 11, 30), "失败")
                     + every_minute(at(0, 9, 50), at(0, 11, 45)))
    engine = engine_over(loaded, path)
    assert [(t.state, t.reason, t.severity, t.ts) for t in engine.take()] == [
        ("firing", FIRST, "warning", at(0, 10, 5)),
        ("firing", ESCALATED, "critical", at(0, 11, 5)),  # fired 10:05, an hour later
        ("resolved", RESOLVED, "critical", at(0, 11, 35)),
    ]
    notices = engine.take_notices()
    assert [(n.reason, n.severity, n.ts) for n in notices] == [
        ("first notification", "warning", at(0, 10, 5, ) + timedelta(seconds=30)),
        ("update", "critical", at(0, 11, 5) + timedelta(seconds=30)),  # routed as critical
        ("resolved", "critical", at(0, 11, 35) + timedelta(seconds=30)),
    ]


@pytest.mark.parametrize("option, key, message", [
    ("escalate: {after: 1h, to: warning}", "rules.0", "must be above the rule's severity"),
    ("escalate: {after: 0s}", "rules.0.escalate.after", "more than 0"),
    ('active_hours: {days: [workday], start: "08:00"}', "rules.0.active_hours.0.days",
     "unknown day 'workday'"),
    ("active_hours: []", "rules.0.active_hours", "at least one range"),
])
def test_bad_options_name_the_file_and_key(tmp_path, option, key, message):
    loaded = setup(tmp_path, f"""\
        rules:
          - name: failures
            type: threshold
            source: upload
            when: "failed >= 1"
            severity: warning
            {option}
        """)
    with pytest.raises(FileProblems) as exc:
        load_rules(loaded.rule_globs(), ["upload"], loaded.config.window)
    (p,) = exc.value.problems
    assert (p.file, p.key) == (str(tmp_path / "rules" / "r.yaml"), key)
    assert message in p.message


def test_an_engine_restarted_mid_group_sends_what_an_uninterrupted_one_sends(tmp_path):
    loaded = setup(tmp_path, ESCALATING, "notify: {group_wait: 2m, group_interval: 5m}\n")
    path = write_log(loaded, every_minute(at(0, 10), at(0, 11, 30), "失败")
                     + every_minute(at(0, 9, 50), at(0, 11, 45)))
    expected = [(n.ts, n.reason, n.severity) for n in engine_over(loaded, path).take_notices()]
    assert len(expected) == 3

    rules = load_rules(loaded.rule_globs(), ["upload"], loaded.config.window)
    engine = Engine(loaded, rules)
    lines = path.read_text(encoding="utf-8").splitlines()
    raws = [RawLine("upload", str(path), i, t) for i, t in enumerate(lines, 1)]
    # stop after the first line of 10:07: the alert fired at 10:05 (that line confirmed
    # 10:06, closing the window) and its group waits for its first flush at 10:07
    times = [datetime.fromisoformat(json.loads(r.text)["time"]) for r in raws]
    cut = times.index(at(0, 10, 7)) + 1
    states = {}
    for confirmed, ev in engine.events(raws[:cut]):
        engine.push(confirmed, ev)
    assert engine.take_notices() == []
    states.update({a.fingerprint: a for a in engine.drain().alerts})
    saved = json.loads(json.dumps(engine.state()))
    assert saved["router"]["groups"]  # the waiting group is in the checkpoint

    again = Engine(loaded, load_rules(loaded.rule_globs(), ["upload"], loaded.config.window))
    again.restore(saved, states.values())
    newest = None
    for confirmed, ev in again.events(raws[cut:]):
        again.push(confirmed, ev)
        newest = ev.ts
    assert newest is not None
    again.finish(newest + loaded.config.window + loaded.config.lateness, data_end=newest)
    assert [(n.ts, n.reason, n.severity) for n in again.take_notices()] == expected
