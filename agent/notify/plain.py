"""The built-in plain text of a notice: what is sent when no template can render it.

Written in Python over the same context the templates get (agent.notify.view), so it has the
same escaped values and the same words; it uses no markup at all, so it reads correctly on
every channel. A broken template therefore costs the message its layout, never the alert.
"""

from __future__ import annotations

from typing import Any

from agent.notify.view import Context


def _alert_line(alert: Context, words: dict[str, str], zh: bool) -> str:
    sep = "：" if zh else ": "
    line = f"- [{alert['severity_word']}] {alert['rule']}{sep}{alert['text']}"
    if alert["labels_text"]:
        line += f"（{alert['labels_text']}）" if zh else f" ({alert['labels_text']})"
    return line


def plain_message(ctx: Context) -> tuple[str, str]:
    """(title, body) of the notice in `ctx`, as plain text."""
    words: dict[str, str] = ctx["words"]
    zh = ctx["lang"] == "zh"
    sep = "：" if zh else ": "
    lines: list[str] = []
    lead: Any = ctx["lead"]
    if lead is not None:
        lines.append(str(lead["text"]))
        if lead["labels_text"]:
            lines.append(f"{words['labels']}{sep}{lead['labels_text']}")
        if lead["where"]:
            lines.append(f"{words['line']}{sep}{lead['where']}")
        if lead["invoice_count"]:
            more = (" " + words["invoices_more"].format(n=lead["invoices_more"])
                    if lead["invoices_more"] else "")
            lines.append(f"{words['invoices']} ({lead['invoice_count']}){sep}"
                         f"{', '.join(lead['invoices'])}{more}")
    if ctx["also_count"]:
        lines.append(f"{words['also_firing']} ({ctx['also_count']}){sep}")
        lines.extend(_alert_line(a, words, zh) for a in ctx["also"])
    if ctx["resolved_count"]:
        lines.append(f"{words['resolved']} ({ctx['resolved_count']}){sep}")
        lines.extend(_alert_line(a, words, zh) for a in ctx["resolved"])
    if ctx["hidden"]:
        lines.append(words["more"].format(n=ctx["hidden"]))
    if ctx["muted_text"]:
        lines.append(ctx["muted_text"])
    lines.append(f"{words['time']}{sep}{ctx['when']}")
    if ctx["reason_word"]:
        lines.append(f"{words['reason']}{sep}{ctx['reason_word']}")
    return str(ctx["title"]), "\n".join(lines)
