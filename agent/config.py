"""The operator configuration: one schema, declared once, validated at load.

Layers, later ones winning key by key: built-in defaults, the main file (`-c FILE`), then
`conf.d/*.yaml` beside it in sorted order. Relative paths resolve against the main file's
folder. Every problem names the file, the key path, the line and what was expected, and all
problems are reported together.
"""

from __future__ import annotations

import codecs
import glob
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.configsections import HttpConfig, JournaldOptions, NotifyConfig
from agent.configtypes import (
    CommitInterval,
    Duration,
    NonNegativeDuration,
    PositiveDuration,
    ReadInterval,
    error_message,
    parse_duration,
)
from agent.ledger.config import LedgerConfig, source_problems
from agent.model.config import ModelConfig
from agent.parse.regex_lines import MATCH_TIMEOUT, nested_quantifier
from agent.routing.config import InhibitRule, MaintenanceWindows
from agent.secrets import read_secret, with_password
from agent.types import READABLE_FIELDS
from agent.yamlfile import FileProblems, Problem, YamlDoc, dotted, read_yaml

__all__ = ["CANONICAL_FIELDS", "AgentConfig", "Duration", "LoadedConfig", "NotifyConfig",
           "SourceConfig", "check_canonical", "load_config", "parse_duration"]

CANONICAL_FIELDS = READABLE_FIELDS  # what `fields:` and `values:` may name
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WILDCARDS = "*?["


def check_canonical(names: Iterable[str]) -> list[str]:
    """The names that are not canonical event fields, sorted; empty when all are."""
    return sorted(set(names) - set(CANONICAL_FIELDS))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """One log source: files matched by globs, parsed in one format."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="Unique name, used in rules")
    paths: list[str] = Field(default_factory=list,
                             description="Globs; relative to the config file")
    format: Literal["json", "regex", "syslog", "journald"] = "json"
    journald: JournaldOptions | None = Field(None, description="format journald: what to read")
    encoding: str = Field("utf-8", description="Any Python codec: utf-8, gbk, gb18030, ...")
    start_at: Literal["beginning", "end"] = Field(
        "beginning", description="Where to start in a file seen for the first time")
    event: str | None = Field(None, description="Constant event kind for every line")
    fields: dict[str, str] = Field(
        default_factory=dict, description="canonical field -> the log's field or group name")
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="canonical field -> {log word: canonical value}")
    pattern: str | None = Field(None, description="format regex: named groups")
    timestamp_format: str | None = Field(None, description="strptime format of the timestamp")
    max_line_bytes: int = Field(65536, ge=256, description="Longer lines are cut and counted")

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (expected a Python codec such as utf-8, "
                             "gbk or gb18030)") from None
        if codecs.lookup(v).name.startswith("utf-16") or codecs.lookup(v).name.startswith("utf-32"):
            raise ValueError("utf-16/utf-32 logs are not supported (lines are split on bytes)")
        return v

    @field_validator("fields", "values")
    @classmethod
    def _canonical_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = check_canonical(v)
        if bad:
            raise ValueError(f"unknown canonical field(s) {', '.join(bad)}; expected some of "
                             f"{', '.join(CANONICAL_FIELDS)}")
        return v

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                regex.compile(v)  # what the parser compiles it with
            except regex.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _regex_needs_pattern(self) -> "SourceConfig":
        if self.format == "regex" and not self.pattern:
            raise ValueError("format regex needs a `pattern` with named groups")
        if self.format == "journald" and self.paths:
            raise ValueError("a journald source reads the journal, not `paths` (journal files: "
                             "`journald: {files: [...]}`)")
        if self.format != "journald" and not self.paths:
            raise ValueError("`paths` needs at least one glob (or `format: journald`)")
        return self


class AgentConfig(_Model):
    """The whole agent configuration."""

    state_dir: str = Field("state", description="SQLite state; relative to the config file")
    timezone: str = Field("Asia/Shanghai", description="For timestamps without an offset")
    window: Duration = Field(timedelta(minutes=5), description="Tumbling window length")
    lateness: NonNegativeDuration = Field(timedelta(seconds=30), description="Wait for late lines")
    retention: PositiveDuration = Field(timedelta(days=14), description="How long windows are kept")
    poll_interval: PositiveDuration = Field(timedelta(seconds=1), description="Fallback file poll")
    max_future: PositiveDuration = Field(
        timedelta(hours=1),
        description="Lines stamped further ahead of the host clock are refused as unparsed "
                    "(a wrong time zone or clock), so they cannot move time forward")
    batch_lines: int = Field(20000, ge=1, description="Lines read per step of the loop")
    commit_interval: CommitInterval = Field(
        timedelta(milliseconds=200),
        description="The daemon commits what it read at most this often (alert changes and "
                    "notifications at once); a crash reads the lines since the last commit "
                    "again")
    commit_lines: int = Field(20000, ge=1, le=1_000_000, strict=True,
                              description="...or as soon as this many lines were read since "
                                          "the last commit (a backlog catching up)")
    read_interval: ReadInterval = Field(
        timedelta(milliseconds=100),
        description="While files keep growing, they are read at most this often: a busy log "
                    "is read in larger batches, at less CPU per line. A line after a quiet "
                    "spell is read at once; 0s reads at every write")
    sources: list[SourceConfig] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=lambda: ["rules/*.yaml"])
    notify: NotifyConfig = Field(default_factory=lambda: NotifyConfig.model_validate({}))
    ledger: LedgerConfig | None = Field(None, description="Invoice ledger (agent/ledger/)")
    model: ModelConfig | None = Field(
        None, description="Anomaly model scoring every closed time slot (agent/model/)")
    http: HttpConfig | None = Field(
        None, description="/healthz, /metrics and /status on 127.0.0.1 (off when absent)")
    inhibit: list[InhibitRule] = Field(
        default_factory=list,
        description="Alerts that mute others while they fire (an outage mutes its effects)")
    maintenance: MaintenanceWindows = Field(
        default_factory=list, description="Planned maintenance: matching alerts not notified")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (expected e.g. Asia/Shanghai)") from None
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("window must be at least 1s")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> "AgentConfig":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(dupes)} repeated")
        return self


class LoadedConfig:
    """A validated config plus where it came from; paths already absolute.

    `warnings` are things worth telling the operator that do not stop the agent (a log folder
    that does not exist yet, no sources, a pattern prone to slow matching).
    """

    def __init__(self, config: AgentConfig, path: Path, files: list[str],
                 docs: list[YamlDoc] | None = None, warnings: list[Problem] | None = None):
        self.config = config
        self.path = path
        self.base = path.parent
        self.files = files
        self._docs = docs or []
        self.warnings: list[Problem] = list(warnings or [])

    def where(self, loc: tuple[Any, ...]) -> tuple[str, int | None]:
        """The file (and line) that set the key path `loc`: the last layer holding it."""
        doc = _doc_for(self._docs, loc)
        return (doc.path, doc.line_of(loc)) if doc is not None else (str(self.path), None)

    def resolve(self, p: str) -> str:
        return str(self.base / os.path.expanduser(p))

    @property
    def state_dir(self) -> Path:
        return Path(self.resolve(self.config.state_dir))

    def source_globs(self, source: SourceConfig) -> list[str]:
        return [self.resolve(p) for p in source.paths]

    def rule_globs(self) -> list[str]:
        return [self.resolve(p) for p in self.config.rules]

    def notify_urls(self) -> list[str | dict[str, Any]]:
        """Target URLs with ${ENV} expanded; raises FileProblems naming a missing variable."""
        n = self.config.notify
        out: list[str | dict[str, Any]] = []
        problems: list[Problem] = []
        for i, u in enumerate(n.urls):
            raw = u if isinstance(u, str) else u.url
            missing = [v for v in _ENV.findall(raw) if v not in os.environ]
            if missing:
                file, line = self.where(("notify", "urls", i))
                problems.append(Problem(file, f"notify.urls.{i}",
                                        f"environment variable {missing[0]} is not set", line))
                continue
            url: str | None = _ENV.sub(lambda m: os.environ[m.group(1)], raw)
            if not isinstance(u, str) and u.password_file and url is not None:
                secret, why = read_secret(self.resolve(u.password_file))
                if secret is not None:
                    url, why = with_password(url, secret)
                if why:
                    file, line = self.where(("notify", "urls", i, "password_file"))
                    problems.append(Problem(file, f"notify.urls.{i}.password_file", why, line))
                    continue
            assert url is not None
            out.append(url if isinstance(u, str) else {"url": url, "tags": list(u.tags)})
        if n.urls_file:
            f = self.resolve(n.urls_file)
            try:
                lines = Path(f).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                file, line = self.where(("notify", "urls_file"))
                problems.append(Problem(file, "notify.urls_file",
                                        f"cannot read {f}: {exc.strerror or exc}", line))
            else:
                out.extend(s.strip() for s in lines if s.strip() and not s.startswith("#"))
        if problems:
            raise FileProblems(problems)
        return out

    def apprise_config(self) -> str | None:
        c = self.config.notify.config
        return self.resolve(c) if c else None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v  # lists replace: a layer that sets `sources` means those sources
    return out


def _layers(path: Path) -> list[YamlDoc]:
    docs = [read_yaml(path)]
    confd = path.parent / "conf.d"
    if confd.is_dir():
        docs += [read_yaml(p) for p in sorted(confd.glob("*.yaml"))]
    return docs


def load_config(path: str | Path) -> LoadedConfig:
    """Load and validate the layered config; raise FileProblems listing every problem."""
    path = Path(path).absolute()
    if not path.is_file():
        raise FileProblems([Problem(str(path), "", "config file not found")])
    docs = _layers(path)
    problems: list[Problem] = []
    merged: dict[str, Any] = {}
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(Problem(doc.path, "", "expected a mapping of settings at the top",
                                    doc.line_of(())))
            continue
        merged = _merge(merged, doc.data)
    if problems:
        raise FileProblems(problems)
    try:
        config = AgentConfig.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
            doc = _doc_for(docs, loc) or docs[0]
            message = error_message(dict(err), secret=loc[:1] == ("notify",))
            problems.append(Problem(doc.path, dotted(loc), message, doc.line_of(loc)))
        raise FileProblems(problems) from None
    loaded = LoadedConfig(config, path, [d.path for d in docs], docs)
    problems += _check_rule_files(loaded, docs)
    if config.ledger is not None:
        problems += [_problem(docs, loc, msg) for loc, msg in
                     source_problems(config.ledger, [s.name for s in config.sources])]
    if problems:
        raise FileProblems(problems)
    loaded.warnings = _warnings(loaded, docs)
    return loaded


def _doc_for(docs: list[YamlDoc], loc: tuple[Any, ...]) -> YamlDoc | None:
    """The layer a key path came from: the last one holding the longest prefix of it.

    The full path first (a bad value, an unknown key); then shorter prefixes (a required key
    missing from the mapping that a layer did set).
    """
    for n in range(len(loc), 0, -1):
        for d in reversed(docs):
            if d.has(loc[:n]):
                return d
    return None


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's name into the location ("str", "UrlTarget")
    return isinstance(part, str) and (part in ("str", "UrlTarget") or part.startswith("function-"))


def _problem(docs: list[YamlDoc], loc: tuple[Any, ...], message: str) -> Problem:
    doc = _doc_for(docs, loc) or docs[0]
    return Problem(doc.path, dotted(loc), message, doc.line_of(loc))


def _warnings(loaded: LoadedConfig, docs: list[YamlDoc]) -> list[Problem]:
    """What is worth saying at `check` and at start, but must not stop the agent.

    A missing log folder is a warning, not an error: the daemon tails it once it appears, and
    refusing to start made systemd's Restart=on-failure a restart loop.
    """
    sources = loaded.config.sources
    if not sources:
        return [_problem(docs, ("sources",), "no sources configured: nothing is watched")]
    found = []
    missing: set[Path] = set()  # each folder once, at the first path in it
    for i, src in enumerate(sources):
        for j, resolved in enumerate(loaded.source_globs(src)):
            folder = Path(resolved).parent
            if folder in missing or any(ch in str(folder) for ch in _WILDCARDS):
                continue
            if not folder.is_dir():
                missing.add(folder)
                found.append(_problem(docs, ("sources", i, "paths", j),
                                      f"log folder {folder} does not exist (yet): its logs "
                                      "are read once it appears"))
        shape = nested_quantifier(src.pattern) if src.pattern else None
        if shape:
            found.append(_problem(docs, ("sources", i, "pattern"),
                                  f"pattern repeats a repetition, {shape}: a line that almost "
                                  f"matches can take exponential time (each line gets at most "
                                  f"{MATCH_TIMEOUT:g} s, then counts as unparsed)"))
    return found


def _glob_root(resolved: str) -> Path:
    """The folder a glob looks in: its longest leading part without wildcards."""
    root = Path(resolved).parent
    while any(ch in root.name for ch in _WILDCARDS):
        root = root.parent
    return root


def _check_rule_files(loaded: LoadedConfig, docs: list[YamlDoc]) -> list[Problem]:
    """Every rules entry, a file or a glob, must match at least one file: one that matches
    nothing loads no rule at all, and `check` would pass a config that watches nothing."""
    problems = []
    pairs = zip(loaded.config.rules, loaded.rule_globs(), strict=True)
    for i, (pattern, resolved) in enumerate(pairs):
        if any(os.path.isfile(f) for f in glob.glob(resolved)):
            continue
        what = "matches no file" if any(ch in pattern for ch in _WILDCARDS) else "not found"
        problems.append(_problem(docs, ("rules", i),
                                 f"rules {pattern!r} {what} (looked in {_glob_root(resolved)})"))
    return problems
