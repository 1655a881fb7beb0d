"""Print alerts on a terminal: the notifier of last resort, and what `demo` and
`replay --notifications` show.

A transition is one line; a notice (one alert group's news) a few lines: the lead alert with
the time, then the group's other alerts, what resolved and what it muted, indented:

2026-11-02 10:10:00+08:00 FIRING   critical upload_outage 上传全部超时 (source=upload)
                          FIRING   warning  upload_latency 上传 p95 延迟 12 秒 (source=upload)
                          RESOLVED warning  upload_failure_rate 已恢复，持续 35 分钟；…
                          MUTED    2: invoice_missing, model_anomaly (inhibited by upload_outage)
"""

from __future__ import annotations

import os
from datetime import tzinfo
from typing import TextIO

from agent.notify.render import format_labels, message_summary
from agent.notify.view import ordered
from agent.types import Notice, Transition

_RESET = "\033[0m"
_DIM = "\033[2m"
_COLOURS = {
    ("firing", "critical"): "\033[1;31m",  # bold red
    ("firing", "warning"): "\033[33m",  # yellow
    ("firing", "info"): "\033[36m",  # cyan
    ("resolved", None): "\033[32m",  # green, whatever the severity
}


def _alert_text(tr: Transition, language: str) -> str:
    # Columns padded to the longest word (RESOLVED, critical) so a stream of lines aligns.
    summary = " ".join(message_summary(tr, language).split())  # one line, whatever the template
    line = f"{tr.state.upper():<8} {tr.severity:<8} {tr.rule}"
    if summary != tr.rule:  # a rule without a summary template falls back to its name
        line += f" {summary}"
    if tr.labels:
        line += f" ({format_labels(tr.labels)})"
    return line


def format_transition(tr: Transition, language: str = "zh") -> str:
    """The plain one-line form: event time, state, severity, rule, summary, labels."""
    return f"{tr.ts.isoformat(sep=' ', timespec='seconds')} {_alert_text(tr, language)}"


def format_notice(notice: Notice, language: str = "zh", zone: tzinfo | None = None
                  ) -> list[str]:
    """The plain lines of a notice: its time (in `zone`, else as the event carried it) and
    its lead alert, then the other firing alerts, the resolved ones and what it muted."""
    ts = notice.ts.astimezone(zone) if zone is not None else notice.ts
    stamp = ts.isoformat(sep=" ", timespec="seconds")
    alerts = ordered(notice.firing, notice.news) + ordered(notice.resolved, notice.news)
    texts = [_alert_text(tr, language) for tr in alerts]
    muted: dict[str, tuple[str, str, str]] = {}
    for m in notice.muted:
        muted.setdefault(m.fingerprint, (m.rule, m.why, m.by))
    if muted:
        rules = ", ".join(dict.fromkeys(rule for rule, _, _ in muted.values()))
        whys = ", ".join(dict.fromkeys(
            f"{why} by {by}" if why == "inhibited" else f"{why} ({by})"
            for _, why, by in muted.values()))
        texts.append(f"{'MUTED':<8} {len(muted)}: {rules} ({whys})")
    if not texts:
        texts.append(f"{notice.reason.upper()} {format_labels(notice.group)}".rstrip())
    pad = " " * len(stamp)
    return [f"{stamp if i == 0 else pad} {text}" for i, text in enumerate(texts)]


def _use_colour(stream: TextIO) -> bool:
    # NO_COLOR (no-color.org) lets users opt out even on a terminal.
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _colour(state: str, severity: str | None) -> str | None:
    return _COLOURS.get(("resolved", None) if state == "resolved" else (state, severity))


def print_transition(tr: Transition, language: str, stream: TextIO) -> None:
    """Write `tr` as one line to `stream`, coloured by state and severity on a terminal."""
    line = format_transition(tr, language)
    colour = _colour(tr.state, tr.severity) if _use_colour(stream) else None
    if colour:
        line = f"{colour}{line}{_RESET}"
    stream.write(line + "\n")
    stream.flush()


def print_notice(notice: Notice, language: str, out: TextIO, zone: tzinfo | None = None
                 ) -> None:
    """Write `notice` to `out` as a few lines (`format_notice`), each alert's line coloured
    by its state and severity on a terminal, the muted line dim."""
    lines = format_notice(notice, language, zone)
    if _use_colour(out):
        alerts = ordered(notice.firing, notice.news) + ordered(notice.resolved, notice.news)
        colours = [_colour(tr.state, tr.severity) for tr in alerts]
        colours += [_DIM] * (len(lines) - len(colours))
        lines = [f"{c}{line}{_RESET}" if c else line for c, line in zip(colours, lines,
                                                                         strict=True)]
    out.write("".join(line + "\n" for line in lines))
    out.flush()
