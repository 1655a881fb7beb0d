"""`invoice-agent rules test` and `rules check`: the shipped rule tests pass as CI runs them, a
wrong expectation fails with a diff that names the rule and the difference, a broken test
file or rule file is named by file, key and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from agent.cli import main
from agent.demo import prepare
from agent.detect.loader import load_rules
from agent.rulesinput import shipped_config

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules"

OUTAGE_INPUT = """\
  input:
    - source: upload
      start: "2026-11-02 10:00:00"
      every: 20s
      count: 90
      line: '{"time": "{ts}", "action": "upload", "result": "超时", "cost": null}'
    - source: upload
      start: "2026-11-02 10:30:00"
      every: 20s
      count: 90
      line: '{"time": "{ts}", "action": "upload", "result": "成功", "cost": 240}'
"""


def case(name: str, *parts: str) -> str:
    """One test of a test file: its name, then its keys (each part dedented, at two spaces)."""
    return f"- name: {name}\n" + "".join(textwrap.indent(textwrap.dedent(p), "  ")
                                          for p in parts)


def write_test(folder: Path, body: str, head: str = "rule_files: [upload.yaml]\n",
               name: str = "t.test.yaml") -> Path:
    """A test file beside a copy of the shipped upload rules."""
    shutil.copy(RULES / "upload.yaml", folder / "upload.yaml")
    path = folder / name
    path.write_text(head + "tests:\n" + textwrap.indent(body, "  "), encoding="utf-8")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_shipped_rule_tests_pass_as_ci_runs_them():
    files = sorted(str(p.relative_to(REPO)) for p in RULES.glob("*.test.yaml"))
    done = subprocess.run([sys.executable, "-m", "agent", "rules", "test", *files], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    assert " 0 failed" in done.stdout.splitlines()[-1]


def test_every_shipped_rule_file_has_a_test_firing_each_of_its_rules():
    loaded = shipped_config()
    c = loaded.config
    for rule_file in sorted(RULES.glob("*.yaml")):
        if rule_file.name.endswith(".test.yaml"):
            continue
        test_file = rule_file.with_name(rule_file.stem + ".test.yaml")
        assert test_file.is_file(), f"{rule_file.name} has no test file"
        names = {r.name for r in load_rules([str(rule_file)], [s.name for s in c.sources],
                                            c.window, ledger=c.ledger, timezone=c.timezone)}
        spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        fired = {e["rule"] for t in spec["tests"] for e in t.get("expect") or ()
                 if e["state"] == "firing"}
        assert names <= fired, f"{test_file.name} never fires {sorted(names - fired)}"


def test_a_wrong_expectation_fails_with_a_diff_marking_the_difference(tmp_path, capsys):
    path = write_test(tmp_path, case("resolves too late", OUTAGE_INPUT, """\
        expect:
          - {rule: upload_outage, state: firing, at: "2026-11-02 10:10:00"}
          - {rule: upload_outage, state: resolved, at: "2026-11-02 10:40:00"}
        """) + case("fires as expected", OUTAGE_INPUT, """\
        expect:
          - {rule: upload_outage, state: firing, at: "2026-11-02 10:10:00"}
          - {rule: upload_outage, state: resolved, at: "2026-11-02 10:35:00"}
        """))
    code, out, _ = run(capsys, "rules", "test", str(path))
    assert code == 1
    lines = out.splitlines()
    assert f"FAIL {path}: resolves too late" in lines
    assert f"ok   {path}: fires as expected" in lines
    expected = next(line for line in lines if line.strip().startswith("- upload_outage"))
    got = next(line for line in lines if line.strip().startswith("+ upload_outage"))
    marks = lines[lines.index(got) + 1]
    assert expected.strip() == "- upload_outage resolved at 2026-11-02 10:40:00"
    assert "+ upload_outage resolved at 2026-11-02 10:35:00" in got
    assert marks.endswith("at differs")
    # the carets stand under the time that differs, and nowhere else
    start = got.index("at 2026-11-02 10:35:00")
    assert marks.index("^") == start
    assert marks[start:].startswith("^" * len("at 2026-11-02 10:35:00") + " ")
    assert marks.count("^") == len("at 2026-11-02 10:35:00")
    assert "upload_outage firing at 2026-11-02 10:10:00" in out  # the matching one, unmarked
    assert lines[-1] == "rules test: 1 passed, 1 failed"


def test_a_missing_and_an_unexpected_transition_are_each_named(tmp_path, capsys):
    path = write_test(tmp_path, case("latency expected, outage got", OUTAGE_INPUT, """\
        rules: [upload_outage, upload_latency]
        expect:
          - {rule: upload_latency, state: firing}
        """))
    code, out, _ = run(capsys, "rules", "test", str(path))
    assert code == 1
    assert "- upload_latency firing   (expected, did not happen)" in out
    assert "+ upload_outage firing at 2026-11-02 10:10:00" in out
    assert out.count("(not expected)") == 2  # its firing and its resolving


def test_a_near_miss_passes_only_while_nothing_fires(tmp_path, capsys):
    def silence(until: str) -> str:
        return case("one success keeps upload_silence quiet for 44 minutes", """\
            input:
              - source: upload
                lines: |
                  {"time": "2026-11-02 10:00:00", "action": "upload", "result": "成功"}
            expect_none: true
            """, f"end: \"{until}\"\n")

    quiet = write_test(tmp_path, silence("2026-11-02 10:44:00"), name="quiet.test.yaml")
    loud = write_test(tmp_path, silence("2026-11-02 10:50:00"), name="loud.test.yaml")
    assert run(capsys, "rules", "test", str(quiet))[0] == 0
    code, out, _ = run(capsys, "rules", "test", str(loud))
    assert code == 1
    assert "+ upload_silence firing at 2026-11-02 10:45:00" in out


def test_lines_that_do_not_parse_fail_the_test_unless_allowed(tmp_path, capsys):
    garbage = """\
        input:
          - source: upload
            lines:
              - '{"time": "2026-11-02 10:00:00", "action": "upload", "result": "成功"}'
              - 'upload worker restarted: Traceback (most recent call last):'
        expect: []
        """
    strict = write_test(tmp_path, case("garbage in", garbage), name="strict.test.yaml")
    code, out, _ = run(capsys, "rules", "test", str(strict))
    assert code == 1
    # the line is named by its place in the test file
    assert f"1 input line(s) did not parse (first: {strict}:8: " in out
    lenient = write_test(tmp_path, case("garbage in", garbage, "allow_unparsed: true\n"),
                         name="lenient.test.yaml")
    assert run(capsys, "rules", "test", str(lenient))[0] == 0


def test_a_broken_test_file_exits_2_naming_file_key_and_line(tmp_path, capsys):
    path = write_test(tmp_path, case("typos", """\
        input:
          - source: uplaod
            lines: "x"
          - source: upload
            lines: "x"
            every: 20s
        expect:
          - {rule: upload_outgae, state: firing}
          - {rule: upload_outage, state: fired}
        expct: []
        """))
    text = path.read_text(encoding="utf-8").splitlines()

    def line(fragment: str) -> int:
        return next(i for i, t in enumerate(text, 1) if fragment in t)

    code, out, err = run(capsys, "rules", "test", str(path))
    assert code == 2
    assert f"BROKEN {path}" in err
    # what the format says is reported together, each at its line
    assert f"{path}:{line('expct')}: tests.0.expct: unknown key" in err
    assert f"{path}:{line('fired')}: tests.0.expect.1.state: " in err and "'firing'" in err
    assert f"{path}:{line('- source: upload')}: tests.0.input.1: every only go with `line`" \
        in err
    assert "0 passed, 0 failed, 1 file(s) broken" in out
    fixed = path.read_text(encoding="utf-8").replace("state: fired", "state: firing")
    fixed = fixed.replace("        every: 20s\n", "").replace("    expct: []\n", "")
    path.write_text(fixed, encoding="utf-8")
    text = fixed.splitlines()
    code, _, err = run(capsys, "rules", "test", str(path))
    assert code == 2, err
    # then what needs the config and the rules: an unknown source, an unknown rule
    assert (f"{path}:{line('uplaod')}: tests.0.input.0.source: unknown source 'uplaod' "
            "(did you mean 'upload'?)") in err
    assert (f"{path}:{line('outgae')}: tests.0.expect.0.rule: unknown rule 'upload_outgae' "
            "(did you mean 'upload_outage'?)") in err


def test_a_missing_rule_file_or_test_file_is_named(tmp_path, capsys):
    path = write_test(tmp_path, case("t", "input: [{source: upload, lines: x}]\n"),
                      head="rule_files: [upload.yaml, uplaod.yaml]\n")
    code, _, err = run(capsys, "rules", "test", str(path), str(tmp_path / "nope.test.yaml"))
    assert code == 2
    assert f"{path}:1: rule_files.1: rule file 'uplaod.yaml' not found" in err
    assert f"{tmp_path / 'nope.test.yaml'}: no such file" in err


def test_a_gbk_log_file_is_read_in_its_sources_encoding(tmp_path, capsys):
    log = tmp_path / "erp_sync.log"
    lines = [f"2026-11-02 10:{m:02d}:{s:02d} {'ERROR' if s == 0 else 'INFO'} 同步 "
             f"发票号码=264424217506400{m:03d}{s:02d} 金额=100.00 "
             f"结果={'失败' if s == 0 else '成功'} 耗时=80ms" for m in range(20) for s in (0, 30)]
    log.write_bytes("\n".join(lines).encode("gbk"))  # no newline after the last line
    shutil.copy(RULES / "erp.yaml", tmp_path / "erp.yaml")
    path = tmp_path / "erp.test.yaml"
    path.write_text(textwrap.dedent("""\
        rule_files: [erp.yaml]
        tests:
          - name: half the syncs fail for 20 minutes
            input: [{source: erp, file: erp_sync.log}]
            end: "2026-11-02 10:30:00"
            expect:
              - rule: erp_sync_failures
                state: firing
                at: "2026-11-02 10:15:00"
                values: {failed: 5, count: 10}
              - {rule: erp_sync_failures, state: resolved, at: "2026-11-02 10:25:00"}
        """), encoding="utf-8")
    code, out, _ = run(capsys, "rules", "test", str(path))
    assert code == 0, out


def test_times_are_in_the_timezone_of_the_tests_config(tmp_path, capsys):
    data = yaml.safe_load((REPO / "config" / "agent.yaml").read_text(encoding="utf-8"))
    data.update(timezone="UTC", rules=[str(RULES / "upload.yaml")], model=None, ledger=None)
    (tmp_path / "utc.yaml").write_text(yaml.safe_dump(data, allow_unicode=True),
                                       encoding="utf-8")
    head = "rule_files: [upload.yaml]\nconfig: utc.yaml\n"
    # the lines' naive times are UTC, and so is a naive `at`; with an offset, the same instant
    for at in ("2026-11-02 10:10:00", "2026-11-02T18:10:00+08:00"):
        path = write_test(tmp_path, case("an outage in UTC", OUTAGE_INPUT, f"""\
            expect:
              - {{rule: upload_outage, state: firing, at: "{at}"}}
              - {{rule: upload_outage, state: resolved}}
            """), head=head)
        assert run(capsys, "rules", "test", str(path))[0] == 0, capsys.readouterr()
    path = write_test(tmp_path, case("an outage in UTC", OUTAGE_INPUT, """\
        expect:
          - {rule: upload_outage, state: firing, at: "2026-11-02T10:10:00+08:00"}
          - {rule: upload_outage, state: resolved}
        """), head=head)
    assert run(capsys, "rules", "test", str(path))[0] == 1


def test_rules_check_prints_file_line_and_key_of_a_broken_rule(tmp_path, capsys):
    bad = tmp_path / "upload.yaml"
    bad.write_text((RULES / "upload.yaml").read_text(encoding="utf-8").replace(
        "timeout_rate > 0.5 and count", "timout_rate > 0.5 and count"), encoding="utf-8")
    line = next(i for i, text in enumerate(bad.read_text(encoding="utf-8").splitlines(), 1)
                if "timout_rate" in text)
    code, _, err = run(capsys, "rules", "check", "-c", str(REPO / "config" / "agent.yaml"),
                       str(bad))
    assert code == 1
    assert f"{bad}:{line}: rules.0" in err and "timout_rate" in err


def test_rules_check_lists_the_rules_and_skips_test_files(tmp_path, capsys):
    files = [str(RULES / "upload.yaml"), str(RULES / "upload.test.yaml")]
    code, out, err = run(capsys, "rules", "check", "-c", str(tmp_path / "absent.yaml"), *files)
    assert code == 2 and "absent.yaml: no such file" in err  # a named config must exist
    code, out, err = run(capsys, "rules", "check", *files)
    assert code == 0, err
    assert "shipped demo config" in err  # no /etc/invoice-agent/agent.yaml here
    assert "upload.test.yaml: skipped, a rule test file" in err
    rows = [line.split() for line in out.splitlines()]
    assert ["upload_outage", "threshold", "critical", "upload"] in rows
    assert ["upload_silence", "absence", "critical", "upload"] in rows
    code, _, err = run(capsys, "rules", "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: no such file" in err


def test_the_demo_loads_no_rule_test_file_as_rules(tmp_path):
    config, _ = prepare(tmp_path)
    copied = sorted(p.name for p in (tmp_path / "rules").iterdir())
    assert copied and not [n for n in copied if n.endswith(".test.yaml")]
    assert "upload.yaml" in copied


def test_syslog_lines_take_the_tests_year_and_one_instant_matches_in_any_order(tmp_path,
                                                                             capsys):
    shutil.copy(RULES / "system.yaml", tmp_path / "system.yaml")
    path = tmp_path / "system.test.yaml"
    path.write_text(textwrap.dedent("""\
        rule_files: [system.yaml]
        tests:
          - name: two hosts run out of disk in the same window
            input:
              - source: system
                lines: |
                  Nov  2 10:02:00 fp-host sync[1]: write q/1.json: No space left on device
                  Nov  2 10:02:30 fp-db postgres[8]: could not extend file: No space left on device
            end: "2025-11-02 10:20:00"
            expect:
              - {rule: disk_full, state: firing, at: "2025-11-02 10:05:00", labels: {host: fp-db}}
              - {rule: disk_full, state: firing, at: "2025-11-02 10:05:00", labels: {host: fp-host}}
              - {rule: disk_full, state: resolved, labels: {host: fp-db}}
              - {rule: disk_full, state: resolved, labels: {host: fp-host}}
        """), encoding="utf-8")
    code, out, _ = run(capsys, "rules", "test", str(path))
    assert code == 0, out
    # a transition of another instant is not moved to fit
    path.write_text(path.read_text(encoding="utf-8").replace(
        "state: firing, at: \"2025-11-02 10:05:00\", labels: {host: fp-db}",
        "state: resolved, labels: {host: fp-db}", 1), encoding="utf-8")
    assert run(capsys, "rules", "test", str(path))[0] == 1
