"""The `invoice-agent` command line, run as a user runs it: help, exit codes, the jsonl contract."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.demo import prepare
from agent.simulator import simulate

BIN = Path(sys.executable).parent / "invoice-agent"
RECORD_KEYS = {"ts", "rule", "source", "severity", "state", "labels", "summary"}


def agent(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (command path, parser, help line) in the argparse tree."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name)
                yield from commands(sub, path + (name,))


ALL_COMMANDS = [c for c, _, _ in commands(build_parser())]


def test_the_documented_commands_exist():
    assert {("run",), ("replay",), ("demo",), ("check",), ("status",), ("notify", "test")} <= set(
        ALL_COMMANDS)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help_text(command, capsys):
    parser = build_parser()
    sub = dict((c, p) for c, p, _ in commands(parser))[command]
    line = dict((c, h) for c, _, h in commands(parser))[command]
    assert line and len(line) > 10, f"{command}: no one-line help in the command list"
    assert sub.description and len(sub.description) > 10, f"{command}: no description"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: invoice-agent " + " ".join(command))
    for action in sub._actions:  # every option and argument explains itself
        if action.option_strings != ["-h", "--help"] and not isinstance(
                action, argparse._SubParsersAction):
            assert action.help, f"{command}: {action.option_strings or action.dest} lacks help"


def test_top_level_help_through_the_console_script():
    done = agent("--help")
    assert done.returncode == 0
    for name in ("run", "replay", "demo", "check", "status", "notify"):
        assert name in done.stdout


def test_unknown_command_is_a_usage_error():
    done = agent("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


# -- check ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_day(tmp_path_factory):
    """A full demo layout (config, rules, a simulated day with incidents)."""
    work = tmp_path_factory.mktemp("demo")
    config, sim = prepare(work)
    return config, sim


@pytest.fixture(scope="module")
def healthy_day(tmp_path_factory):
    """The same layout over a day without incidents."""
    work = tmp_path_factory.mktemp("healthy")
    config, _ = prepare(work)
    sim = simulate(config.parent / "logs", incidents=False)
    return config, sim


def test_check_accepts_the_shipped_demo_layout(demo_day):
    config, _ = demo_day
    done = agent("check", "-c", config)
    assert done.returncode == 0, done.stderr
    assert "4 source(s)" in done.stdout and "upload_outage" in done.stdout


def test_check_rejects_a_broken_config_naming_file_and_key(tmp_path):
    (tmp_path / "logs").mkdir()
    config = tmp_path / "agent.yaml"
    config.write_text("window: 5m\nsources:\n  - name: upload\n    paths: [logs/u.log]\n"
                      "    formatt: json\n", encoding="utf-8")
    done = agent("check", "-c", config)
    assert done.returncode == 1  # a failed check (README: exit 1)
    assert f"{config}:5: sources.0.formatt: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_reports_rule_and_secret_problems_together(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: r\n    type: threshold\n    source: upload\n    when: 'cuont > 1'\n",
        encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text("sources:\n  - name: upload\n    paths: [logs/u.log]\n"
                      "notify:\n  urls: ['json://${INVOICE_AGENT_TEST_UNSET}']\n",
                      encoding="utf-8")
    done = agent("check", "-c", config)
    assert done.returncode == 1
    assert "2 problem(s)" in done.stderr
    assert "rules.0 (r).when" in done.stderr and "cuont" in done.stderr
    assert "INVOICE_AGENT_TEST_UNSET" in done.stderr


def test_check_without_a_config_file_is_a_config_error(tmp_path):
    done = agent("check", "-c", tmp_path / "missing.yaml")
    assert done.returncode == 1
    assert "missing.yaml" in done.stderr and "not found" in done.stderr


# -- replay -----------------------------------------------------------------------------------

def jsonl_records(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records), "stdout must hold only JSON objects"
    return records


def test_replay_jsonl_prints_only_contract_objects(demo_day):
    config, sim = demo_day
    done = agent("replay", "-c", config, "--format", "jsonl")
    assert done.returncode == 1, done.stderr  # alerts fired
    records = jsonl_records(done.stdout)
    assert records
    assert {r["source"] for r in records} == {"rule", "ledger", "model"}  # the demo has all
    for r in records:
        # an alert raised by one line names it and its file; a ledger alert its invoices
        extra = {"line", "file"} | ({"invoices", "count"} if r["source"] == "ledger" else set())
        assert RECORD_KEYS <= set(r) <= RECORD_KEYS | extra
        ts = datetime.fromisoformat(r["ts"])
        assert ts.utcoffset() is not None
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", r["ts"])
        if r["source"] == "ledger":
            assert isinstance(r["invoices"], list) and r["count"] >= len(r["invoices"])
        assert r["severity"] in ("info", "warning", "critical")
        assert r["state"] in ("firing", "resolved")
        assert isinstance(r["labels"], dict) and isinstance(r["summary"], str) and r["summary"]


def test_replay_catches_each_injected_incident_and_resolves_it(demo_day):
    config, sim = demo_day
    records = jsonl_records(agent("replay", "-c", config, "--format", "jsonl").stdout)
    for inc in sim.incidents:
        during = [r for r in records if r["state"] == "firing"
                  and inc.start <= datetime.fromisoformat(r["ts"]) <= inc.end]
        assert during, f"incident {inc.name} was not caught"
    by_rule: dict[str, list[str]] = {}
    for r in records:
        by_rule.setdefault(r["rule"], []).append(r["state"])
    for states in by_rule.values():  # firing, resolved, firing, ... never twice in a row
        assert states[0] == "firing"
        assert all(a != b for a, b in zip(states, states[1:], strict=False))


def test_replay_stderr_counts_lines_and_unparsed(demo_day):
    config, sim = demo_day
    done = agent("replay", "-c", config, "--format", "jsonl")
    assert f"lines {sum(sim.lines.values())} " in done.stderr
    assert f"unparsed {sim.garbled} " in done.stderr


def test_replay_of_a_healthy_day_exits_0_with_no_alert(healthy_day):
    config, sim = healthy_day
    done = agent("replay", "-c", config, "--format", "jsonl")
    assert done.returncode == 0, done.stdout
    assert done.stdout == ""
    assert f"lines {sum(sim.lines.values())} " in done.stderr


def test_replay_of_one_named_file_uses_its_source(demo_day):
    config, sim = demo_day
    done = agent("replay", "-c", config, "--format", "jsonl", sim.files["upload"])
    assert done.returncode == 1
    assert f"lines {sim.lines['upload']} " in done.stderr
    rules = [r for r in jsonl_records(done.stdout) if r["source"] == "rule"]
    assert rules and {r["labels"]["source"] for r in rules} == {"upload"}


def test_replay_of_a_file_matching_no_source_is_an_error(demo_day, tmp_path):
    config, _ = demo_day
    stray = tmp_path / "access.log"
    stray.write_text("GET /\n", encoding="utf-8")
    done = agent("replay", "-c", config, "--format", "jsonl", stray)
    assert done.returncode == 2
    assert "access.log" in done.stderr and "matches no configured source" in done.stderr
    assert done.stdout == ""


def test_replay_of_a_missing_file_is_an_error(demo_day):
    config, sim = demo_day
    done = agent("replay", "-c", config, sim.files["upload"].with_name("upload-gone.log"))
    assert done.returncode == 2
    assert "upload-gone.log" in done.stderr


# -- demo and status --------------------------------------------------------------------------

def test_demo_catches_every_injected_incident(tmp_path):
    done = agent("demo", "--language", "en", "--dir", tmp_path / "demo")
    assert done.returncode == 0, done.stderr
    caught = re.findall(r"injected incident (\w+) .*: caught by (\S+)", done.stdout)
    assert {name for name, _ in caught} == {"outage", "latency", "error_burst", "missing", "late",
                                            "mismatch"}
    assert "MISSED" not in done.stdout
    assert (tmp_path / "demo" / "config" / "agent.yaml").is_file()  # --dir keeps the files


def test_status_before_the_agent_ever_ran(demo_day):
    config, _ = demo_day
    done = agent("status", "-c", config, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data["sources"]) == {"platform", "upload", "erp", "system"}
    assert data["firing"] == [] and "no state yet" in data["note"]
