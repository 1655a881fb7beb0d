"""Print alert transitions as one line each: the notifier of last resort and of `demo`.

2026-11-02 10:05:00+08:00 FIRING   critical upload_outage 上传超时率 100% (source=upload)
"""

from __future__ import annotations

import os
from typing import TextIO

from agent.notify.render import format_labels, message_summary
from agent.types import Transition

_RESET = "\033[0m"
_COLOURS = {
    ("firing", "critical"): "\033[1;31m",  # bold red
    ("firing", "warning"): "\033[33m",  # yellow
    ("firing", "info"): "\033[36m",  # cyan
    ("resolved", None): "\033[32m",  # green, whatever the severity
}


def format_transition(tr: Transition, language: str = "zh") -> str:
    """The plain one-line form: event time, state, severity, rule, summary, labels."""
    # Columns padded to the longest word (RESOLVED, critical) so a stream of lines aligns.
    summary = " ".join(message_summary(tr, language).split())  # one line, whatever the template
    line = (
        f"{tr.ts.isoformat(sep=' ', timespec='seconds')} {tr.state.upper():<8} "
        f"{tr.severity:<8} {tr.rule}"
    )
    if summary != tr.rule:  # a rule without a summary template falls back to its name
        line += f" {summary}"
    if tr.labels:
        line += f" ({format_labels(tr.labels)})"
    return line


def _use_colour(stream: TextIO) -> bool:
    # NO_COLOR (no-color.org) lets users opt out even on a terminal.
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def print_transition(tr: Transition, language: str, stream: TextIO) -> None:
    """Write `tr` as one line to `stream`, coloured by state and severity on a terminal."""
    line = format_transition(tr, language)
    if _use_colour(stream):
        key = ("resolved", None) if tr.state == "resolved" else (tr.state, tr.severity)
        colour = _COLOURS.get(key)
        if colour:
            line = f"{colour}{line}{_RESET}"
    stream.write(line + "\n")
    stream.flush()
