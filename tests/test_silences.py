"""`invoice-agent silence add|list|expire`: stored in the agent's SQLite, shown by `status`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from agent.store import Store


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("state_dir: state\ntimezone: Asia/Shanghai\nsources: []\nrules: []\n",
                    encoding="utf-8")
    return path


def listed(config) -> list[dict]:
    out = cli("silence", "list", "-c", str(config), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["silences"]


def test_add_list_expire_and_status(config):
    out = cli("silence", "add", "-c", str(config), "--rule", "upload_latency", "--label",
              "source=upload", "--for", "2h", "--comment", "平台维护 ticket 4711")
    assert out.returncode == 0, out.stderr
    [s] = listed(config)
    assert s["matchers"] == {"rule": "upload_latency", "source": "upload"}
    assert s["state"] == "active" and s["comment"] == "平台维护 ticket 4711"
    length = datetime.fromisoformat(s["ends_at"]) - datetime.fromisoformat(s["starts_at"])
    assert timedelta(hours=1, minutes=59) < length <= timedelta(hours=2)
    assert s["ends_at"].endswith("+08:00")  # shown in the config's timezone
    status = cli("status", "-c", str(config))
    assert s["id"] in status.stdout and "平台维护" in status.stdout
    assert json.loads(cli("status", "-c", str(config), "--json").stdout)["silences"][0][
        "id"] == s["id"]
    out = cli("silence", "expire", "-c", str(config), s["id"])
    assert out.returncode == 0 and "expired" in out.stdout
    assert listed(config) == []
    again = cli("silence", "expire", "-c", str(config), s["id"])
    assert again.returncode == 1 and "no silence" in again.stderr
    everything = cli("silence", "list", "-c", str(config), "--all", "--json")
    assert json.loads(everything.stdout)["silences"][0]["state"] == "ended"


def test_a_planned_silence_is_listed_as_planned(config):
    out = cli("silence", "add", "-c", str(config), "--label", "host=erp1", "--for", "30m",
              "--start", "2099-12-31 22:00", "--comment", "disk swap")
    assert out.returncode == 0, out.stderr
    [s] = listed(config)
    assert s["state"] == "planned" and s["starts_at"] == "2099-12-31T22:00:00+08:00"


@pytest.mark.parametrize("args, message", [
    (["--for", "2h"], "give --rule and/or --label"),
    (["--rule", "r", "--for", "soon"], "duration"),
    (["--rule", "r", "--for", "0s"], "positive"),
    (["--label", "novalue", "--for", "1h"], "KEY=VALUE"),
    (["--rule", "r", "--for", "1h", "--start", "tomorrow"], "2026-12-01 22:00"),
])
def test_bad_silences_are_refused_with_the_reason(config, args, message):
    out = cli("silence", "add", "-c", str(config), *args, "--comment", "x")
    assert out.returncode == 2
    assert message in out.stderr
    assert listed(config) == []


def test_silences_match_rule_and_labels(tmp_path):
    store = Store(tmp_path / "a.db")
    now = datetime.now().astimezone()
    s = store.silences.add({"rule": "upload_latency", "source": "upload"}, now,
                           now + timedelta(hours=1), "c", "me", now)
    assert s.matches("upload_latency", {"source": "upload", "team": "x"})
    assert not s.matches("upload_latency", {"source": "erp"})
    assert not s.matches("upload_outage", {"source": "upload"})
    assert s.active(now) and not s.active(now + timedelta(hours=1))
    store.silences.prune(now + timedelta(hours=2))
    assert store.silences.all() == []
    store.close()


def test_a_running_daemon_honours_a_silence_at_once_and_tells_after_it_expires(
        tmp_path, agents, hooks):
    import threading
    import time

    from tests.test_daemon import Agent, append, db_rows, layout, upload_line, wait_for

    hook = hooks()
    config = layout(tmp_path, urls=[hook.url()])
    agent = Agent(config)
    agents.append(agent)
    out = cli("silence", "add", "-c", str(config), "--rule", "upload_failed", "--for", "1h",
              "--comment", "known: platform maintenance")
    assert out.returncode == 0, out.stderr
    sid = listed(config)[0]["id"]
    log = tmp_path / "logs" / "upload.log"
    failing = threading.Event()
    failing.set()

    def keep_failing() -> None:
        while failing.is_set():
            append(log, upload_line("失败"))
            time.sleep(0.2)

    writer = threading.Thread(target=keep_failing, daemon=True)
    writer.start()
    try:
        wait_for(lambda: db_rows(config, "SELECT 1 FROM alert_log WHERE rule = "
                                         "'upload_failed' AND state = 'firing'"),
                 what="the alert firing")
        time.sleep(3)  # a group flush came and went: nothing sent
        assert hook.posts == []
        status = json.loads(cli("status", "-c", str(config), "--json").stdout)
        assert [(m["rule"], m["why"], m["by"]) for m in status["muted"]] == [
            ("upload_failed", "silenced", sid)]
        assert "silenced by " + sid in cli("status", "-c", str(config)).stdout
        assert cli("silence", "expire", "-c", str(config), sid).returncode == 0
        # still firing when the silence ends: told at the group's next message
        wait_for(lambda: hook.posts, what="the alert after the silence")
    finally:
        failing.clear()
        writer.join()
    assert "upload_failed" in json.dumps(hook.posts[0][1], ensure_ascii=False)
    assert agent.stop() == 0


def test_status_shows_maintenance_windows(tmp_path):
    from agent.config import load_config
    from agent.status import maintenance

    path = tmp_path / "agent.yaml"
    path.write_text(
        "state_dir: state\ntimezone: Asia/Shanghai\nsources: []\nrules: []\n"
        "maintenance:\n"
        "  - name: 税务平台系统维护\n"
        "    weekly: [{days: [sat], start: '22:00', end: '06:00'}]\n"
        "  - name: year end\n"
        "    dates: [{start: '2026-12-31 20:00', end: '2027-01-01 08:00'}]\n",
        encoding="utf-8")
    cfg = load_config(path).config
    zone = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=zone)
    weekly, dated = maintenance(cfg, friday)
    assert weekly == {"name": "税务平台系统维护", "active": False,
                      "next": "2026-11-28T22:00+08:00"}
    assert dated == {"name": "year end", "active": False}  # more than a week ahead
    during = maintenance(cfg, datetime(2026, 11, 29, 1, 0, tzinfo=zone))[0]
    assert during["active"] and during["until"] == "2026-11-29T06:15+08:00"  # grace 15m
    out = cli("status", "-c", str(path))
    assert "maintenance 税务平台系统维护" in out.stdout and "maintenance year end" in out.stdout
