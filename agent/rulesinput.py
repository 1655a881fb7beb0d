"""Rule test files (`invoice-agent rules test`, docs/rule-tests.md): their format, loading with
every problem named by file, key and line, and the log lines a test feeds the agent.

A test file names rule files and a config (default: the shipped demo config); each of its
tests gives input lines per source (inline, from a file, or generated every N seconds) and
the alert transitions expected. Running them is agent/rulestest.py's business.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from agent.config import AgentConfig, LoadedConfig, SourceConfig, load_config
from agent.configtypes import PositiveDuration, error_message
from agent.detect.base import Detector
from agent.detect.loader import load_rules
from agent.shipped import shipped_dir
from agent.sources.files import FileSource
from agent.types import RawLine
from agent.yamlfile import FileProblems, Problem, YamlDoc, dotted, read_yaml

MAX_GENERATED = 100_000  # lines one generator block may write
DEFAULT_TS = "%Y-%m-%d %H:%M:%S"
# `{ts}`, `{ts:%H:%M:%S}`, `{n}`, `{n:05d}` in a generator's line; other braces are text
_PLACEHOLDER = re.compile(r"\{(ts|n)(?::([^{}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputBlock(_Strict):
    """Lines of one source: inline `lines`, a `file`, or a generator (`line` written `count`
    times, `every` apart, from `start`)."""

    source: str = Field(description="The configured source the lines are read as")
    lines: str | list[str] | None = Field(
        None, description="Lines exactly as the service writes them; blank lines are skipped")
    file: str | None = Field(None, description="A log file, relative to the test file")
    line: str | None = Field(None, description="Generator: the line, with {ts} and {n}")
    start: datetime | None = Field(None, description="Generator: the first line's time")
    every: PositiveDuration | None = Field(None, description="Generator: time between lines")
    count: int | None = Field(None, ge=1, le=MAX_GENERATED,
                              description="Generator: how many lines")

    @model_validator(mode="after")
    def _one_kind(self) -> "InputBlock":
        kinds = [k for k in ("lines", "file", "line") if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = ", ".join(kinds) or "none"
            raise ValueError("expected exactly one of `lines`, `file` or `line` (a generator "
                             f"with `start`, `every` and `count`); got {got}")
        timing = [k for k in ("start", "every", "count") if getattr(self, k) is not None]
        if self.line is not None and len(timing) < 3:
            missing = sorted({"start", "every", "count"} - set(timing))
            raise ValueError(f"a generator (`line`) also needs {', '.join(missing)}")
        if self.line is None and timing:
            raise ValueError(f"{', '.join(timing)} only go with `line` (a generator)")
        return self


class Expected(_Strict):
    """One alert transition a test expects."""

    rule: str
    state: Literal["firing", "resolved", "repeat"]
    at: datetime | None = Field(None, description="Event time; naive in the config's timezone")
    labels: dict[str, str] = Field(default_factory=dict, description="Compared as a subset")
    severity: Literal["info", "warning", "critical"] | None = None
    values: dict[str, Any] = Field(default_factory=dict,
                                   description="Alert values, each compared for equality")
    summary: str | None = Field(None, description="Text the summary contains (zh or en)")


class RuleTest(_Strict):
    """One test: input lines, how far time runs, and the transitions expected."""

    name: str = Field(min_length=1)
    input: list[InputBlock] = Field(min_length=1)
    end: datetime | None = Field(None, description="Time advances at least to here")
    now: datetime | None = Field(
        None, description="The host clock while the lines are read (default: `end`)")
    expect: list[Expected] = Field(default_factory=list)
    expect_none: bool = False
    rules: list[str] | None = Field(
        None, description="Rules whose transitions are compared (default: those in `expect`, "
                          "or every rule when `expect` is empty)")
    repeats: bool = Field(False, description="Compare repeat notifications too")
    allow_unparsed: bool = Field(False, description="Lines that do not parse do not fail it")

    @model_validator(mode="after")
    def _none_means_none(self) -> "RuleTest":
        if self.expect_none and self.expect:
            raise ValueError("`expect_none: true` with a non-empty `expect`: give one of them")
        return self


class RuleTestFile(_Strict):
    """A whole test file."""

    rule_files: list[str] = Field(min_length=1, description="Relative to the test file")
    config: str | None = Field(None, description="Relative to the test file; default: the "
                                                 "shipped demo config")
    tests: list[RuleTest] = Field(min_length=1)


@dataclass(frozen=True)
class Suite:
    """A test file loaded and checked against its config and rules."""

    path: str
    doc: YamlDoc
    spec: RuleTestFile
    loaded: LoadedConfig
    rule_globs: list[str]
    rule_names: list[str]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.loaded.config.timezone)

    def aware(self, ts: datetime) -> datetime:
        """A time from the test file: naive ones are in the config's timezone."""
        return ts.replace(tzinfo=self.zone) if ts.tzinfo is None else ts.astimezone(self.zone)

    def rules(self) -> list[Detector]:
        """The rules, built afresh (a detector remembers what it was shown)."""
        return build_rules(self.loaded, self.rule_globs)

    def streams(self, i: int) -> list[tuple[str, list[list[RawLine]]]]:
        """Test `i`'s input blocks per source, in the config's source order."""
        by_source: dict[str, list[list[RawLine]]] = {}
        for k, block in enumerate(self.spec.tests[i].input):
            by_source.setdefault(block.source, []).append(self._lines(i, k, block))
        return [(s.name, by_source[s.name]) for s in self.loaded.config.sources
                if s.name in by_source]

    def _lines(self, i: int, k: int, block: InputBlock) -> list[RawLine]:
        loc = ("tests", i, "input", k)
        if block.file is not None:
            return read_log(self._source(block.source), self.relative(block.file))
        if block.lines is not None:
            return self._inline(loc, block)
        assert block.line is not None and block.start is not None
        assert block.every is not None and block.count is not None
        first = self.aware(block.start).astimezone(UTC)
        line_no = self.doc.line_of(loc + ("line",)) or 0
        return [RawLine(block.source, self.path, line_no,
                        fill(block.line, (first + n * block.every).astimezone(self.zone), n + 1))
                for n in range(block.count)]

    def _inline(self, loc: tuple[Any, ...], block: InputBlock) -> list[RawLine]:
        """Inline lines, each numbered by its line in the test file where that can be told (a
        `|` block or a list), so an alert about one line points at it."""
        assert block.lines is not None
        if isinstance(block.lines, list):
            return [RawLine(block.source, self.path,
                            self.doc.line_of(loc + ("lines", j)) or 0, text)
                    for j, text in enumerate(block.lines) if text.strip()]
        key_line = self.doc.line_of(loc + ("lines",)) or 0
        literal = _style(self.doc, loc + ("lines",)) == "|"
        return [RawLine(block.source, self.path, key_line + 1 + j if literal else key_line, text)
                for j, text in enumerate(block.lines.splitlines()) if text.strip()]

    def _source(self, name: str) -> SourceConfig:
        return next(s for s in self.loaded.config.sources if s.name == name)

    def relative(self, p: str) -> str:
        """A path from the test file, relative to its folder."""
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), os.path.expanduser(p))


def build_rules(loaded: LoadedConfig, globs: list[str]) -> list[Detector]:
    """The rule files' rules as a replay builds them (no anomaly model); FileProblems names
    what is wrong with them."""
    c = loaded.config
    return load_rules(globs, [s.name for s in c.sources], c.window, batch=True,
                      ledger=c.ledger, timezone=c.timezone)


def fill(template: str, ts: datetime, n: int) -> str:
    """A generator's line: `{ts}` / `{ts:FORMAT}` (strftime; `epoch`, `epoch_ms`) and `{n}` /
    `{n:SPEC}` (the line's number in its block, from 1) replaced; other braces kept."""

    def one(m: re.Match[str]) -> str:
        spec = m.group(2)
        if m.group(1) == "n":
            return format(n, spec or "")
        if spec == "epoch":
            return str(int(ts.timestamp()))
        if spec == "epoch_ms":
            return str(int(ts.timestamp() * 1000))
        return ts.strftime(spec or DEFAULT_TS)

    return _PLACEHOLDER.sub(one, template)


def read_log(source: SourceConfig, path: str) -> list[RawLine]:
    """Every line of a log file, read as the agent reads the source (its encoding, its line
    length limit); a last line without its newline is a line too."""
    reader = FileSource(source.name, [glob.escape(path)], encoding=source.encoding,
                        max_line_bytes=source.max_line_bytes)
    out: list[RawLine] = []
    try:
        while True:
            lines = reader.poll(50000) or reader.flush()
            if not lines:
                return out
            out += lines
    finally:
        reader.close()


def shipped_config() -> LoadedConfig:
    """The shipped demo config, its `rules:` pointing at the shipped rule files (they lie
    beside it in a checkout, elsewhere in an installed package)."""
    path = shipped_dir("config") / "agent.yaml"
    doc = read_yaml(path)
    data = dict(doc.data)
    data["rules"] = [str(shipped_dir("rules") / "*.yaml")]
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise FileProblems([Problem(str(path), "", str(exc))]) from None
    return LoadedConfig(config, path, [str(path)], [doc])


def load_suite(path: str) -> Suite:
    """Read and check a test file, its config and its rules; raise FileProblems naming every
    problem (file, key, line and what was expected)."""
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise FileProblems([Problem(path, "", "expected a mapping with `rule_files:` and "
                                              "`tests:`", doc.line_of(()))])
    try:
        spec = RuleTestFile.model_validate(doc.data)
    except ValidationError as exc:
        found = [_problem(doc, _data_loc(doc, e["loc"]), error_message(dict(e), False))
                 for e in exc.errors()]
        raise FileProblems(list(dict.fromkeys(found))) from None
    here = os.path.dirname(os.path.abspath(path))
    problems: list[Problem] = []
    globs = []
    for i, entry in enumerate(spec.rule_files):
        g = os.path.join(here, os.path.expanduser(entry))
        if not any(os.path.isfile(f) for f in glob.glob(g)):
            problems.append(_problem(doc, ("rule_files", i),
                                     f"rule file {entry!r} not found (looked in {here})"))
        globs.append(g)
    if spec.config is None:
        loaded = shipped_config()
    else:
        cfg = os.path.join(here, os.path.expanduser(spec.config))
        if not os.path.isfile(cfg):
            raise FileProblems([*problems, _problem(doc, ("config",),
                                                    f"config file {spec.config!r} not found "
                                                    f"(looked in {here})")])
        loaded = load_config(cfg)
    if problems:
        raise FileProblems(problems)
    # FileProblems here: the rule files' own problems
    suite = Suite(path, doc, spec, loaded, globs, [r.name for r in build_rules(loaded, globs)])
    problems += _test_problems(suite)
    if problems:
        raise FileProblems(problems)
    return suite


def _test_problems(suite: Suite) -> list[Problem]:
    """What the schema cannot know: sources, files and rules the tests name must exist."""
    doc, sources = suite.doc, [s.name for s in suite.loaded.config.sources]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, test in enumerate(suite.spec.tests):
        base = ("tests", i)
        if test.name in seen:
            problems.append(_problem(doc, base + ("name",), f"test name {test.name!r} already "
                                     f"used by tests.{seen[test.name]}"))
        seen.setdefault(test.name, i)
        for k, block in enumerate(test.input):
            loc = base + ("input", k)
            if block.source not in sources:
                problems.append(_problem(doc, loc + ("source",), _unknown(
                    "source", block.source, sources)))
            if block.file is not None and not os.path.isfile(suite.relative(block.file)):
                problems.append(_problem(doc, loc + ("file",), f"log file {block.file!r} not "
                                         "found (relative to the test file)"))
            if block.line is not None:
                try:
                    fill(block.line, datetime(2026, 1, 1, tzinfo=UTC), 1)
                except ValueError as exc:
                    problems.append(_problem(doc, loc + ("line",), f"bad placeholder: {exc} "
                                             "(expected {ts}, {ts:%H:%M:%S}, {n} or {n:05d})"))
        for j, e in enumerate(test.expect):
            if e.rule not in suite.rule_names:
                problems.append(_problem(doc, base + ("expect", j, "rule"), _unknown(
                    "rule", e.rule, suite.rule_names)))
        for j, name in enumerate(test.rules or ()):
            if name not in suite.rule_names:
                problems.append(_problem(doc, base + ("rules", j), _unknown(
                    "rule", name, suite.rule_names)))
    return problems


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {name!r}{hint}; expected one of {', '.join(known) or 'none'}"


def _problem(doc: YamlDoc, loc: tuple[Any, ...], message: str) -> Problem:
    return Problem(doc.path, dotted(loc), message, doc.line_of(loc))


def _data_loc(doc: YamlDoc, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error's key path without pydantic's type tags (`lines.str`, `lines.list[str]`):
    past a value that is not a mapping or a list, the rest names no key of the file."""
    data, out = doc.data, []
    for part in loc:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part] if part < len(data) else None
        else:
            break
        out.append(part)
    return tuple(out)


def _style(doc: YamlDoc, loc: tuple[Any, ...]) -> str | None:
    """The scalar style (`|`, `>`, quotes) of the value at `loc`, None if not a scalar."""
    node = doc.node
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node.style if isinstance(node, yaml.ScalarNode) else None
