"""Rule files: the shipped ones load, mistakes are load errors with file, key and line, and
rules behave as their `for:` and type say."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from agent.config import load_config
from agent.detect.loader import load_rules
from agent.pipeline import Engine
from agent.types import Event
from agent.yamlfile import FileProblems

REPO = Path(__file__).resolve().parent.parent
TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The shipped demo config, copied beside a logs/ folder, pointing at the repo's rules."""
    data = yaml.safe_load((REPO / "config" / "agent.yaml").read_text(encoding="utf-8"))
    data["rules"] = [str(REPO / "rules" / "*.yaml")]
    (tmp_path / "logs").mkdir()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def sources_of(config: Path) -> list[str]:
    return [s.name for s in load_config(config).config.sources]


def write_rules(folder: Path, text: str, name: str = "r.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(folder: Path, sources=("upload", "erp")) -> list:
    with pytest.raises(FileProblems) as info:
        load_rules([str(folder / "*.yaml")], list(sources))
    return info.value.problems


def test_shipped_rules_load_against_the_shipped_demo_config(demo_config):
    loaded = load_config(demo_config)
    rules = load_rules(loaded.rule_globs(), sources_of(demo_config),
                       ledger=loaded.config.ledger)
    names = {r.name for r in rules}
    assert {"upload_outage", "upload_failure_rate", "upload_latency", "upload_silence",
            "erp_sync_failures", "oom_killer", "disk_full", "disk_io_error",
            "platform_connection_errors", "tls_certificate_expiry", "tls_errors",
            "dns_failure", "invoice_service_failed"} <= names
    # every rule speaks both languages: in its templates, or (ledger rules) in texts of its own
    assert all(r.config.summary.get("zh") and r.config.summary.get("en") for r in rules
               if r.kind == "rule")
    assert all(set(r.summary({"count": 0})) == {"zh", "en"} for r in rules)


def test_shipped_rule_templates_render_real_features(demo_config):
    rules = {r.name: r for r in load_rules([str(REPO / "rules" / "*.yaml")],
                                           sources_of(demo_config),
                                           ledger=load_config(demo_config).config.ledger)}
    values = {"failure_rate": 0.56, "failed": 45, "count": 81, "top_error_code": "1001",
              "top_error_code_count": 45, "timeout_rate": 0.0}
    text = rules["upload_failure_rate"].summary(values)
    assert text["en"] == "upload failure rate 56% (45/81), top error code 1001 (45x)"
    assert "56%" in text["zh"]


def test_rule_test_files_beside_the_rules_are_not_loaded_as_rules(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: upload_busy
            type: threshold
            source: upload
            when: "count > 100"
        """, "upload.yaml")
    # a rule test file (`invoice-agent rules test`): not a rule file, though rules/*.yaml
    # matches it
    write_rules(tmp_path, """\
        rule_files: [upload.yaml]
        tests:
          - name: busy
            input: [{source: upload, lines: ""}]
            expect_none: true
        """, "upload.test.yaml")
    rules = load_rules([str(tmp_path / "*.yaml")], ["upload"])
    assert [r.name for r in rules] == ["upload_busy"]


def test_misspelled_feature_in_when_is_a_load_error_with_file_key_and_line(tmp_path):
    path = write_rules(tmp_path, """\
        rules:
          - name: ok_rule
            type: threshold
            source: upload
            when: "count > 1"
          - name: typo
            type: threshold
            source: upload
            when: "failure_rte > 0.3 and count >= 5"
        """)
    (p,) = problems_of(tmp_path)
    assert (p.file, p.key, p.line) == (str(path), "rules.1.when", 9)
    assert "failure_rte" in p.message and "failure_rate" in p.message  # says what is known


def test_unknown_name_in_summary_template_names_the_summary(tmp_path):
    path = write_rules(tmp_path, """\
        rules:
          - name: bad_summary
            type: threshold
            source: upload
            when: "count > 1"
            summary:
              zh: "失败 {failed}"
              en: "failed {faild}"
        """)
    (p,) = problems_of(tmp_path)
    assert (p.file, p.key, p.line) == (str(path), "rules.0.summary.en", 8)
    assert "{faild}" in p.message


def test_unknown_rule_type_lists_the_known_ones(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: r
            type: thresold
            source: upload
            when: "count > 1"
        """)
    (p,) = problems_of(tmp_path)
    assert (p.key, p.line) == ("rules.0.type", 3)
    assert "thresold" in p.message and "threshold" in p.message and "absence" in p.message


def test_unknown_source_lists_the_configured_ones(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: r
            type: absence
            source: uplaod
            for: 5m
        """)
    (p,) = problems_of(tmp_path)
    assert (p.key, p.line) == ("rules.0.source", 4)
    assert "uplaod" in p.message and "upload" in p.message


def test_unknown_option_in_a_rule_is_rejected(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: r
            type: threshold
            source: upload
            when: "count > 1"
            severity: critical
            serverity: warning
        """)
    (p,) = problems_of(tmp_path)
    assert (p.key, p.line) == ("rules.0.serverity", 7)


def test_duplicate_rule_names_across_files_are_an_error(tmp_path):
    first = write_rules(tmp_path, """\
        rules:
          - name: same
            type: threshold
            source: upload
            when: "count > 1"
        """, "a.yaml")
    second = write_rules(tmp_path, """\
        rules:
          - name: other
            type: threshold
            source: erp
            when: "count > 1"
          - name: same
            type: threshold
            source: erp
            when: "count > 2"
        """, "b.yaml")
    (p,) = problems_of(tmp_path)
    assert (p.file, p.key, p.line) == (str(second), "rules.1.name", 6)
    assert str(first) in p.message


def test_yaml_syntax_error_in_rules_file_is_reported_with_file_and_line(tmp_path):
    path = write_rules(tmp_path, "rules:\n  - name: x\n    when: [count > 1\n  - name: y\n")
    (p,) = problems_of(tmp_path)
    assert p.file == str(path)
    assert "YAML syntax error" in p.message
    assert p.line == 4


def test_problems_in_several_rule_files_are_reported_together(tmp_path):
    write_rules(tmp_path, "rules:\n  - name: x\n    type: nope\n", "a.yaml")
    write_rules(tmp_path, "rules: [\n", "b.yaml")
    write_rules(tmp_path, "rule:\n  - name: y\n", "c.yaml")
    found = problems_of(tmp_path)
    assert [Path(p.file).name for p in found] == ["a.yaml", "b.yaml", "c.yaml"]


def test_for_is_parsed_as_a_duration(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: slow
            type: threshold
            source: upload
            when: "latency_p95 > 3000"
            for: 10m
          - name: instant
            type: threshold
            source: upload
            when: "count > 1"
          - name: quiet
            type: absence
            source: upload
            for: 2h
        """)
    rules = {r.name: r for r in load_rules([str(tmp_path / "*.yaml")], ["upload"])}
    assert rules["slow"].pending_for == timedelta(minutes=10)
    assert rules["instant"].pending_for == timedelta(0)
    assert rules["quiet"].silence == timedelta(hours=2)


def test_bad_for_is_a_load_error(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: slow
            type: threshold
            source: upload
            when: "count > 1"
            for: ten minutes
        """)
    (p,) = problems_of(tmp_path)
    assert (p.key, p.line) == ("rules.0.for", 6)
    assert "30s, 5m, 2h or 1d" in p.message


def test_absence_rule_without_for_is_a_load_error(tmp_path):
    write_rules(tmp_path, "rules:\n  - name: quiet\n    type: absence\n    source: upload\n")
    (p,) = problems_of(tmp_path)
    assert p.key == "rules.0.for"
    assert "missing" in p.message


def test_private_attribute_in_when_is_refused_at_load(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: sneaky
            type: threshold
            source: upload
            when: "count.__class__ is None"
        """)
    (p,) = problems_of(tmp_path)
    assert p.key == "rules.0.when"
    assert "__class__" in p.message


@pytest.mark.parametrize("when, says", [
    # comparing the top code (text) with a number fails in every window: refused at load
    ("top_error_code > 1000", "not supported"),
    # a division by a count that is 0 in quiet windows: refused, with the guard to write
    ("failed / count > 0.5", "count > 0 and"),
    # a method that would change the features for the other rules
    ("error_codes.clear() or count > 1", "clear"),
])
def test_when_that_fails_on_a_quiet_window_is_refused_at_load(tmp_path, when, says):
    write_rules(tmp_path, f"""\
        rules:
          - name: fragile
            type: threshold
            source: upload
            when: "{when}"
        """)
    (p,) = problems_of(tmp_path)
    assert p.key == "rules.0.when"
    assert says in p.message


def test_guarded_division_loads(tmp_path):
    write_rules(tmp_path, """\
        rules:
          - name: guarded
            type: threshold
            source: upload
            when: "count > 0 and failed / count > 0.5"
        """)
    (rule,) = load_rules([str(tmp_path / "*.yaml")], ["upload"])
    assert rule.name == "guarded"


# -- absence, end to end through the engine ---------------------------------------------------

def absence_engine(tmp_path: Path, rules_text: str) -> Engine:
    (tmp_path / "logs").mkdir()
    write_rules(tmp_path / "rules", rules_text)
    config = tmp_path / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        window: 5m
        lateness: 0s
        sources:
          - {name: upload, paths: ["logs/upload.log"]}
          - {name: platform, paths: ["logs/platform.log"]}
        """), encoding="utf-8")
    loaded = load_config(config)
    return Engine(loaded, load_rules(loaded.rule_globs(), ["upload", "platform"]))


SILENCE_RULE = """\
rules:
  - name: upload_silence
    type: absence
    source: upload
    match: {status: ok}
    for: 15m
    severity: critical
    summary: {en: "no upload for {silent_minutes} minutes"}
"""


def test_absence_fires_when_the_source_never_logged(tmp_path):
    engine = absence_engine(tmp_path, SILENCE_RULE)
    fired = []
    for minute in range(0, 31):  # only the platform logs, once a minute
        ts = T0 + timedelta(minutes=minute)
        engine.push(ts, Event(ts=ts, source="platform", event="issue", status="ok"))
        engine.advance(ts)
        fired += engine.take()
    assert [(t.rule, t.state, t.ts) for t in fired] == [
        ("upload_silence", "firing", T0 + timedelta(minutes=15))]
    assert fired[0].summary["en"] == "no upload for 15 minutes"
    assert fired[0].severity == "critical"
    assert fired[0].labels == {"source": "upload"}


def test_absence_stays_quiet_while_matching_events_arrive_and_resolves_when_they_return(
        tmp_path):
    engine = absence_engine(tmp_path, SILENCE_RULE)
    seen = []
    for minute in range(0, 60):
        ts = T0 + timedelta(minutes=minute)
        # ok uploads until 09:10, only failures from then to 09:40, ok again afterwards
        status = "failed" if 10 <= minute < 40 else "ok"
        engine.push(ts, Event(ts=ts, source="upload", event="upload", status=status))
        engine.advance(ts)
        seen += engine.take()
    assert [(t.state, t.ts) for t in seen] == [
        ("firing", T0 + timedelta(minutes=25)),  # last ok at 09:09, window to 09:25 is silent
        # the ok line at 09:40 ends the silence: the window [09:40, 09:45) holding it is the
        # first that is not silent (window [09:35, 09:40) was silent up to its end)
        ("resolved", T0 + timedelta(minutes=45)),
    ]


def test_replay_decides_absence_as_an_event_by_event_run_would(tmp_path):
    # the last ok upload is at 09:29:59; failures follow; an ok comes back at 09:41:00. Window
    # [09:35, 09:40) may close at 09:40:30 (lateness 30s), when the silence is 10m01s: it must
    # fire then, before the 09:41 ok is read, however replay batches its window checks
    from agent.replay import match_files, replay

    (tmp_path / "logs").mkdir()
    write_rules(tmp_path / "rules", SILENCE_RULE.replace("for: 15m", "for: 10m"))
    config = tmp_path / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        window: 5m
        lateness: 30s
        sources:
          - {name: upload, paths: ["logs/upload.log"], fields: {ts: time, status: result}}
        """), encoding="utf-8")
    ok = [T0 + timedelta(minutes=m) for m in range(30)] + [T0 + timedelta(seconds=1799)]
    # nothing between 09:35:05 and 09:40:10: the first line after a quiet spell comes before
    # the window boundary + lateness, and the next one just after it
    failed = [T0 + timedelta(minutes=m, seconds=5) for m in range(30, 36)] + [
        T0 + timedelta(minutes=40, seconds=10), T0 + timedelta(minutes=40, seconds=40)]
    ok += [T0 + timedelta(minutes=m) for m in range(41, 61)]
    lines = sorted([(t, "ok") for t in ok] + [(t, "failed") for t in failed])
    log = tmp_path / "logs" / "upload.log"
    log.write_text("".join(f'{{"time": "{t.isoformat()}", "result": "{s}"}}\n'
                           for t, s in lines), encoding="utf-8")
    loaded = load_config(config)
    rules = load_rules(loaded.rule_globs(), ["upload"])
    result = replay(loaded, rules, match_files(loaded, [str(log)]))
    assert [(t.state, t.ts) for t in result.transitions] == [
        ("firing", T0 + timedelta(minutes=40)), ("resolved", T0 + timedelta(minutes=45))]
    assert result.lines == len(lines) and result.unparsed == 0


# -- checkpoints of a rule that changed its type under the same name ----------------------------

KINDS = """\
rules:
  - {name: r1, type: pattern, source: upload, match: 'x', group_by: [host]}
  - {name: r2, type: spike, source: upload, windows: 2}
  - {name: r3, type: new_term, source: upload, field: host, learn: 0s}
  - {name: r4, type: threshold, source: upload, when: "count > 0", group_by: [host]}
  - {name: r5, type: threshold, sources: [upload, platform], when: "upload.count > 0"}
"""


def test_a_checkpoint_written_by_another_rule_type_is_ignored_not_fatal(tmp_path):
    engine = absence_engine(tmp_path, KINDS)
    for minute in range(12):
        ts = T0 + timedelta(minutes=minute)
        engine.push(ts, Event(ts=ts, source="upload", host="fp-a", message="x"))
    engine.advance(T0 + timedelta(minutes=12))
    states = json.loads(json.dumps({d.name: d.state() for d in engine.detectors}))
    assert all(states.values())  # each remembers something
    fresh = {d.name: json.dumps(d.state(), sort_keys=True)
             for d in load_rules([str(tmp_path / "rules" / "*.yaml")], ["upload", "platform"])}
    for name, state in states.items():
        for rule in load_rules([str(tmp_path / "rules" / "*.yaml")], ["upload", "platform"]):
            if rule.name != name:
                rule.restore(state)  # the rule of that name was of another type before
                assert json.dumps(rule.state(), sort_keys=True) == fresh[rule.name], (
                    rule.name, name)
