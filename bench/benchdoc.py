"""The generated section of docs/benchmarks.md: rendering bench/run_all.py's outcomes, and
rewriting the text between the markers while keeping the hand-written rest.

Inside the section each benchmark is a block between `<!-- bench:block NAME ... -->` and
`<!-- bench:block-end -->`; a run of some benchmarks (`--only`) replaces their blocks and
keeps the others, each with the date it ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
BLOCK = re.compile(r"<!-- bench:block (?P<name>\w+) (?P<meta>[^>]*)-->\n(?P<body>.*?)"
                   r"<!-- bench:block-end -->\n", re.DOTALL)


class Outcome(Protocol):
    """What bench/run_all.py knows of one benchmark's run."""

    bench: Any  # .name, .about, .sizes
    status: str
    command: str
    seconds: float
    data: dict
    error: str


@dataclass(frozen=True)
class RunInfo:
    started: datetime
    machine: str
    revision: str
    quick: bool
    seconds: float
    command: str


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def number(x: float | int | None) -> str:
    """A figure as people read it: thousands separated, three significant digits or so."""
    if x is None:
        return "–"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 100:
        return f"{int(x):,}"
    v = abs(x)
    if v >= 1000:
        return f"{x:,.0f}"
    if v >= 100:
        return f"{x:.0f}"
    if v >= 10:
        return f"{x:.1f}"
    if v >= 0.1 or v == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def ratio(x: float | None) -> str:
    if x is None:
        return "–"
    if abs(x) >= 10:
        return f"{x:,.1f}"
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(data: dict) -> list[str]:
    out = ["| figure | value | baseline (same run) | ratio |", "|---|---:|---|---:|"]
    for row in data["rows"]:
        unit = row.get("unit") or ""
        base = row.get("baseline") or ""
        if row.get("baseline_value") is not None:
            base = f"{base}: {number(row['baseline_value'])} {unit}".strip()
        out.append(f"| {cell(row['figure'])} | {number(row.get('value'))} {cell(unit)} | "
                   f"{cell(base)} | {ratio(row.get('ratio'))} |")
    for skipped in data.get("skipped", []):
        out.append(f"| {cell(skipped['figure'])} | skipped: {cell(skipped['why'])} | | |")
    return out


def block(o: Outcome, info: RunInfo) -> str:
    when = info.started.strftime("%Y-%m-%d %H:%M UTC")
    figures = len(o.data.get("rows", [])) if o.status == "ok" else 0
    meta = (f"status={o.status} figures={figures} took={o.seconds:.0f} "
            f"at={info.started:%Y-%m-%dT%H:%MZ}")
    lines = [f"<!-- bench:block {o.bench.name} {meta} -->",
             f"### {o.bench.name} — {o.bench.about}", ""]
    size = "quick sizes (a smoke test)" if info.quick else "full sizes"
    lines.append(f"`{o.command}`  ")
    lines.append(f"{o.status}, {duration(o.seconds)}; {when}; {size}; {info.machine}; "
                 f"{info.revision}")
    lines.append("")
    if o.status == "ok":
        lines += table(o.data)
        notes = list(o.data.get("notes", []))
        if o.bench.sizes and not info.quick:
            notes.insert(0, f"Sizes: {o.bench.sizes}.")
        if notes:
            lines.append("")
            lines += [f"- {n}" for n in notes]
    elif o.status == "failed":
        lines += ["**Failed.** The end of its output:", "", "```", o.error, "```"]
    else:
        lines.append(f"Skipped: {o.error}.")
    lines.append("")
    lines.append("<!-- bench:block-end -->")
    return "\n".join(lines) + "\n"


def section(info: RunInfo, blocks: dict[str, str], order: list[str]) -> str:
    known = [n for n in order if n in blocks] + sorted(set(blocks) - set(order))
    summary = ["| benchmark | result | took | ran |", "|---|---|---:|---|"]
    for name in known:
        m = BLOCK.match(blocks[name])
        meta = dict(kv.split("=", 1) for kv in m.group("meta").split()) if m else {}
        figures = int(meta.get("figures", 0))
        status = meta.get("status", "?") + (
            f", {figures} figure{'s' if figures > 1 else ''}" if figures else "")
        summary.append(f"| `{name}` | {status} | "
                       f"{duration(float(meta.get('took', 0)))} | "
                       f"{meta.get('at', '?').replace('T', ' ').rstrip('Z')} UTC |")
    head = [
        START,
        "## Latest run (generated)",
        "",
        "Written by `python bench/run_all.py` (see \"Running the benchmarks\" below); edit the",
        "text outside the `bench:` markers only, and rerun instead of editing figures.",
        "",
        f"Last run: {info.started:%Y-%m-%d %H:%M} UTC, `{info.command}`,",
        f"{'quick sizes (a smoke test: not figures to compare)' if info.quick else 'full sizes'}, "
        f"{duration(info.seconds)};",
        f"{info.machine}; {info.revision}.",
        "Each ratio is value / baseline, both measured in the same run.",
        "",
        *summary,
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(blocks[n] for n in known) + END


def split(text: str) -> tuple[str, str, str]:
    """(before, generated, after) of a document; without markers the section goes after the
    title and the paragraphs before the first `## ` heading."""
    if START in text and END in text:
        before, _, rest = text.partition(START)
        generated, _, after = rest.partition(END)
        return before, generated, after
    first = re.search(r"(?m)^## ", text)
    if first is None:
        return (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n"), "", "\n"
    return text[:first.start()], "", "\n\n" + text[first.start():]


def write(out: Path, info: RunInfo, outcomes: list[Outcome], order: list[str]) -> None:
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    before, generated, after = split(text)
    blocks = {m.group("name"): m.group(0) for m in BLOCK.finditer(generated)}
    for o in outcomes:
        blocks[o.bench.name] = block(o, info)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(before + section(info, blocks, order) + after, encoding="utf-8")
