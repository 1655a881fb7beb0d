"""Rule mistakes as the operator reads them: each names the file, line, the rule by its name
and the key, and a misspelling gets the closest known name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.detect.loader import load_rules
from agent.yamlfile import FileProblems


def problems(tmp_path: Path, text: str, name: str = "r.yaml",
             sources: tuple[str, ...] = ("upload", "erp", "system")) -> list:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(FileProblems) as info:
        load_rules([str(folder / "*.yaml")], list(sources))
    return info.value.problems


def test_a_misspelled_feature_in_when_names_the_rule_and_the_feature_meant(tmp_path):
    (p,) = problems(tmp_path, """\
        # Rules over the upload service.
        rules:
          - name: upload_outage
            type: threshold
            source: upload
            when: "timeout_rate > 0.5"

          - name: upload_latency
            type: threshold
            description: The platform answers slowly.
            source: upload
            when: "latncy_p95 > 3000 and latency_count >= 5"
        """, "upload.yaml")
    path = tmp_path / "rules" / "upload.yaml"
    assert str(p) == (f"{path}:12: rules.1 (upload_latency).when: unknown name "
                      f"'latncy_p95'; did you mean 'latency_p95'?")
    assert p.key == "rules.1.when"  # the key path itself stays plain


def test_a_name_with_no_close_match_lists_the_known_ones(tmp_path):
    (p,) = problems(tmp_path, """\
        rules:
          - name: r
            type: threshold
            source: upload
            when: "zzz > 1"
        """)
    assert "unknown name 'zzz'" in p.message and "did you mean" not in p.message
    assert "latency_p95" in p.message and "failure_rate" in p.message


def test_a_misspelled_name_in_a_summary_template_gets_a_suggestion(tmp_path):
    (p,) = problems(tmp_path, """\
        rules:
          - name: slow
            type: threshold
            source: upload
            when: "count > 1"
            summary: {zh: "P95 {latency_p95}", en: "p95 {latency_p59} ms"}
        """)
    assert "rules.0 (slow).summary.en:" in str(p)
    assert p.message == "unknown name {latency_p59}; did you mean {latency_p95}?"


def test_misspelled_options_types_and_sources_get_suggestions(tmp_path):
    found = problems(tmp_path, """\
        rules:
          - name: a
            type: threshold
            source: upload
            when: "count > 1"
            serverity: critical
          - name: b
            type: treshold
            source: upload
          - name: c
            type: threshold
            sources: [upload, ERP]
            when: "upload.count > 1"
          - name: d
            type: pattern
            source: system
            match: 'Out of memory'
            group_by: [hots]
        """)
    path = tmp_path / "rules" / "r.yaml"
    assert [str(p).removeprefix(f"{path}:") for p in found] == [
        "6: rules.0 (a).serverity: unknown key; did you mean 'severity'?",
        "8: rules.1 (b).type: unknown rule type 'treshold'; did you mean 'threshold'? (expected "
        "one of absence, duplicate, incomplete, mismatch, missing, month_end, new_term, "
        "pattern, spike, stuck, threshold)",
        "12: rules.2 (c).sources.1: unknown source 'ERP'; did you mean 'erp'? (configured: "
        "upload, erp, system)",
        "18: rules.3 (d).group_by: entry 0: unknown field 'hots'; did you mean 'host'? (expected "
        "an event field: ts, event, invoice_no, amount, issue_date, taxpayer_id, status, "
        "latency_ms, error_code, level, host, message; of syslog and journald sources "
        "program, pid, unit, facility)",
    ]


def test_qualified_names_over_several_sources_are_checked_per_source(tmp_path):
    found = problems(tmp_path, """\
        rules:
          - name: typo
            type: threshold
            sources: [upload, erp]
            when: "upload.failure_rte > 0.2 and erp.count == 0"
          - name: unqualified
            type: threshold
            sources: [upload, erp]
            when: "failure_rate > 0.2"
          - name: bare
            type: threshold
            sources: [upload, erp]
            when: "erp > 1"
          - name: both
            type: threshold
            source: upload
            sources: [upload, erp]
            when: "count > 1"
        """)
    messages = {p.key: p.message for p in found}
    assert messages["rules.0.when"] == ("unknown name 'upload.failure_rte'; did you mean "
                                        "'upload.failure_rate'?")
    assert messages["rules.1.when"] == ("'failure_rate' needs its source: upload.failure_rate "
                                        "or erp.failure_rate")
    assert "'erp' is a source: name one of its features, e.g. erp.count" \
        in messages["rules.2.when"]
    assert "not both" in messages["rules.3"]


@pytest.mark.parametrize("options, key, says", [
    ("type: pattern\n    source: system\n    match: 'Killed (process'", "rules.0.match",
     "invalid regular expression: missing )"),
    ("type: pattern\n    source: system\n    match: 'x'\n    field: mesage", "rules.0.field",
     "did you mean 'message'?"),
    ("type: pattern\n    source: system\n    match: 'x'\n    threshold: 0",
     "rules.0.threshold", "greater than or equal to 1"),
    ("type: spike\n    source: upload\n    feature: latency_p59", "rules.0.feature",
     "unknown feature 'latency_p59'; did you mean 'latency_p95'?"),
    ("type: spike\n    source: upload\n    feature: top_error_code", "rules.0.feature",
     "not a number 'top_error_code'"),
    ("type: spike\n    source: upload\n    ratio: 1", "rules.0.ratio", "use > 1 for spikes"),
    ("type: new_term\n    source: upload\n    field: eror_code", "rules.0.field",
     "did you mean 'error_code'?"),
    ("type: threshold\n    source: upload\n    when: 'count > 1'\n    group_by: [host, host]",
     "rules.0.group_by", "listed twice"),
])
def test_each_new_option_is_checked_at_load_with_the_rule_named(tmp_path, options, key, says):
    (p,) = problems(tmp_path, f"rules:\n  - name: my_rule\n    {options}\n")
    assert p.key == key and says in p.message, str(p)
    assert f"rules.0 (my_rule).{key.removeprefix('rules.0.')}:" in str(p)


def test_a_duplicate_name_names_the_rule(tmp_path):
    found = problems(tmp_path, """\
        rules:
          - {name: twice, type: threshold, source: upload, when: "count > 1"}
          - {name: twice, type: threshold, source: erp, when: "count > 1"}
        """)
    assert [str(p).split(": ", 1)[1] for p in found] == [
        f"rules.1 (twice).name: rule name 'twice' already used in "
        f"{tmp_path / 'rules' / 'r.yaml'}"]


def test_check_prints_the_named_problem(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: slow_uploads\n    type: threshold\n    source: upload\n"
        "    when: 'latency_p59 > 3000'\n", encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("sources:\n  - {name: upload, paths: [u.log]}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([sys.executable, "-m", "agent", "check", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert (f"{tmp_path / 'rules' / 'r.yaml'}:5: rules.0 (slow_uploads).when: unknown name "
            f"'latency_p59'; did you mean 'latency_p95'?") in done.stderr
