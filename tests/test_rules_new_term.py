"""`type: new_term`: a value never seen in the last days fires once at its line and resolves
with the next window; a learning period first; bounded memory; kept across a restart."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.config import load_config
from agent.detect.loader import load_rules
from agent.pipeline import Engine
from agent.types import Event, Transition
from agent.yamlfile import FileProblems

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


SUMMARY = """\
summary:
  zh: "新错误码 {error_code}（首次出现 {first_seen}）"
  en: "new error code {error_code}"
"""


def engine_for(tmp_path: Path, options: str = "", summary: str = SUMMARY) -> Engine:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: new_error_code
            type: new_term
            source: upload
            field: error_code
        """) + textwrap.indent(options + summary, "    "), encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("window: 5m\nlateness: 0s\nsources:\n"
                      "  - {name: upload, paths: [u.log]}\nrules: [rules/*.yaml]\n",
                      encoding="utf-8")
    loaded = load_config(config)
    return Engine(loaded, load_rules(loaded.rule_globs(), ["upload"]))


def push(engine: Engine, codes: list[tuple[datetime, str | None]], until: datetime
         ) -> list[Transition]:
    for i, (ts, code) in enumerate(codes):
        engine.push(ts, Event(ts=ts, source="upload", status="failed" if code else "ok",
                              error_code=code, line_no=i + 1, path="u.log"))
    engine.advance(until)
    return engine.take()


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def test_codes_of_the_learning_day_are_known_and_a_new_one_fires_once_at_its_line(tmp_path):
    engine = engine_for(tmp_path)  # learn: 1d by default
    learnt = [(hours(h), c) for h, c in ((0, "1001"), (3, "2001"), (20, None), (23, "1001"))]
    assert push(engine, learnt, hours(24)) == []
    later = [(hours(25), "1001"), (hours(25.01), "3004"), (hours(25.02), "3004"),
             (hours(25.2), "3004")]
    got = push(engine, later, hours(26))
    assert [(t.state, t.ts, t.labels["error_code"]) for t in got] == [
        ("firing", hours(25.01), "3004"),
        # the line at 10:00:36 (next day) is in the window [10:00, 10:05); the next one ends
        # the alert: a new value is an event, not a condition
        ("resolved", hours(25) + timedelta(minutes=10), "3004")]
    assert got[0].line_no == 2 and got[0].path == "u.log"  # the second line of this batch
    assert got[0].summary["en"] == "new error code 3004"
    assert got[0].labels == {"source": "upload", "error_code": "3004"}


def test_a_value_unseen_for_longer_than_days_is_new_again(tmp_path):
    engine = engine_for(tmp_path, "days: 2\nlearn: 0s\n")
    got = push(engine, [(hours(0), "1001"), (hours(47), "1001"), (hours(47.5), "2001"),
                        (hours(96), "2001"), (hours(120), "1001")], hours(121))
    fired = [(t.ts, t.labels["error_code"]) for t in got if t.state == "firing"]
    # 1001 at 0h and 47h: known; 2001 at 47.5h: new; 2001 again at 96h: 48.5 hours unseen,
    # new again; 1001 at 120h: 73 hours unseen
    assert fired == [(hours(0), "1001"), (hours(47.5), "2001"), (hours(96), "2001"),
                     (hours(120), "1001")]


def test_beyond_max_terms_the_least_recently_seen_is_forgotten_and_counted(tmp_path):
    engine = engine_for(tmp_path, "learn: 0s\nmax_terms: 2\n",
                        "summary: '{error_code} ({terms_forgotten} forgotten)'\n")
    got = push(engine, [(hours(0), "A"), (hours(0.1), "B"), (hours(0.2), "A"),
                        (hours(0.3), "C"), (hours(0.4), "A"), (hours(0.5), "B")], hours(1))
    fired = [t for t in got if t.state == "firing"]
    # C pushes out B (A was seen again since); B comes back as new, pushing out C
    assert [t.labels["error_code"] for t in fired] == ["A", "B", "C", "B"]
    assert [t.values["terms_forgotten"] for t in fired] == [0, 0, 1, 2]
    assert fired[-1].summary["en"] == "B (2 forgotten)"


def test_a_restart_keeps_what_was_learnt_and_does_not_learn_again(tmp_path):
    first = engine_for(tmp_path, "learn: 1h\n")
    push(first, [(hours(0), "1001"), (hours(0.5), "2001")], hours(1))
    saved = json.loads(json.dumps(first.state()))
    second = engine_for(tmp_path, "learn: 1h\n")
    second.restore(saved, [])
    got = push(second, [(hours(2), "1001"), (hours(2.1), "9999")], hours(3))
    assert [(t.state, t.labels["error_code"]) for t in got] == [
        ("firing", "9999"), ("resolved", "9999")]


def test_for_on_a_new_term_rule_is_refused_at_load(tmp_path):
    with pytest.raises(FileProblems) as info:
        engine_for(tmp_path, "for: 5m\n")
    (p,) = info.value.problems
    assert p.key == "rules.0.for" and "never fire" in p.message
    assert "rules.0 (new_error_code).for:" in str(p)
