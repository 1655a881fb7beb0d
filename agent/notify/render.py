"""Turn an alert Transition into a short, phone-readable (title, body) in zh or en.

The text is what an on-call sysadmin reads on a WeCom or mail notification, so the first
line says what is wrong and the metadata (labels, event time, why now) follows, one item
per line.  Bodies are cut by UTF-8 bytes, not characters, because that is how WeCom
counts: 2048 bytes is only about 680 Chinese characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.types import Transition

LANGUAGES = ("zh", "en")

# WeCom group bots reject text messages over 2048 UTF-8 bytes (errcode 40058) yet answer
# HTTP 200, so an over-long message is lost silently.  Apprise sends title + "\r\n" + body.
WECOM_TEXT_LIMIT = 2048

ELLIPSIS = "…"

SEVERITY_WORDS = {
    "zh": {"critical": "严重", "warning": "警告", "info": "提示"},
    "en": {},  # the English words are the severity names themselves
}

# Named reasons from the alert state machine and the grouping stage, translated; unknown ones
# pass through.
REASON_WORDS = {
    "zh": {
        "first notification": "首次通知",
        "repeat interval elapsed": "重复提醒（间隔已到）",
        "escalated": "升级",
        "cause changed": "原因变化",
        "resolved": "已恢复",
        "update": "有更新",
        "repeat": "重复提醒",
    },
    "en": {},
}

_LABEL_WORDS = {
    "zh": {"labels": "标签", "time": "时间", "reason": "原因", "line": "行号",
           "lasted": "已恢复，持续 {d}；现在：", "file": "文件"},
    "en": {"labels": "Labels", "time": "Time", "reason": "Reason", "line": "Line",
           "lasted": "resolved after {d}; now: ", "file": "File"},
}


def duration_text(seconds: float, language: str = "zh") -> str:
    """'35 min', '2 h 5 min', '3 d 4 h' (zh: '35 分钟', '2 小时 5 分钟', '3 天 4 小时')."""
    m = max(0, int(seconds // 60))
    d, h, mm = m // 1440, m % 1440 // 60, m % 60
    units = (("天", "小时", "分钟") if language == "zh" else ("d", "h", "min"))
    parts = [(d, units[0]), (h, units[1]), (mm, units[2])]
    shown = [f"{n} {u}" for n, u in parts if n][:2]
    return " ".join(shown) or f"0 {units[2]}"


def jsonl_record(tr: Transition, language: str) -> dict[str, Any]:
    """The alert-transition object of `replay --format jsonl` (see DESIGN.md)."""
    rec: dict[str, Any] = {
        "ts": tr.ts.isoformat(), "rule": tr.rule, "source": tr.kind, "severity": tr.severity,
        "state": tr.state, "labels": dict(tr.labels),
        "summary": tr.summary.get(language) or next(iter(tr.summary.values()), tr.rule),
    }
    if tr.line_no is not None:
        rec["line"] = tr.line_no
        if tr.path:
            rec["file"] = tr.path
    if tr.kind == "ledger":
        # the invoice numbers the alert names (a script checks these, not the summary text)
        rec["invoices"] = list(tr.values.get("invoices") or [])
        if "count" in tr.values:
            rec["count"] = tr.values["count"]
    return rec


def check_language(language: str) -> None:
    """Refuse a language no message is written in (ValueError)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}, expected one of {LANGUAGES}")


def render_title(tr: Transition, language: str = "zh") -> str:
    """The one-line title: state, severity (when firing) and rule name.

    zh: `【告警·严重】upload_failure_rate`, `【恢复】upload_failure_rate`;
    en: `[FIRING critical] upload_failure_rate`, `[RESOLVED] upload_failure_rate`.
    """
    check_language(language)
    resolved = tr.state == "resolved"
    if language == "zh":
        if resolved:
            return f"【恢复】{tr.rule}"
        severity = SEVERITY_WORDS["zh"].get(tr.severity, tr.severity)
        return f"【告警·{severity}】{tr.rule}"
    if resolved:
        return f"[RESOLVED] {tr.rule}"
    return f"[FIRING {tr.severity}] {tr.rule}"


def summary_text(tr: Transition, language: str = "zh") -> str:
    """The rule's summary in `language`, else in the other language, else the rule name.

    Rules may ship a message in only one language; an alert must never arrive empty.
    """
    check_language(language)
    other = "en" if language == "zh" else "zh"
    for lang in (language, other):
        text = (tr.summary.get(lang) or "").strip()
        if text:
            return text
    for text in tr.summary.values():  # a language we do not render, still better than nothing
        if text and text.strip():
            return text.strip()
    return tr.rule


def message_summary(tr: Transition, language: str = "zh") -> str:
    """The summary as a message shows it: a resolved alert says for how long it lasted
    before the values it recovered to ("resolved after 35 min; now: failure rate 2%")."""
    summary = summary_text(tr, language)
    if tr.state == "resolved" and tr.fired_at is not None:
        lasted = duration_text((tr.ts - tr.fired_at).total_seconds(), language)
        summary = _LABEL_WORDS[language]["lasted"].format(d=lasted) + summary
    return summary


def format_labels(labels: Mapping[str, str]) -> str:
    """Labels as `k=v k=v`, sorted so the same alert always reads the same."""
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _meta_lines(tr: Transition, language: str) -> list[str]:
    words = _LABEL_WORDS[language]
    sep = "：" if language == "zh" else ": "
    lines = []
    if tr.labels:
        lines.append(f"{words['labels']}{sep}{format_labels(tr.labels)}")
    lines.append(f"{words['time']}{sep}{tr.ts.isoformat(timespec='seconds')}")
    if tr.line_no is not None:
        where = f"{tr.path}:{tr.line_no}" if tr.path else str(tr.line_no)
        lines.append(f"{words['line']}{sep}{where}")
    reason = REASON_WORDS[language].get(tr.reason, tr.reason)
    if reason:
        lines.append(f"{words['reason']}{sep}{reason}")
    return lines


def render(
    tr: Transition, language: str = "zh", max_bytes: int | None = WECOM_TEXT_LIMIT
) -> tuple[str, str]:
    """Render a transition as (title, body).

    The body is the summary followed by labels, event time (ISO-8601 with the offset the
    event carried), line number if any, and the reason for sending.  When `max_bytes` is
    set, title + CRLF + body fit in that many UTF-8 bytes: the summary is cut first so the
    metadata lines survive; None disables the limit (e.g. mail only).
    """
    title = render_title(tr, language)
    summary = message_summary(tr, language)
    meta = "\n".join(_meta_lines(tr, language))
    body = f"{summary}\n{meta}"
    if max_bytes is None:
        return title, body
    title = truncate_utf8(title, max_bytes // 4)  # a runaway rule name must not eat the body
    budget = max_bytes - _nbytes(title) - 2  # apprise joins title and body with "\r\n"
    if _nbytes(body) <= budget:
        return title, body
    summary_budget = budget - _nbytes(meta) - 1
    if summary_budget >= 16:  # room for a meaningful piece of the summary
        return title, f"{truncate_utf8(summary, summary_budget)}\n{meta}"
    return title, truncate_utf8(body, budget)


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int, marker: str = ELLIPSIS) -> str:
    """Cut `text` to at most `max_bytes` UTF-8 bytes without splitting a character.

    A cut text ends with `marker` (counted in the budget) so readers know something is
    missing; if even the marker does not fit, the text is cut bare.
    """
    if max_bytes <= 0:
        return ""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    tail = marker.encode("utf-8")
    if len(tail) >= max_bytes:
        tail, marker = b"", ""
    # errors="ignore" drops the partial multi-byte sequence left at the cut.
    head = data[: max_bytes - len(tail)].decode("utf-8", errors="ignore")
    return head.removesuffix("\r") + marker  # never leave half of a CRLF pair
