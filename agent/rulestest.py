"""`invoice-agent rules test TESTFILE...`: run rule tests (agent/rulesinput.py) through the
agent's own decision path and compare the alert transitions with those expected.

Each test's lines go through the same Engine as `run` and `replay`: parsed by the configured
sources, merged across sources by confirmed event time as replay merges files, windows closed
and rules shown them in event time, the invoice ledger over a scratch SQLite file. Only
rules decide (no anomaly model). A failure prints expected (-) against got (+), one
transition a line, with the difference marked. Exit 0 when every test passes, 1 when one
fails, 2 when a test file cannot be used (its file, key and line named).
"""

from __future__ import annotations

import argparse
import heapq
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

# The engine and the rule loading are imported where a test runs: the command line adds
# `rules test` to every `invoice-agent --help`, which must not load them.
if TYPE_CHECKING:
    from agent.config import LoadedConfig
    from agent.detect.base import Detector
    from agent.pipeline import Engine
    from agent.rulesinput import Expected, RuleTest, Suite
    from agent.types import Event, ParseFailure, RawLine, Transition

EXIT_OK, EXIT_FAILED, EXIT_BROKEN = 0, 1, 2
TIME = "%Y-%m-%d %H:%M:%S"


@dataclass
class Run:
    """What one test's lines made the agent do."""

    transitions: list[Transition] = field(default_factory=list)
    unparsed: int = 0
    late: int = 0
    failures: list[ParseFailure] = field(default_factory=list)  # samples


def run_lines(loaded: LoadedConfig, detectors: list[Detector],
              streams: list[tuple[str, list[list[RawLine]]]], until: datetime | None = None,
              clock: Callable[[], datetime] | None = None) -> Run:
    """Lines from memory through the decision path, as `replay` runs files (agent.replay's
    engine and driver): each source's blocks of lines as one stream, sources merged by
    confirmed event time; then time advances past the last line (its window closes) and at
    least to `until`. The ledger, if configured, lives in a scratch SQLite file."""
    from agent.counting import Counts
    from agent.replay import drive, ledger_scratch, replay_engine

    counts = Counts()
    run = Run()
    with ledger_scratch(loaded) as store:
        engine = replay_engine(loaded, detectors, store, counts, clock)

        def emit() -> None:
            run.transitions.extend(engine.take())

        drive(loaded, engine, [_stream(engine, blocks) for _, blocks in streams], until,
              emit)
        run.failures = engine.drain().failures
    for (_, name), n in counts.drain().items():
        if name == "unparsed":
            run.unparsed += n
        elif name == "late":
            run.late += n
    return run


def _stream(engine: Engine, blocks: list[list[RawLine]]
            ) -> Iterator[tuple[datetime, int, Event]]:
    """One source's events as one stream in its own time: its blocks merged by event time
    (each block's lines in their order, so a block can hold a line out of order), each event
    with the time its stream confirmed."""
    from agent.types import Event

    def events(lines: list[RawLine]) -> Iterator[Event]:
        for raw in lines:
            r = engine.parse(raw)
            if isinstance(r, Event):
                yield r

    merged = heapq.merge(*(events(b) for b in blocks), key=lambda ev: ev.ts)
    for seq, ev in enumerate(merged):
        yield engine.confirm(ev), seq, ev


# -- comparing -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """A transition as a test compares it: `repeat` for a repeated notification."""

    rule: str
    state: str
    at: datetime
    labels: dict[str, str]
    severity: str
    values: dict[str, Any]
    summary: dict[str, str]

    @classmethod
    def of(cls, tr: Transition) -> "Seen":
        from agent.alerts import REPEAT

        return cls(tr.rule, "repeat" if tr.reason == REPEAT else tr.state, tr.ts,
                   dict(tr.labels), tr.severity, dict(tr.values), dict(tr.summary))


def compared(test: RuleTest, transitions: list[Transition]) -> list[Seen]:
    """The transitions a test judges: of its rules (`rules`, else those it expects, else
    all), repeats only when it asks for them."""
    rules = set(test.rules or ()) or {e.rule for e in test.expect}
    repeats = test.repeats or any(e.state == "repeat" for e in test.expect)
    return [s for s in map(Seen.of, transitions)
            if (not rules or s.rule in rules) and (repeats or s.state != "repeat")]


def settled(expected: list[Expected], got: list[Seen], suite: Suite) -> list[Seen]:
    """`got` with transitions of the same instant in the order `expected` lists them: one
    window's verdicts for several label sets (or rules) have no order of their own."""
    out = list(got)
    for i, e in enumerate(expected[:len(out)]):
        if not differences(e, out[i], suite):
            continue
        for j in range(i + 1, len(out)):
            if out[j].at != out[i].at:
                break
            if not differences(e, out[j], suite):
                out.insert(i, out.pop(j))
                break
    return out


def differences(e: Expected, s: Seen, suite: Suite) -> list[str]:
    """The fields in which `s` is not what `e` expects (empty: it matches)."""
    out = [k for k in ("rule", "state") if getattr(e, k) != getattr(s, k)]
    if e.at is not None and suite.aware(e.at) != s.at:
        out.append("at")
    if any(s.labels.get(k) != v for k, v in e.labels.items()):
        out.append("labels")
    if e.severity is not None and e.severity != s.severity:
        out.append("severity")
    if any(k not in s.values or not _same(s.values[k], v) for k, v in e.values.items()):
        out.append("values")
    if e.summary is not None and not any(e.summary in text for text in s.summary.values()):
        out.append("summary")
    return out


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, (int, float)) and isinstance(want, (int, float)) \
            and not isinstance(got, bool) and not isinstance(want, bool):
        return abs(got - want) <= 1e-9 * max(1.0, abs(want))
    if isinstance(got, (list, tuple)) and isinstance(want, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want,
                                                                        strict=True))
    return bool(got == want)


# -- one test ------------------------------------------------------------------------------

@dataclass
class Outcome:
    name: str
    ok: bool
    report: list[str]  # lines explaining a failure (or a note on a pass)


def run_test(suite: Suite, i: int) -> Outcome:
    test = suite.spec.tests[i]
    until = suite.aware(test.end) if test.end is not None else None
    now = suite.aware(test.now) if test.now is not None else until
    clock = (lambda: now) if now is not None else None
    run = run_lines(suite.loaded, suite.rules(), suite.streams(i), until, clock)
    report: list[str] = []
    ok = True
    if run.unparsed and not test.allow_unparsed:
        ok = False
        first = run.failures[0] if run.failures else None
        where = f" (first: {first.path}:{first.line_no}: {first.reason})" if first else ""
        report.append(f"{run.unparsed} input line(s) did not parse{where}; fix them or set "
                      "`allow_unparsed: true`")
    if run.late:
        report.append(f"note: {run.late} line(s) came after their window had closed (late) "
                      "and were not counted in it")
    got = settled(test.expect, compared(test, run.transitions), suite)
    if len(got) != len(test.expect) or any(
            differences(e, s, suite) for e, s in zip(test.expect, got, strict=True)):
        ok = False
        report += diff(test.expect, got, suite)
    return Outcome(test.name, ok, report)


def diff(expected: list[Expected], got: list[Seen], suite: Suite) -> list[str]:
    """Expected (-) against got (+), aligned by rule and state; a pair that differs in its
    details is marked (^) under what differs."""
    from difflib import SequenceMatcher

    lines = ["expected (-) and got (+), in order:"]
    a = [(e.rule, e.state) for e in expected]
    b = [(s.rule, s.state) for s in got]
    for _op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        es, ss = expected[i1:i2], got[j1:j2]
        for k in range(max(len(es), len(ss))):
            e = es[k] if k < len(es) else None
            s = ss[k] if k < len(ss) else None
            if e is not None and s is not None and e.rule == s.rule:
                lines += _pair(e, s, suite)
                continue
            if e is not None:
                lines.append(f"- {_text(_fields_expected(e, suite))[0]}   (expected, did not "
                             "happen)")
            if s is not None:
                lines.append(f"+ {_text(_fields_got(s, None, suite))[0]}   (not expected)")
    if not expected and not got:
        lines.append("  (nothing)")
    return lines


def _pair(e: Expected, s: Seen, suite: Suite) -> list[str]:
    """An expected transition and the one that happened in its place: one line when they
    match, else both with ^ under what differs."""
    wrong = differences(e, s, suite)
    if not wrong:
        return ["  " + _text(_fields_got(s, e, suite))[0]]
    text, marks = _text(_fields_got(s, e, suite), wrong)
    verb = "differs" if len(wrong) == 1 else "differ"
    return ["- " + _text(_fields_expected(e, suite))[0], "+ " + text,
            f"  {marks}  {', '.join(wrong)} {verb}"]


_Fields = list[tuple[str, str]]  # (field, its text)


def _fields_expected(e: Expected, suite: Suite) -> _Fields:
    out = [("rule", e.rule), ("state", e.state)]
    if e.at is not None:
        out.append(("at", "at " + suite.aware(e.at).strftime(TIME)))
    if e.labels:
        out.append(("labels", "labels " + _mapping(e.labels)))
    if e.severity is not None:
        out.append(("severity", e.severity))
    if e.values:
        out.append(("values", "values " + _mapping(e.values)))
    if e.summary is not None:
        out.append(("summary", f"summary with {e.summary!r}"))
    return out


def _fields_got(s: Seen, e: Expected | None, suite: Suite) -> _Fields:
    """A got transition, showing what `e` looks at (the labels and values it names)."""
    out = [("rule", s.rule), ("state", s.state), ("at", "at " + s.at.astimezone(
        suite.zone).strftime(TIME))]
    labels = s.labels if e is None or not e.labels else {
        k: s.labels.get(k, "(none)") for k in e.labels}
    if labels:
        out.append(("labels", "labels " + _mapping(labels)))
    if e is None or e.severity is not None:
        out.append(("severity", s.severity))
    if e is not None and e.values:
        out.append(("values", "values " + _mapping(
            {k: s.values.get(k, "(none)") for k in e.values})))
    if e is not None and e.summary is not None:
        text = s.summary.get("en") or next(iter(s.summary.values()), "")
        out.append(("summary", f"summary {text[:100]!r}"))
    return out


def _mapping(m: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in m.items()) + "}"


def _text(fields: _Fields, marked: list[str] | None = None) -> tuple[str, str]:
    """The fields on one line, and a line of ^ under the `marked` ones."""
    text, marks = "", ""
    for name, part in fields:
        if text:
            text += " "
            marks += " "
        text += part
        marks += ("^" if marked and name in marked else " ") * len(part)
    return text, marks.rstrip()


# -- the command ---------------------------------------------------------------------------

def run_files(paths: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run every test of every file; print each result; the exit code."""
    from agent.rulesinput import load_suite
    from agent.yamlfile import FileProblems

    out, err = out or sys.stdout, err or sys.stderr
    broken = passed = failed = 0
    for path in paths:
        if not Path(path).is_file():
            print(f"invoice-agent rules test: {path}: no such file", file=err)
            broken += 1
            continue
        try:
            suite = load_suite(path)
        except FileProblems as exc:
            broken += 1
            print(f"BROKEN {path}: {len(exc.problems)} problem(s):", file=err)
            for p in exc.problems:
                print(f"  {p}", file=err)
            continue
        for i in range(len(suite.spec.tests)):
            outcome = run_test(suite, i)
            passed += outcome.ok
            failed += not outcome.ok
            print(f"{'ok  ' if outcome.ok else 'FAIL'} {path}: {outcome.name}", file=out)
            for line in outcome.report:
                print(f"    {line}", file=out)
    print(f"rules test: {passed} passed, {failed} failed"
          + (f", {broken} file(s) broken" if broken else ""), file=out)
    return EXIT_BROKEN if broken else EXIT_FAILED if failed else EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    return run_files(args.files)


def cmd_check(args: argparse.Namespace) -> int:
    """`rules check` (agent/rulescheck.py), which loads the rule types when it runs."""
    from agent.rulescheck import cmd_check

    return cmd_check(args)


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `rules check` and `rules test` to the command line."""
    p = sub.add_parser("rules", parents=[common], help="check rule files; run rule tests",
                       description="Check rule files before they go live, and run rule tests "
                                   "(log lines in, alerts expected: docs/rule-tests.md).")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    c = rsub.add_parser(
        "check", parents=[common], help="load rule files against the config's sources",
        description="Load rule files (default: the config's `rules:`) against the config's "
                    "sources and print every problem as file:line: key: message, or the rules "
                    "loaded. Exit 0 ok, 1 problems, 2 usage error.")
    config_arg(c)
    c.add_argument("files", nargs="*", metavar="FILE",
                   help="rule files (default: the config's `rules:`); *.test.yaml is skipped")
    c.set_defaults(func=cmd_check)
    t = rsub.add_parser(
        "test", parents=[common], help="run rule tests: log lines in, alerts expected",
        description="Run each test of each TESTFILE through the agent's decision path and "
                    "compare the alert transitions with those expected. Exit 0 when all pass, "
                    "1 when one fails, 2 when a test file is broken.")
    t.add_argument("files", nargs="+", metavar="TESTFILE", help="rule test files (*.test.yaml)")
    t.set_defaults(func=cmd_test)
