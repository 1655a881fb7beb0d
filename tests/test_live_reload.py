"""A rules or config edit reaches the running daemon without a restart or a signal; a broken
edit is refused, told once, and the running rules go on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from tests.test_daemon import RULES, Agent, append, db_rows, layout, upload_line, wait_for

TWO_RULES = RULES + """
  - name: upload_slow
    type: threshold
    source: upload
    when: "latency_max > 100000"
    severity: warning
"""


def test_a_rules_edit_takes_effect_without_signal_or_restart(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    # the new rule fires on one failure where the old one wanted three
    (tmp_path / "rules" / "r.yaml").write_text(
        RULES.replace("upload_failed", "one_failure").replace("failed >= 3", "failed >= 1"),
        encoding="utf-8")
    wait_for(lambda: "(file changed)" in agent.stderr(), timeout=15, what="the reload")
    assert "1 rules" in agent.stderr()
    time.sleep(2.2)  # into a window that began after the reload
    append(tmp_path / "logs" / "upload.log", upload_line("失败"))
    wait_for(lambda: "one_failure" in agent.stdout(), what="the edited rule alerting")
    assert "upload_failed" not in agent.stdout()
    assert agent.stop() == 0


def test_a_new_rule_file_is_picked_up(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    (tmp_path / "rules" / "more.yaml").write_text(
        RULES.replace("upload_failed", "from_new_file").replace("failed >= 3", "failed >= 1"),
        encoding="utf-8")
    wait_for(lambda: "(file changed): 2 rules" in agent.stderr(), timeout=15,
             what="the reload with the new file")
    assert agent.stop() == 0


def test_a_broken_edit_is_refused_told_once_and_the_old_rules_keep_alerting(
        tmp_path, agents, hooks):
    hook = hooks()
    config = layout(tmp_path, urls=[hook.url()])
    agent = Agent(config)
    agents.append(agent)
    rules = tmp_path / "rules" / "r.yaml"
    rules.write_text(RULES.replace('when: "failed >= 3"', 'when: "faild >= 3"'),
                     encoding="utf-8")
    wait_for(lambda: "reload refused" in agent.stderr(), timeout=15, what="the refusal")
    assert "r.yaml" in agent.stderr() and "faild" in agent.stderr()
    wait_for(lambda: hook.posts, what="the broken-config notification")
    # a second broken save while the first is unresolved is logged, not told again
    time.sleep(0.1)
    rules.write_text("rules:\n  - name: [unclosed\n", encoding="utf-8")
    wait_for(lambda: agent.stderr().count("reload refused") >= 2, timeout=15,
             what="the second refusal")
    status = subprocess.run([sys.executable, "-m", "agent", "status", "-c", str(config),
                             "--json"], capture_output=True, text=True, timeout=60)
    daemon = json.loads(status.stdout)["daemon"]
    assert daemon["running"] and "r.yaml" in daemon["reload_error"]
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: len(hook.posts) >= 2, what="the old rule's alert")
    texts = [json.dumps(body, ensure_ascii=False) for _, body in hook.posts]
    assert sum("CONFIG BROKEN" in t for t in texts) == 1, texts
    assert "faild" in texts[0]
    assert any("upload_failed" in t for t in texts[1:]), texts
    rules.write_text(RULES, encoding="utf-8")
    wait_for(lambda: "config valid again" in agent.stderr(), timeout=15, what="the fix")
    assert agent.stop() == 0


def test_the_alert_of_an_unchanged_rule_survives_a_reload(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    log = tmp_path / "logs" / "upload.log"
    failing = threading.Event()
    failing.set()

    def keep_failing() -> None:  # ~10 failures in every 2 s window: the alert stays firing
        while failing.is_set():
            append(log, upload_line("失败"))
            time.sleep(0.2)

    writer = threading.Thread(target=keep_failing, daemon=True)
    writer.start()
    try:
        wait_for(lambda: "upload_failed" in agent.stdout(), what="the alert")
        (tmp_path / "rules" / "r.yaml").write_text(TWO_RULES, encoding="utf-8")
        wait_for(lambda: "(file changed): 2 rules" in agent.stderr(), timeout=15,
                 what="the reload")
        time.sleep(4.5)  # two more windows, judged by the reloaded rules
    finally:
        failing.clear()
        writer.join()
    append(log, upload_line("成功"))
    wait_for(lambda: db_rows(config, "SELECT 1 FROM alert_log WHERE rule = 'upload_failed' "
                                     "AND state = 'resolved'"), what="the resolution")
    firings = db_rows(config, "SELECT reason FROM alert_log WHERE rule = 'upload_failed' "
                              "AND state = 'firing'")
    assert firings == [("first notification",)]
    assert agent.stop() == 0
