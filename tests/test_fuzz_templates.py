"""Property tests of message templates: whatever an operator's templates folder or a rule's own
template holds, render() returns a title and a body within the channel's byte limit, in
bounded time, and the checks (`template_problems`, `rule_template_problem`) report rather
than raise."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.notify.markup import WECOM_MARKDOWN_LIMIT
from agent.notify.render import WECOM_TEXT_LIMIT
from agent.notify.samples import sample_notice
from agent.notify.sandbox import RENDER_SECONDS
from agent.notify.templating import (
    CHANNELS,
    EMAIL_LIMIT,
    NoticeRenderer,
    _size,
    rule_template_problem,
    template_problems,
)

LIMITS = {"wecom": WECOM_MARKDOWN_LIMIT, "email": EMAIL_LIMIT, "text": WECOM_TEXT_LIMIT}
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

# Jinja pieces, hostile ones included: loops that would run for hours, values that would take
# gigabytes, sandbox escapes, recursion, blocks and broken syntax
PIECES = st.sampled_from([
    "{{ lead.text }}", "{{ title }}", "{% block title %}T{% endblock %}", "{% block body %}",
    "{% endblock %}", "{{ lead.invoices | join(', ') }}", "{% for a in also %}{{ a.rule }}",
    "{% endfor %}", "{% if lead %}", "{% endif %}", "{{ nope }}", "{{ lead.values.x }}",
    "{{ 'x' * 10**9 }}", "{{ 10**10**10 }}", "{{ '%999999999s' % 1 }}", "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'|center(10**9) }}", "{{ '{:999999999}'.format(1) }}", "{{ lipsum(10**6) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}", "{{ ''.__class__.__mro__ }}", "{{ lead.__init__.__globals__ }}",
    "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "{{ range(10**9)|list }}",
    "{{ [1]|batch(10**9, 'x')|list }}", "{{ lead.text|indent(10000) * 100 }}",
    "{{ (lead.summary ~ '\n') * 4000 }}", "{{ title|replace('', 'xxxxxxxx') }}", "{%", "}}",
    "{{", "{# c #}", "\n", "标题", "**bold** <@all> [x](http://e.x)", "{% raw %}",
    "{% include 'zh/text.j2' %}", "{% extends 'zh/wecom.j2' %}", "{{ 1/0 }}",
    "{{ lead.summary * 1000 }}",
])
TEMPLATES = st.one_of(st.text(max_size=80), st.lists(PIECES, max_size=6).map("".join))


def assert_fits(renderer: NoticeRenderer, channel: str) -> None:
    start = time.monotonic()
    title, body = renderer.render(sample_notice(), channel)
    took = time.monotonic() - start
    assert isinstance(title, str) and isinstance(body, str)
    assert _size(channel, title, body) <= LIMITS[channel]
    assert title or body  # a message, not nothing
    # each template in the chain gets RENDER_SECONDS at most, then the next one is used
    assert took < 3 * RENDER_SECONDS + 2, took


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEMPLATES, language=st.sampled_from(["zh", "en"]),
       channel=st.sampled_from(CHANNELS))
def test_any_operator_template_still_gives_a_message_within_the_channel_limit(
        tmp_path, caplog, text, language, channel):
    caplog.set_level(logging.CRITICAL)  # failed templates are logged by design
    root = tmp_path / "templates"
    shutil.rmtree(root, ignore_errors=True)
    (root / language).mkdir(parents=True)
    (root / language / f"{channel}.j2").write_text(text, encoding="utf-8")
    assert_fits(NoticeRenderer(language, templates=root), channel)
    problems = template_problems(root)
    assert all(isinstance(p, str) and str(root) in p for p in problems)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEMPLATES, channel=st.sampled_from(CHANNELS))
def test_any_rule_template_still_gives_a_message_within_the_channel_limit(caplog, text,
                                                                           channel):
    caplog.set_level(logging.CRITICAL)
    problem = rule_template_problem(text)
    assert problem is None or problem.startswith("line ")
    rule = sample_notice().firing[0].rule
    assert_fits(NoticeRenderer("zh", rule_templates={rule: {"zh": text}}), channel)


def test_hostile_templates_are_stopped_by_the_sandbox_bounds(tmp_path):
    # each would hang the sender or take gigabytes if run unbounded
    root = tmp_path / "templates"
    (root / "en").mkdir(parents=True)
    for text in ["{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                 "{% endfor %}", "{{ 'x' * 10**9 }}", "{{ 'x'.ljust(10**9) }}",
                 "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"]:
        (root / "en" / "text.j2").write_text(text, encoding="utf-8")
        (problem,) = template_problems(root)
        assert "fails on a sample notice: TemplateLimit" in problem, problem
