"""Replay in event time: a stray timestamp, rotated files, and what the summary counts."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.demo import prepare


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def transitions(stdout: str) -> list[tuple[str, str, str]]:
    """The rules' transitions (these tests replay one source of the demo: the model, which
    expects all of them, has its say too, and is not what they are about)."""
    recs = [json.loads(line) for line in stdout.splitlines()]
    return [(r["ts"], r["rule"], r["state"]) for r in recs if r["source"] == "rule"]


def test_one_line_stamped_hours_ahead_does_not_hide_the_days_incidents(tmp_path):
    config, _ = prepare(tmp_path)
    log = config.parent / "logs" / "upload.log"
    clean = cli("replay", "-c", str(config), "--format", "jsonl", str(log))
    # a host with a wrong clock writes one line at 17:30 among the 09:30 lines
    lines = log.read_bytes().splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if b'"2026-11-02 09:30' in line)
    stray = json.loads(lines[i])
    stray["time"] = "2026-11-02 17:30:00"
    lines.insert(i, json.dumps(stray, ensure_ascii=False).encode() + b"\n")
    log.write_bytes(b"".join(lines))
    skewed = cli("replay", "-c", str(config), "--format", "jsonl", str(log))
    assert skewed.returncode == 1, skewed.stderr
    assert transitions(skewed.stdout) == transitions(clean.stdout)
    assert len(transitions(clean.stdout)) == 6  # three incidents, each fired and resolved
    assert "late 0" in skewed.stderr


def test_a_rotated_copy_is_replayed_as_the_source_named(tmp_path):
    config, _ = prepare(tmp_path)
    logs = config.parent / "logs"
    rotated = logs / "upload.log.1"
    (logs / "upload.log").rename(rotated)
    refused = cli("replay", "-c", str(config), str(rotated))
    assert refused.returncode == 2
    assert "--source" in refused.stderr
    named = cli("replay", "-c", str(config), "--format", "jsonl", "--source", "upload",
                str(rotated))
    assert named.returncode == 1, named.stderr
    assert {rule for _, rule, _ in transitions(named.stdout)} == {
        "upload_outage", "upload_latency", "upload_failure_rate"}
    unknown = cli("replay", "-c", str(config), "--source", "uplaod", str(rotated))
    assert unknown.returncode == 2 and "no source named 'uplaod'" in unknown.stderr


def test_late_lines_are_counted_in_the_summary(tmp_path):
    config, _ = prepare(tmp_path)
    log = config.parent / "logs" / "upload.log"
    # a line from 06:00 appended at the end of the day: its window closed long ago
    line = {"time": "2026-11-02 06:00:00", "action": "upload", "fphm": "1", "amount": "1.00",
            "result": "成功", "cost": 100, "code": None}
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
    done = cli("replay", "-c", str(config), str(log))
    assert "late 1 " in done.stderr




def test_last_line_without_newline_is_replayed(tmp_path):
    config, _ = prepare(tmp_path)
    log = config.parent / "logs" / "upload.log"
    log.write_bytes(log.read_bytes().rstrip(b"\n"))
    with_newline = log.read_bytes().count(b"\n") + 1  # the last line has none
    done = cli("replay", "-c", str(config), str(log))
    assert f"lines {with_newline} " in done.stderr


EARLY_RULES = """
rules:
  - name: failures_now
    type: threshold
    source: upload
    when: "failed >= 3"
    early: true
    severity: critical
  - name: failures_at_window_end
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: warning
"""


def test_an_early_rule_fires_at_the_line_that_makes_it_true(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(EARLY_RULES, encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({
        "window": "5m", "sources": [{"name": "upload", "paths": ["logs/upload.log"],
                                     "fields": {"ts": "time", "status": "result"}}],
        "rules": ["rules/*.yaml"]}), encoding="utf-8")
    stamps = ["09:00:10", "09:01:00", "09:01:30", "09:02:00", "09:02:30"]
    results = ["ok", "failed", "failed", "ok", "failed"]  # the 3rd failure is line 5
    (tmp_path / "logs" / "upload.log").write_text("".join(
        json.dumps({"time": f"2026-11-02T{t}+08:00", "result": r}) + "\n"
        for t, r in zip(stamps, results, strict=True)), encoding="utf-8")
    done = cli("replay", "-c", str(config), "--format", "jsonl")
    firing = [json.loads(x) for x in done.stdout.splitlines()
              if json.loads(x)["state"] == "firing"]
    early = next(r for r in firing if r["rule"] == "failures_now")
    late = next(r for r in firing if r["rule"] == "failures_at_window_end")
    assert early["ts"] == "2026-11-02T09:02:30+08:00" and early["line"] == 5
    assert late["ts"] == "2026-11-02T09:05:00+08:00" and "line" not in late
