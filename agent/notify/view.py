"""What a message about one Notice says, as plain data for its template.

A notice (agent.types.Notice) is the news of one alert group. Its message leads with the most
severe firing alert (its summary is the headline, in the operator's language), then lists the
other alerts of the group, what resolved (and after how long), and what the group muted. This
module turns a notice into the template context: dicts, lists, strings and numbers only, every
time already in the configured timezone and every value that came from an alert passed
through the channel's `escape` (agent.notify.markup for WeCom markdown), so a template prints
values without thinking about where they came from.

`Detail` says how much of the notice to show: a message that must fit a byte budget is
rendered again with fewer invoice numbers, then fewer further alerts, never without its lead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from agent.notify.markup import escape_value
from agent.notify.render import (
    REASON_WORDS,
    SEVERITY_WORDS,
    duration_text,
    format_labels,
    message_summary,
    truncate_utf8,
)
from agent.types import Notice, Transition

Escape = Callable[[str], str]
Context = dict[str, Any]

SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
MAX_INVOICES = 50  # invoice numbers listed per alert at most, whatever the room
MAX_MUTED_NAMES = 10  # rule names in the "muted" line at most

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "labels": "Labels", "time": "Time", "reason": "Reason", "group": "Group",
        "line": "Line", "invoices": "Invoices", "also_firing": "Also firing",
        "resolved": "Resolved", "since": "since", "more": "… and {n} more", "new": "new",
        "invoices_more": "… and {n} more",
        "lasted": "lasted {d}",
        "muted_inhibited": "Muted: {count} caused by this: {rules}",
        "muted_other": "Muted ({why}): {count}: {rules}",
        "alerts": "{n} alerts", "one_alert": "1 alert",
        "inhibited": "caused by this", "silenced": "silenced", "maintenance": "maintenance",
    },
    "zh": {
        "labels": "标签", "time": "时间", "reason": "原因", "group": "分组",
        "line": "行号", "invoices": "发票", "also_firing": "其他告警",
        "resolved": "已恢复", "since": "始于", "more": "……另有 {n} 条", "new": "新",
        "invoices_more": "……另有 {n} 张",
        "lasted": "持续 {d}",
        "muted_inhibited": "已屏蔽由此引起的 {count}：{rules}",
        "muted_other": "已屏蔽（{why}）{count}：{rules}",
        "alerts": "{n} 条告警", "one_alert": "1 条告警",
        "inhibited": "由此引起", "silenced": "静默", "maintenance": "维护时段",
    },
}


@dataclass(frozen=True, slots=True)
class Detail:
    """How much of a notice one rendering shows."""

    others: int | None = None  # further alerts listed (firing, then resolved); None: all
    invoices: int = MAX_INVOICES  # invoice numbers listed per alert
    summary_bytes: int | None = None  # each summary cut to this many UTF-8 bytes; None: whole


def notice_of(tr: Transition) -> Notice:
    """A notice about one transition alone (for callers that do not group alerts)."""
    firing = tr.state != "resolved"
    return Notice(ts=tr.ts, key=tr.fingerprint, group=dict(tr.labels), severity=tr.severity,
                  firing=(tr,) if firing else (), resolved=() if firing else (tr,),
                  news=frozenset({tr.fingerprint}), reason=tr.reason)


def ordered(transitions: Iterable[Transition], news: frozenset[str]) -> list[Transition]:
    """Most severe first; among equals the alerts that changed, then the oldest, then by name
    (the same notice always reads the same)."""
    return sorted(transitions, key=lambda tr: (
        -SEVERITY_RANK.get(tr.severity, 0), tr.fingerprint not in news,
        tr.fired_at or tr.ts, tr.rule, tr.fingerprint))


def severity_word(severity: str, language: str) -> str:
    """The severity in the operator's language (the English words are the names)."""
    return SEVERITY_WORDS.get(language, {}).get(severity, severity)


def notice_title(notice: Notice, language: str) -> str:
    """The one-line title (a mail's subject): state, severity, the lead rule and how many.

    `[FIRING critical] upload_outage (+1)`, `【告警·严重】upload_outage 等 2 条`;
    `[RESOLVED] upload_outage`, `【恢复】upload_outage`. One alert reads as it always did.
    """
    if notice.firing:
        alerts, rule = notice.firing, ordered(notice.firing, notice.news)[0].rule
        head = (f"【告警·{severity_word(notice.severity, 'zh')}】{rule}" if language == "zh"
                else f"[FIRING {notice.severity}] {rule}")
    elif notice.resolved:
        alerts, rule = notice.resolved, ordered(notice.resolved, notice.news)[0].rule
        head = f"【恢复】{rule}" if language == "zh" else f"[RESOLVED] {rule}"
    else:  # only muted news: say whose
        alerts = ()
        group = format_labels(notice.group) or notice.key
        head = f"【通知】{group}" if language == "zh" else f"[NOTICE] {group}"
    if len(alerts) > 1:
        head += f" 等 {len(alerts)} 条" if language == "zh" else f" (+{len(alerts) - 1})"
    return head


class Clock:
    """Event times as the operator reads them: in the configured zone (None: the offset the
    event carried), `2026-11-02 10:10`, or `10:10` on the notice's own day."""

    def __init__(self, zone: tzinfo | None, ref: datetime):
        self.zone = zone
        self.day = self.local(ref).date()

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.zone) if self.zone is not None else ts

    def stamp(self, ts: datetime) -> str:
        return self.local(ts).strftime("%Y-%m-%d %H:%M")

    def short(self, ts: datetime) -> str:
        t = self.local(ts)
        return t.strftime("%H:%M") if t.date() == self.day else t.strftime("%Y-%m-%d %H:%M")

    def offset(self, ts: datetime) -> str:
        raw = self.local(ts).strftime("%z")  # "+0800"; "" for a naive time
        return f"UTC{raw[:3]}:{raw[3:]}" if raw else ""


def _invoices(tr: Transition, limit: int, escape: Escape) -> tuple[list[Any], int]:
    raw = tr.values.get("invoices") if isinstance(tr.values, Mapping) else None
    numbers = [str(n) for n in raw] if isinstance(raw, (list, tuple)) else []
    count = tr.values.get("count")
    total = count if isinstance(count, int) and count >= len(numbers) else len(numbers)
    return [escape(n) for n in numbers[:max(0, limit)]], total


def alert_view(tr: Transition, language: str, clock: Clock, escape: Escape, news: frozenset[str],
               detail: Detail) -> Context:
    """One alert as its template sees it (see templates/README.md for every name)."""
    summary = message_summary(tr, language)
    if detail.summary_bytes is not None:
        summary = truncate_utf8(summary, detail.summary_bytes)
    invoices, total = _invoices(tr, detail.invoices, escape)
    began = tr.fired_at or tr.ts
    lasted = (duration_text((tr.ts - tr.fired_at).total_seconds(), language)
              if tr.state == "resolved" and tr.fired_at is not None else "")
    where = f"{tr.path}:{tr.line_no}" if tr.path and tr.line_no is not None else (
        str(tr.line_no) if tr.line_no is not None else "")
    text = escape(summary)
    return {
        "rule": escape(tr.rule), "kind": tr.kind, "state": tr.state,
        "severity": tr.severity, "severity_word": severity_word(tr.severity, language),
        "summary": text, "text": text,
        "labels": escape_value(dict(tr.labels), escape),
        "labels_text": escape(format_labels(tr.labels)),
        "time": clock.short(tr.ts), "since": clock.short(began), "lasted": lasted,
        "line": tr.line_no, "file": escape(tr.path or ""), "where": escape(where),
        "invoices": invoices, "invoice_count": total, "invoices_more": total - len(invoices),
        "new": tr.fingerprint in news, "fingerprint": tr.fingerprint,
        "values": escape_value(dict(tr.values), escape),
    }


def _muted(notice: Notice, language: str, escape: Escape) -> Context:
    words = WORDS[language]
    seen: dict[str, Any] = {}
    for m in notice.muted:
        seen.setdefault(m.fingerprint, m)
    entries = list(seen.values())
    rules = list(dict.fromkeys(m.rule for m in entries))
    shown = [escape(r) for r in rules[:MAX_MUTED_NAMES]] + (["…"] if len(rules) >
                                                            MAX_MUTED_NAMES else [])
    whys = list(dict.fromkeys(m.why for m in entries))
    sep = "、" if language == "zh" else ", "
    text = ""
    if entries:
        key = "muted_inhibited" if whys == ["inhibited"] else "muted_other"
        count = (words["one_alert"] if len(entries) == 1
                 else words["alerts"].format(n=len(entries)))
        text = words[key].format(count=count, rules=sep.join(shown),
                                 why=sep.join(words.get(w, w) for w in whys))
    return {
        "muted": [{"rule": escape(m.rule), "why": m.why, "by": escape(m.by), "state": m.state,
                   "labels": escape_value(dict(m.labels), escape)} for m in entries],
        "muted_count": len(entries), "muted_rules": shown, "muted_text": text,
    }


def notice_context(notice: Notice, language: str, *, zone: tzinfo | None = None,
                   escape: Escape = str, detail: Detail | None = None,
                   rule_text: Callable[[Context], str | None] | None = None,
                   channel: str = "text") -> Context:
    """The template context of `notice` (see templates/README.md).

    `rule_text(alert)` gives a rule's own text for its alert's line (a per-rule template), or
    None to keep the summary.
    """
    detail = detail or Detail()
    clock = Clock(zone, notice.ts)
    firing = ordered(notice.firing, notice.news)
    resolved = ordered(notice.resolved, notice.news)
    lead_tr: Transition | None = (firing or resolved)[0] if (firing or resolved) else None
    others_firing, others_resolved = ([t for t in firing if t is not lead_tr],
                                      [t for t in resolved if t is not lead_tr])
    limit = None if detail.others is None else max(0, detail.others)
    shown_firing = others_firing[:limit]
    room = None if limit is None else max(0, limit - len(shown_firing))
    shown_resolved = others_resolved[:room]

    def view(tr: Transition) -> Context:
        alert = alert_view(tr, language, clock, escape, notice.news, detail)
        if rule_text is not None:
            own = rule_text(alert)
            if own:
                alert["text"] = own
        return alert

    hidden = (len(others_firing) - len(shown_firing)) + (len(others_resolved)
                                                         - len(shown_resolved))
    offset = clock.offset(notice.ts)
    stamp = clock.stamp(notice.ts)
    return {
        "lang": language, "channel": channel, "words": WORDS[language],
        "title": notice_title(notice, language), "key": notice.key,
        "severity": notice.severity, "severity_word": severity_word(notice.severity, language),
        "reason": notice.reason,
        "reason_word": REASON_WORDS.get(language, {}).get(notice.reason, notice.reason),
        "time": stamp, "offset": offset, "when": f"{stamp} ({offset})" if offset else stamp,
        "group": escape_value(dict(notice.group), escape),
        "group_text": escape(format_labels(notice.group)),
        "lead": view(lead_tr) if lead_tr is not None else None,
        "also": [view(t) for t in shown_firing], "also_count": len(others_firing),
        "resolved": [view(t) for t in shown_resolved], "resolved_count": len(others_resolved),
        "firing_count": len(firing), "hidden": hidden,
        **_muted(notice, language, escape),
    }


def further_alerts(notice: Notice) -> int:
    """How many alerts a message lists besides its lead (what `Detail.others` can cut)."""
    total = len(notice.firing) + len(notice.resolved)
    return max(0, total - 1)
