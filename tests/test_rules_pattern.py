"""`type: pattern`: syslog lines matching a regular expression, counted per key over a window
of event time; the shipped rules/system.yaml catches host trouble and stays quiet on the
simulated day's routine syslog."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.config import load_config
from agent.detect.loader import load_rules
from agent.pipeline import Engine
from agent.replay import match_files, replay
from agent.simulator import default_incidents, simulate
from agent.types import RawLine, Transition

REPO = Path(__file__).resolve().parent.parent
TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


def write_config(tmp: Path, rules: str | None, window: str = "5m") -> Path:
    """A config with a syslog source `system`; `rules` is written to rules/r.yaml, or None for
    the shipped rules/system.yaml."""
    (tmp / "logs").mkdir(exist_ok=True)
    if rules is None:
        globs = [str(REPO / "rules" / "system.yaml")]
    else:
        (tmp / "rules").mkdir(exist_ok=True)
        (tmp / "rules" / "r.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
        globs = ["rules/*.yaml"]
    config = tmp / "agent.yaml"
    config.write_text(json.dumps({
        "window": window, "lateness": "0s", "state_dir": "state",
        "sources": [{"name": "system", "paths": ["logs/syslog"], "format": "syslog"}],
        "rules": globs}), encoding="utf-8")
    return config


def engine_for(config: Path) -> Engine:
    loaded = load_config(config)
    return Engine(loaded, load_rules(loaded.rule_globs(), ["system"], loaded.config.window))


def syslog(ts: datetime, message: str, host: str = "fp-host",
           tag: str = "kernel") -> str:
    return f"{ts.isoformat()} {host} {tag}: {message}"


def feed(engine: Engine, lines: list[str], until: datetime) -> list[Transition]:
    """Parse and push the lines as the daemon does, then let time pass to `until`."""
    raws = [RawLine("system", "logs/syslog", i + 1, text) for i, text in enumerate(lines)]
    for confirmed, ev in engine.events(raws):
        engine.push(confirmed, ev)
    engine.advance(until)
    return engine.take()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


OOM = "Out of memory: Killed process 4242 (invoice-sync) total-vm:2048000kB"


def test_an_oom_kill_fires_one_alert_per_host_and_resolves_after_a_quiet_window(tmp_path):
    engine = engine_for(write_config(tmp_path, None))
    got = feed(engine, [syslog(at(1), OOM, host="fp-a"), syslog(at(2), OOM, host="fp-b"),
                        syslog(at(3), OOM, host="fp-a"), syslog(at(12), "routine")], at(15))
    oom = [t for t in got if t.rule == "oom_killer"]
    assert [(t.state, t.ts, t.labels["host"]) for t in oom] == [
        ("firing", at(5), "fp-a"), ("firing", at(5), "fp-b"),
        # no OOM in [09:05, 09:10): each host's alert ends with that window
        ("resolved", at(10), "fp-a"), ("resolved", at(10), "fp-b")]
    first = oom[0]
    assert first.severity == "critical" and first.labels["source"] == "system"
    assert first.summary["en"] == (f"fp-a out of memory, the kernel killed a process (2x in 5 "
                                   f"min): {OOM}")
    assert "fp-a 内存耗尽" in first.summary["zh"]
    assert [t.rule for t in got if t.rule != "oom_killer"] == []


def test_hits_count_over_a_rule_window_longer_than_the_agent_window(tmp_path):
    engine = engine_for(write_config(tmp_path, """\
        rules:
          - name: refused
            type: pattern
            source: system
            match: 'Connection refused'
            threshold: 3
            window: 15m
            summary: "{hits} refused in {window_minutes:.0f} min"
        """))
    line = "connect to 10.1.2.3:443 failed: Connection refused"
    got = feed(engine, [syslog(at(m), line) for m in (1, 7, 12)], at(30))
    # 2 hits by 09:10; the third (09:12) makes 3 within [09:00, 09:15); at 09:20 the 09:01
    # hit has left the last 15 minutes [09:05, 09:20)
    assert [(t.state, t.ts, t.values["hits"]) for t in got] == [
        ("firing", at(15), 3), ("resolved", at(20), 2)]
    assert got[0].summary["en"] == "3 refused in 15 min"
    assert got[0].labels == {"source": "system"}  # no group_by: one alert for the rule


def test_a_named_group_of_the_pattern_keys_the_invoice_units(tmp_path):
    engine = engine_for(write_config(tmp_path, None))
    got = feed(engine, [
        syslog(at(1), "invoice-sync.service: Main process exited, code=exited, "
                      "status=1/FAILURE", tag="systemd[1]"),
        syslog(at(1.1), "invoice-sync.service: Failed with result 'exit-code'.",
               tag="systemd[1]"),
        syslog(at(2), "invoice-upload@2.service: Failed with result 'timeout'.",
               tag="systemd[1]"),
        # not an invoice unit, and a clean exit of one: neither is trouble
        syslog(at(3), "nginx.service: Failed with result 'exit-code'.", tag="systemd[1]"),
        syslog(at(3), "invoice-sync.service: Main process exited, code=exited, "
                      "status=0/SUCCESS", tag="systemd[1]"),
    ], at(6))
    assert [(t.rule, t.labels.get("unit"), t.values["hits"]) for t in got] == [
        ("invoice_service_failed", "invoice-sync.service", 2),
        ("invoice_service_failed", "invoice-upload@2.service", 1)]
    assert got[0].summary["en"].startswith("invoice service invoice-sync.service failed (2x")


def test_keys_beyond_max_keys_are_counted_and_named_in_the_message(tmp_path):
    engine = engine_for(write_config(tmp_path, """\
        rules:
          - name: disk
            type: pattern
            source: system
            match: 'No space left on device'
            group_by: [host]
            max_keys: 2
            summary: "{host}: disk full ({keys_dropped} more hits on hosts not tracked)"
        """))
    hosts = ["h1", "h2", "h3", "h4", "h3"]
    got = feed(engine, [syslog(at(1 + i * 0.1), "write failed: No space left on device", h)
                        for i, h in enumerate(hosts)], at(6))
    assert [t.labels["host"] for t in got] == ["h1", "h2"]
    assert [t.values["keys_dropped"] for t in got] == [3, 3]
    assert got[0].summary["en"] == "h1: disk full (3 more hits on hosts not tracked)"


def test_counts_carry_across_a_restart_as_if_it_never_happened(tmp_path):
    rules = """\
        rules:
          - name: refused
            type: pattern
            source: system
            match: 'refused'
            threshold: 3
            window: 15m
            group_by: [host]
        """
    lines = [syslog(at(m), "Connection refused", "fp-a") for m in (1, 7, 12)]
    config = write_config(tmp_path, rules)
    whole = feed(engine_for(config), lines, at(30))

    first = engine_for(config)
    before = feed(first, lines[:2], at(10))
    saved = json.loads(json.dumps(first.state()))  # as the checkpoint stores it
    second = engine_for(config)
    second.restore(saved, [])
    after = feed(second, lines[2:], at(30))
    assert before == []
    assert [(t.state, t.ts) for t in after] == [(t.state, t.ts) for t in whole] == [
        ("firing", at(15)), ("resolved", at(20))]


def test_a_pattern_that_backtracks_without_end_is_cut_off_and_counted(tmp_path):
    engine = engine_for(write_config(tmp_path, """\
        rules:
          - name: slow
            type: pattern
            source: system
            match: '(a|aa)+$'
        """))
    t = time.monotonic()
    got = feed(engine, [syslog(at(1), "a" * 3000 + "b"), syslog(at(2), "aaa")], at(6))
    assert time.monotonic() - t < 5  # each line gets a tenth of a second, not hours
    assert "slow" in engine.eval_errors and "too long" in engine.eval_errors["slow"]
    assert [(t.rule, t.state) for t in got] == [("slow", "firing")]  # the next line matched


SHIPPED_CASES = [
    # (message, tag, the rule it fires; threshold lines are repeated)
    ("Out of memory: Killed process 912 (java)", "kernel", "oom_killer"),
    ("invoice-sync invoked oom-killer: gfp_mask=0x100cca", "kernel", "oom_killer"),
    ("failed to write /var/lib/invoice-agent/agent.db: No space left on device",
     "invoice-agent[77]", "disk_full"),
    ("blk_update_request: I/O error, dev sda, sector 123456", "kernel", "disk_io_error"),
    ("Buffer I/O error on dev dm-0, logical block 0", "kernel", "disk_io_error"),
    ("connect to platform 10.1.2.3:443 failed: Connection refused", "invoice-sync[1]",
     "platform_connection_errors"),
    ("upload to https://fp.example.cn: Connection timed out", "invoice-upload[2]",
     "platform_connection_errors"),
    ("client certificate has expired (notAfter=2026-11-01)", "invoice-upload[2]",
     "tls_certificate_expiry"),
    ("SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: unable to get local issuer",
     "invoice-upload[2]", "tls_errors"),
    ("getaddrinfo fp.example.cn: Temporary failure in name resolution", "invoice-sync[1]",
     "dns_failure"),
    ("reply from 10.0.0.53: SERVFAIL for fp.example.cn", "named[5]", "dns_failure"),
    ("invoice-sync.service: Main process exited, code=exited, status=1/FAILURE", "systemd[1]",
     "invoice_service_failed"),
]


def test_each_shipped_system_rule_catches_its_lines(tmp_path):
    config = write_config(tmp_path, None)
    for message, tag, rule in SHIPPED_CASES:
        engine = engine_for(config)
        # five a minute for 11 minutes: enough for a rule that wants the trouble to last
        lines = [syslog(at(1 + i * 0.2), message, tag=tag) for i in range(55)]
        fired = {t.rule for t in feed(engine, lines, at(16)) if t.state == "firing"}
        assert fired == {rule}, message


def test_the_shipped_system_rules_see_only_the_outage_on_the_simulated_day(tmp_path):
    # the demo's syslog: cron, heartbeats, token refreshes all day; during the outage the sync
    # service logs refused and timed-out connections to the platform (a true alert)
    config = write_config(tmp_path, None)
    sim = simulate(tmp_path / "sim", faults=False)
    loaded = load_config(config)
    rules = load_rules(loaded.rule_globs(), ["system"], loaded.config.window)
    result = replay(loaded, rules, match_files(loaded, [str(sim.files["syslog"])]))
    outage = default_incidents()[0]
    assert [(t.rule, t.state) for t in result.transitions] == [
        ("platform_connection_errors", "firing"), ("platform_connection_errors", "resolved")]
    fired, resolved = result.transitions
    assert outage.start < fired.ts <= outage.start + timedelta(minutes=10)
    assert outage.end < resolved.ts <= outage.end + timedelta(minutes=10)
    assert fired.labels["host"] == "fp-host"
