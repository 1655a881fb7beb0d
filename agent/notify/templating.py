"""Rendering notices with Jinja2 templates, per language and channel, within each channel's size.

Channels: `wecom` (WeCom group-bot markdown, 4096 bytes), `email` (a subject and a plain-text
body) and `text` (every other target: plain text, title and body within 2048 bytes). The
templates ship in agent/notify/templates/{zh,en}/{wecom,email,text}.j2; an operator's folder of
the same layout (`templates=DIR`) overrides any of them, and a rule may bring its own text for
its alert's line (`rule_templates`: rule name -> {language: template}).

Templates are operator data, so they run in Jinja's immutable sandbox with undefined names an
error, never as Python, bounded: a rendering gets RENDER_SECONDS (nested loops could take
hours), and no value it builds may pass MAX_TEXT characters (`"x" * 10**9`, `"%999999999s" % 1`
or a `~` doubling in a loop would take gigabytes). A template that does not load or render is
logged (with its file and why) and the next one is used: the operator's, then the shipped one,
then the built-in plain text (agent.notify.plain). A message is never lost to its layout.

A message over its channel's budget is rendered again showing less (invoice numbers first,
then the further alerts, keeping as many as fit), and only as a last resort cut by UTF-8
bytes, on a character boundary, after its headline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.notify.markup import WECOM_MARKDOWN_LIMIT, escape_wecom, wecom_content
from agent.notify.plain import plain_message
from agent.notify.render import LANGUAGES, WECOM_TEXT_LIMIT, check_language, truncate_utf8
from agent.notify.sandbox import TemplateLimit, bounded_join, environment, time_limit
from agent.notify.view import Context, Detail, Escape, further_alerts, notice_context
from agent.types import Notice

log = logging.getLogger(__name__)

CHANNELS = ("wecom", "email", "text")
SHIPPED = Path(__file__).resolve().parent / "templates"
EMAIL_LIMIT = 100_000  # bytes of body: a runaway template must not make a 50 MB mail
_SUMMARY_CUT = 300  # bytes per summary when even the lead alone does not fit
_ESCAPES: dict[str, Escape] = {"wecom": escape_wecom}
def template_name(language: str, channel: str) -> str:
    """The file of (language, channel) under a templates folder: `zh/wecom.j2`."""
    return f"{language}/{channel}.j2"


def _load(env: ImmutableSandboxedEnvironment, root: Path, name: str) -> Template | None:
    """The compiled template, or None (logged) when it is missing or does not compile."""
    if not (root / name).is_file():
        return None
    try:
        return env.get_template(name)
    except TemplateSyntaxError as exc:
        log.error("notify template %s:%s does not compile: %s; using the next one",
                  root / name, exc.lineno, exc.message)
    except (OSError, UnicodeDecodeError) as exc:
        log.error("notify template %s cannot be read: %s; using the next one", root / name, exc)
    return None


def _tidy(text: str) -> str:
    """Trailing spaces gone, runs of blank lines made one: templates may be written loosely."""
    out: list[str] = []
    for line in text.strip("\n").splitlines():
        line = line.rstrip()
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def run_template(template: Template, ctx: Context) -> tuple[str, str]:
    """(title, body) from `template`: its `title` and `body` blocks when it has them (a file
    without blocks is all body, with the built-in title)."""
    with time_limit():
        if "body" in template.blocks:
            context = template.new_context(dict(ctx))
            body = bounded_join(template.blocks["body"](context))
            title = (bounded_join(template.blocks["title"](context))
                     if "title" in template.blocks else str(ctx["title"]))
        else:
            body, title = template.render(ctx), str(ctx["title"])
    return " ".join(title.split()), _tidy(body)


def _size(channel: str, title: str, body: str) -> int:
    if channel == "wecom":
        return len(wecom_content(title, body).encode("utf-8"))
    if channel == "email":
        return len(body.encode("utf-8"))
    return len(title.encode("utf-8")) + 2 + len(body.encode("utf-8"))  # apprise: title CRLF body


def _limit(channel: str) -> int:
    return {"wecom": WECOM_MARKDOWN_LIMIT, "email": EMAIL_LIMIT}.get(channel, WECOM_TEXT_LIMIT)


class NoticeRenderer:
    """Renders notices in one language for each channel.

    `timezone`: times shown in this zone (an IANA name such as Asia/Shanghai, or a tzinfo);
    None keeps each event's own offset. `templates`: an operator's folder overriding shipped
    files of the same names. `rule_templates`: rule name -> {language: template of that
    rule's line}; a rule without one in the message's language uses the other language's.
    """

    def __init__(self, language: str = "zh", *, timezone: str | tzinfo | None = None,
                 templates: str | Path | None = None,
                 rule_templates: Mapping[str, Mapping[str, str]] | None = None):
        check_language(language)
        self.language = language
        self.zone: tzinfo | None = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        shipped_env = environment(SHIPPED)
        self._chains: dict[str, list[tuple[str, Template]]] = {}
        override = Path(templates) if templates is not None else None
        if override is not None and not override.is_dir():
            log.error("notify templates folder %s does not exist; using the shipped ones",
                      override)
            override = None
        override_env = environment(override) if override is not None else None
        for channel in CHANNELS:
            name, chain = template_name(language, channel), []
            for root, env in ((override, override_env), (SHIPPED, shipped_env)):
                template = _load(env, root, name) if root is not None and env else None
                if template is not None and root is not None:
                    chain.append((str(root / name), template))
            self._chains[channel] = chain
        self._rules: dict[str, Template] = {}
        other = "en" if language == "zh" else "zh"
        for rule, texts in (rule_templates or {}).items():
            text = texts.get(language) or texts.get(other)
            if not text:
                continue
            try:
                self._rules[rule] = shipped_env.from_string(text)
            except TemplateSyntaxError as exc:
                log.error("rule %s: template line %s does not compile: %s; its alerts show "
                          "their summary", rule, exc.lineno, exc.message)

    def render(self, notice: Notice, channel: str) -> tuple[str, str]:
        """(title, body) of `notice` for `channel`, within the channel's size. Never raises
        for a template's fault: the next template, at worst the plain text, is used."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}, expected one of {CHANNELS}")
        for name, template in self._chains[channel]:
            try:
                return self._fit(notice, channel, template)
            except Exception as exc:  # noqa: BLE001  an alert is never lost to its layout
                log.warning("notify template %s failed (%s: %s); using the next one",
                            name, type(exc).__name__, exc)
        return self._fit(notice, channel, None)

    def context(self, notice: Notice, channel: str = "text",
                detail: Detail | None = None) -> Context:
        """The template context of `notice` for `channel` (see templates/README.md)."""
        return notice_context(notice, self.language, zone=self.zone,
                              escape=_ESCAPES.get(channel, str), detail=detail,
                              rule_text=self._rule_text, channel=channel)

    def _rule_text(self, alert: Context) -> str | None:
        template = self._rules.get(str(alert["rule"]))
        if template is None:
            return None
        try:
            with time_limit():
                text = template.render({**alert, "alert": alert, "lang": self.language})
        except Exception as exc:  # noqa: BLE001  the alert keeps its summary
            log.warning("rule %s: its template failed (%s: %s); showing the summary",
                        alert["rule"], type(exc).__name__, exc)
            if isinstance(exc, TemplateLimit):  # not tried again at every fitting step
                self._rules.pop(str(alert["rule"]), None)
            return None
        return _tidy(text) or None

    def _once(self, notice: Notice, channel: str, template: Template | None,
              detail: Detail) -> tuple[str, str]:
        ctx = self.context(notice, channel, detail)
        return run_template(template, ctx) if template is not None else plain_message(ctx)

    def _fit(self, notice: Notice, channel: str, template: Template | None) -> tuple[str, str]:
        limit = _limit(channel)
        title_room = 250  # apprise cuts longer titles itself (its title_maxlen)

        def attempt(detail: Detail) -> tuple[str, str, bool]:
            title, body = self._once(notice, channel, template, detail)
            title = truncate_utf8(title, title_room)  # a runaway rule name must not eat the body
            return title, body, _size(channel, title, body) <= limit

        for detail in (Detail(), Detail(invoices=10), Detail(invoices=0)):
            title, body, fits = attempt(detail)
            if fits:
                return title, body
        # as many further alerts as fit: binary search over how many are listed
        best, lo, hi = None, 0, further_alerts(notice) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            title, body, fits = attempt(Detail(others=mid, invoices=0))
            if fits:
                best, lo = (title, body), mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
        title, body, fits = attempt(Detail(others=0, invoices=0, summary_bytes=_SUMMARY_CUT))
        if fits:
            return title, body
        room = limit - _size(channel, title, "") - (1 if channel == "wecom" else 0)
        return title, truncate_utf8(body, room)


def template_problems(directory: str | Path) -> list[str]:
    """What is wrong with an operator's templates folder, one line each naming the file: a
    missing folder, a file that does not compile, one that fails on a sample notice. Empty
    when every file it holds renders (files it lacks fall back to the shipped ones)."""
    from agent.notify.samples import sample_notice

    root = Path(directory)
    if not root.is_dir():
        return [f"notify templates folder {root} does not exist"]
    env, problems, found = environment(root), [], 0
    for language in LANGUAGES:
        for channel in CHANNELS:
            name = template_name(language, channel)
            if not (root / name).is_file():
                continue
            found += 1
            try:
                template = env.get_template(name)
                ctx = notice_context(sample_notice(), language,
                                     escape=_ESCAPES.get(channel, str), channel=channel)
                run_template(template, ctx)
            except TemplateSyntaxError as exc:
                problems.append(f"{root / name}:{exc.lineno}: {exc.message}")
            except Exception as exc:  # noqa: BLE001  reported, not raised
                problems.append(f"{root / name}: fails on a sample notice: "
                                f"{type(exc).__name__}: {exc}")
    if not found:
        names = ", ".join(template_name(lang, ch) for lang in LANGUAGES for ch in CHANNELS)
        problems.append(f"notify templates folder {root} holds none of {names}")
    return problems


def rule_template_problem(text: str) -> str | None:
    """Why a rule's own template text cannot be used (`line N: message`), or None."""
    try:
        environment().from_string(text)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None

