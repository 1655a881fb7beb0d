"""The operator configuration: one schema, declared once, validated at load.

Layers, later ones winning key by key: built-in defaults, the main file (`-c FILE`), then
`conf.d/*.yaml` beside it in sorted order. Relative paths resolve against the main file's
folder. Every problem names the file, the key path, the line and what was expected, and all
problems are reported together.
"""

from __future__ import annotations

import codecs
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.types import READABLE_FIELDS
from agent.yamlfile import FileProblems, Problem, YamlDoc, dotted, read_yaml

CANONICAL_FIELDS = READABLE_FIELDS  # what `fields:` and `values:` may name
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> timedelta:
    """'30s', '5m', '2h', '1d', '250ms' or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 2h or 1d")
    try:
        if isinstance(value, (int, float)):
            return timedelta(seconds=value)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if m:
                return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    raise ValueError(f"expected a duration like 30s, 5m, 2h or 1d, got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """One log source: files matched by globs, parsed in one format."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="Unique name, used in rules")
    paths: list[str] = Field(min_length=1, description="Globs; relative to the config file")
    format: Literal["json", "regex", "syslog"] = "json"
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
        bad = sorted(set(v) - set(CANONICAL_FIELDS))
        if bad:
            raise ValueError(f"unknown canonical field(s) {', '.join(bad)}; expected some of "
                             f"{', '.join(CANONICAL_FIELDS)}")
        return v

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _regex_needs_pattern(self) -> "SourceConfig":
        if self.format == "regex" and not self.pattern:
            raise ValueError("format regex needs a `pattern` with named groups")
        return self


class UrlTarget(_Model):
    url: str
    tags: list[str] = Field(default_factory=list)


class NotifyConfig(_Model):
    """Where alerts go. With no target, alerts are printed to the console."""

    urls: list[str | UrlTarget] = Field(
        default_factory=list, description="Apprise URLs; ${ENV} is expanded")
    urls_file: str | None = Field(None, description="File with one Apprise URL per line (secrets)")
    config: str | None = Field(None, description="Apprise config file (YAML/TEXT) with tags")
    routes: dict[Literal["info", "warning", "critical"], list[str]] = Field(
        default_factory=dict, description="severity -> Apprise tags")
    language: Literal["zh", "en"] = "zh"
    repeat_interval: Duration = Field(timedelta(hours=4), description="Re-notify a firing alert")
    timeout: Duration = Field(timedelta(seconds=10), description="Per-delivery timeout")


class AgentConfig(_Model):
    """The whole agent configuration."""

    state_dir: str = Field("state", description="SQLite state; relative to the config file")
    timezone: str = Field("Asia/Shanghai", description="For timestamps without an offset")
    window: Duration = Field(timedelta(minutes=5), description="Tumbling window length")
    lateness: Duration = Field(timedelta(seconds=30), description="Wait for late lines")
    retention: Duration = Field(timedelta(days=14), description="How long windows are kept")
    poll_interval: Duration = Field(timedelta(seconds=1), description="Fallback file poll")
    max_future: Duration = Field(
        timedelta(hours=1),
        description="Lines stamped further ahead of the host clock are refused as unparsed "
                    "(a wrong time zone or clock), so they cannot move time forward")
    batch_lines: int = Field(20000, ge=1, description="Lines per checkpointed batch")
    sources: list[SourceConfig] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=lambda: ["rules/*.yaml"])
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

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

    @field_validator("poll_interval", "retention", "max_future")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be more than 0")
        return v

    @field_validator("lateness")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v < timedelta(0):
            raise ValueError("must not be negative")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> "AgentConfig":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(dupes)} repeated")
        return self


class LoadedConfig:
    """A validated config plus where it came from; paths already absolute."""

    def __init__(self, config: AgentConfig, path: Path, files: list[str],
                 docs: list[YamlDoc] | None = None):
        self.config = config
        self.path = path
        self.base = path.parent
        self.files = files
        self._docs = docs or []

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
            url = _ENV.sub(lambda m: os.environ[m.group(1)], raw)
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
            problems.append(Problem(doc.path, dotted(loc), _message(err), doc.line_of(loc)))
        # a missing log folder is worth reporting alongside the schema problems
        problems += _check_paths(path.parent, merged.get("sources"), docs)
        raise FileProblems(problems) from None
    loaded = LoadedConfig(config, path, [d.path for d in docs], docs)
    problems += _check_paths(path.parent, [s.model_dump() for s in config.sources], docs)
    problems += _check_rule_files(loaded, docs)
    if problems:
        raise FileProblems(problems)
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


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] not in ("value_error",) and "input" in err and not isinstance(
            err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return msg


def _check_paths(base: Path, sources: Any, docs: list[YamlDoc]) -> list[Problem]:
    """A log folder that does not exist is almost always a typo: say so at load."""
    problems: list[Problem] = []
    if not isinstance(sources, list):
        return problems
    for i, src in enumerate(sources):
        paths = src.get("paths") if isinstance(src, dict) else None
        if not isinstance(paths, list):
            continue
        for j, pattern in enumerate(paths):
            if not isinstance(pattern, str):
                continue
            folder = Path(str(base / os.path.expanduser(pattern))).parent
            if any(ch in str(folder) for ch in "*?["):
                continue
            if not folder.is_dir():
                loc = ("sources", i, "paths", j)
                doc = _doc_for(docs, loc) or docs[0]
                problems.append(Problem(doc.path, dotted(loc),
                                        f"log folder {folder} does not exist",
                                        doc.line_of(loc)))
    return problems


def _check_rule_files(loaded: LoadedConfig, docs: list[YamlDoc]) -> list[Problem]:
    """A rules entry naming one file (no wildcard) that is not there would load no rule at all,
    silently; a glob matching nothing is fine (an empty rules.d)."""
    problems = []
    pairs = zip(loaded.config.rules, loaded.rule_globs(), strict=True)
    for i, (pattern, resolved) in enumerate(pairs):
        if any(ch in pattern for ch in "*?[") or Path(resolved).is_file():
            continue
        loc = ("rules", i)
        doc = _doc_for(docs, loc) or docs[0]
        problems.append(Problem(doc.path, dotted(loc), f"rules file {resolved} not found",
                                doc.line_of(loc)))
    return problems
