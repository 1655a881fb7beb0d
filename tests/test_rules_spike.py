"""`type: spike`: a window's feature against the median of its own past, per window or per
hour of the day; guards keep small numbers quiet; the baseline survives a restart."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.config import load_config
from agent.detect.base import Detector
from agent.detect.loader import load_rules
from agent.features import empty_features
from agent.pipeline import Engine
from agent.types import Event, Finding, Window

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=TZ)
FIVE = timedelta(minutes=5)


def rule(tmp_path: Path, options: str) -> Detector:
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: surge
            type: spike
            source: upload
        """) + textwrap.indent(textwrap.dedent(options), "    "), encoding="utf-8")
    (found,) = load_rules([str(tmp_path / "r.yaml")], ["upload"], FIVE)
    return found


def window(start: datetime, count: float) -> Window:
    return Window("upload", start, start + FIVE, dict(empty_features(), count=count))


def verdicts(detector: Detector, counts: list[float], t0: datetime = T0) -> list[Finding]:
    out = []
    for i, c in enumerate(counts):
        out += detector.on_window(window(t0 + i * FIVE, c))
    return out


def test_a_window_three_times_its_recent_median_fires_and_the_next_normal_one_resolves(
        tmp_path):
    surge = rule(tmp_path, """\
        feature: count
        ratio: 3
        baseline: windows
        windows: 6
        summary: {en: "{value:.0f} uploads, {change:.1f}x the usual {baseline:.0f}"}
        """)
    found = verdicts(surge, [10, 12, 9, 11, 10, 10, 35, 10, 50])
    assert [f.active for f in found] == [False] * 6 + [True, False, True]
    spike = found[6]
    assert spike.values["baseline"] == 10 and spike.values["value"] == 35
    assert surge.summary(spike.values)["en"] == "35 uploads, 3.5x the usual 10"
    # 35 joined the baseline, yet the median of the last 6 stays 10: 50 is a spike again
    assert found[8].values["baseline"] == 10


def test_no_verdict_before_min_history_windows_of_baseline(tmp_path):
    surge = rule(tmp_path, "windows: 12\nmin_history: 4\n")
    assert [f.active for f in verdicts(surge, [5, 5, 5, 100, 100, 5, 5])] == [
        False, False, False, False, True, False, False]


def test_a_jump_from_nothing_to_a_few_is_no_spike_but_to_many_is(tmp_path):
    surge = rule(tmp_path, """\
        windows: 4
        min_value: 10
        min_baseline: 5
        """)
    # 0 -> 3: under min_value; 0 -> 12: not over 3 x 5 (the baseline is taken as at least 5)
    assert not any(f.active for f in verdicts(surge, [0, 0, 0, 0, 3, 12]))
    surge = rule(tmp_path, "windows: 4\nmin_value: 10\nmin_baseline: 5\n")
    assert [f.active for f in verdicts(surge, [0, 0, 0, 0, 16])][-1] is True


def test_drops_fire_with_below_or_a_ratio_under_one_but_not_from_a_tiny_baseline(tmp_path):
    for options in ("below: true\nratio: 4\nwindows: 4\n", "ratio: 0.25\nwindows: 4\n"):
        drop = rule(tmp_path, options + "min_baseline: 8\n")
        assert [f.active for f in verdicts(drop, [40, 40, 40, 40, 9, 40, 40, 11])] == [
            False] * 4 + [True, False, False, False]
        quiet = rule(tmp_path, options + "min_baseline: 8\n")
        # a baseline of 4 is too small to tell a drop from noise
        assert not any(f.active for f in verdicts(quiet, [4, 4, 4, 4, 0]))


def test_same_hour_compares_a_window_with_that_hour_on_the_past_days(tmp_path):
    surge = rule(tmp_path, """\
        baseline: same_hour
        days: 7
        ratio: 3
        """)

    def counts_of(day: int) -> list[float]:
        # quiet at night (2 per window), busy at 09:00-10:00 (60 per window)
        return [60 if 9 <= (i * 5) // 60 < 10 else 2 for i in range(288)]

    for d in range(3):
        assert not any(f.active for f in verdicts(surge, counts_of(d), T0 + timedelta(days=d)))
    day4 = T0 + timedelta(days=3)
    # 40 at 03:00 is a spike for 3 a.m. (2 per window); 60 at 09:00 is an ordinary morning,
    # though 30 times the night
    (night,) = surge.on_window(window(day4 + timedelta(hours=3), 40))
    (morning,) = surge.on_window(window(day4 + timedelta(hours=9), 60))
    assert night.active and night.values["baseline"] == 2 and night.values["history"] == 3
    assert not morning.active and morning.values["baseline"] == 60


def test_same_hour_needs_min_history_days_before_it_judges(tmp_path):
    surge = rule(tmp_path, "baseline: same_hour\nmin_history: 2\n")
    first = verdicts(surge, [2] * 288)
    (day2,) = surge.on_window(window(T0 + timedelta(days=1, hours=3), 50))
    (day3,) = surge.on_window(window(T0 + timedelta(days=2, hours=3), 200))
    assert not any(f.active for f in first)
    # 50 against one day's 2 would be a spike: one day is not history enough
    assert not day2.active and day2.values["history"] == 1
    # day 3 compares with the median of 2 and 50
    assert day3.active and day3.values["history"] == 2 and day3.values["baseline"] == 26


def test_the_baseline_survives_a_restart(tmp_path):
    counts = [10, 11, 9, 10, 10, 10, 40]
    whole = verdicts(rule(tmp_path, "windows: 6\n"), counts)
    before = rule(tmp_path, "windows: 6\n")
    verdicts(before, counts[:6])
    after = rule(tmp_path, "windows: 6\n")
    after.restore(json.loads(json.dumps(before.state())))
    (last,) = after.on_window(window(T0 + 6 * FIVE, 40))
    assert last.active and whole[-1].active
    assert last.values["baseline"] == whole[-1].values["baseline"] == 10


def test_a_spike_rule_fires_through_the_engine_from_real_events(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: failure_surge
            type: spike
            source: upload
            feature: failed
            ratio: 4
            windows: 6
            min_value: 5
            summary:
              zh: "失败 {value:.0f} 笔，平时 {baseline:.0f}"
              en: "{value:.0f} failed, usually {baseline:.0f}"
        """), encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("window: 5m\nlateness: 0s\nsources:\n"
                      "  - {name: upload, paths: [u.log]}\nrules: [rules/*.yaml]\n",
                      encoding="utf-8")
    loaded = load_config(config)
    engine = Engine(loaded, load_rules(loaded.rule_globs(), ["upload"]))
    for w in range(8):  # 2 failures per window, then 12 in the 7th
        for i in range(12 if w == 6 else 2):
            ts = T0 + w * FIVE + timedelta(seconds=10 + i)
            engine.push(ts, Event(ts=ts, source="upload", status="failed"))
    engine.advance(T0 + 8 * FIVE)
    got = engine.take()
    assert [(t.state, t.ts) for t in got] == [("firing", T0 + 7 * FIVE),
                                             ("resolved", T0 + 8 * FIVE)]
    assert got[0].summary == {"zh": "失败 12 笔，平时 2", "en": "12 failed, usually 2"}
