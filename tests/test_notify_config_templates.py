"""Message templates from the config: a rule's own `template:` and `notify.templates`, checked
by `check` and used by the running daemon."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_daemon import RULES, Agent, append, layout, upload_line, wait_for

TEMPLATE_RULES = RULES + (
    '    template: {en: "{{ values.failed }} uploads failed on {{ labels.source }} '
    '(own text)"}\n')


def check(config) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "check", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_a_broken_rule_template_or_templates_folder_is_a_check_problem(tmp_path):
    config = layout(tmp_path, rules=RULES + '    template: "{% if %}"\n')
    out = check(config)
    assert out.returncode == 1
    assert "rules.0 (upload_failed).template" in out.stderr and "line 1" in out.stderr
    config = layout(tmp_path)
    cfg = json.loads(config.read_text(encoding="utf-8"))
    cfg["notify"]["templates"] = "my-templates"
    (tmp_path / "my-templates" / "en").mkdir(parents=True)
    (tmp_path / "my-templates" / "en" / "text.j2").write_text("{% for %}", encoding="utf-8")
    config.write_text(json.dumps(cfg), encoding="utf-8")
    out = check(config)
    assert out.returncode == 1
    assert "notify.templates" in out.stderr and "text.j2" in out.stderr


def test_the_daemon_sends_a_rules_own_text_and_the_operators_template(tmp_path, agents, hooks):
    hook = hooks()
    config = layout(tmp_path, urls=[hook.url()], rules=TEMPLATE_RULES)
    cfg = json.loads(config.read_text(encoding="utf-8"))
    cfg["notify"]["templates"] = "my-templates"
    (tmp_path / "my-templates" / "en").mkdir(parents=True)
    (tmp_path / "my-templates" / "en" / "text.j2").write_text(
        "OPS PAGE: {{ lead.text }}", encoding="utf-8")
    config.write_text(json.dumps(cfg), encoding="utf-8")
    assert check(config).returncode == 0
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: hook.posts, what="the message")
    body = json.dumps(hook.posts[0][1], ensure_ascii=False)
    assert "OPS PAGE: 3 uploads failed on upload (own text)" in body
    assert agent.stop() == 0
