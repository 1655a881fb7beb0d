"""A planted secret (in ${ENV} and in a password_file) never appears in any output: logs of a
running daemon whose deliveries fail, `check`, `notify test`, `status`, error messages, nor in
the state database; state and secret files are not readable by others."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

from tests.conftest import free_port
from tests.test_daemon import Agent, append, db_rows, layout, upload_line, wait_for

TOKEN = "tok-Planted-5e3b9c"
PASSWORD = "pw-Planted-77aa41"


def setup(tmp_path):
    dead = free_port()  # nothing listens: every delivery fails and is logged
    secret = tmp_path / "smtp.pass"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    os.chmod(secret, 0o644)  # too open: said, without the content
    config = layout(tmp_path)
    cfg = json.loads(config.read_text(encoding="utf-8"))
    cfg["notify"]["urls"] = [
        f"json://127.0.0.1:{dead}/hook?token=${{INVOICE_AGENT_TEST_TOKEN}}&rto=1&cto=1",
        {"url": f"mailto://ops@127.0.0.1:{dead}?from=agent@example.cn&to=oncall@example.cn"
                f"&cto=1",
         "password_file": "smtp.pass"}]
    config.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, INVOICE_AGENT_TEST_TOKEN=TOKEN)
    return config, env


def cli(env, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                         text=True, timeout=120, env=env)
    return out.stdout + out.stderr


def assert_clean(text: str, where: str) -> None:
    assert TOKEN not in text, f"the token leaked in {where}"
    assert PASSWORD not in text, f"the password leaked in {where}"


def test_a_planted_secret_appears_in_no_output_and_no_state(tmp_path, agents, monkeypatch):
    config, env = setup(tmp_path)
    outputs = {"check": cli(env, "check", "-c", str(config)),
               "notify test": cli(env, "notify", "test", "-c", str(config))}
    assert "ok:" in outputs["check"]
    assert "FAILED" in outputs["notify test"]
    assert "smtp.pass is readable by every user" in outputs["check"]
    monkeypatch.setenv("INVOICE_AGENT_TEST_TOKEN", TOKEN)
    agent = Agent(config)  # the daemon inherits the variable from this process
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: db_rows(config, "SELECT 1 FROM outbox WHERE attempts > 0 OR "
                                     "last_error != ''"), timeout=30,
             what="a failed delivery")
    agent.signal(signal.SIGHUP)  # a reload logs the targets again
    wait_for(lambda: "reloaded" in agent.stderr(), what="the reload")
    assert agent.stop() == 0
    outputs["run (log)"] = agent.stderr() + agent.stdout()
    assert "delivery of alert" in outputs["run (log)"]
    outputs["status"] = cli(env, "status", "-c", str(config))
    outputs["status --json"] = cli(env, "status", "-c", str(config), "--json")
    assert "last delivery error" in outputs["status"] or "refused" in outputs["status"]
    # a config error about the secret's file names the file, not what it holds
    broken = json.loads(config.read_text(encoding="utf-8"))
    broken["notify"]["urls"][1]["password_file"] = "missing.pass"
    broken["notify"]["urls"][0] = broken["notify"]["urls"][0].replace("json:", "jsn:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    outputs["check (broken)"] = cli(env, "check", "-c", str(bad))
    assert "missing.pass" in outputs["check (broken)"]
    for where, text in outputs.items():
        assert_clean(text, where)
    for f in (tmp_path / "state").iterdir():
        data = f.read_bytes()
        assert TOKEN.encode() not in data and PASSWORD.encode() not in data, f.name
    db = tmp_path / "state" / "agent.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) & 0o077 == 0


def test_password_file_and_env_reach_the_target_urls(tmp_path, monkeypatch):
    from agent.config import load_config

    config, _ = setup(tmp_path)
    monkeypatch.setenv("INVOICE_AGENT_TEST_TOKEN", TOKEN)
    token_url, mail = load_config(config).notify_urls()
    assert f"token={TOKEN}&" in str(token_url)
    assert isinstance(mail, dict) and mail["url"].startswith(f"mailto://ops:{PASSWORD}@127.0.0.1:")
