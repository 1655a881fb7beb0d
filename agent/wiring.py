"""Building the agent from its config: the one place `run`, `replay`, `check`, `demo` and
reload load config and rules and build parsers, detectors, sources and senders.

`check` passing means `run` starts: both go through `load_all`, which builds every part once
and reports every problem at once (FileProblems).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from agent.config import LoadedConfig, load_config
from agent.configsections import JournaldOptions
from agent.counting import Counts
from agent.detect.base import BuildContext, Detector
from agent.detect.loader import load_rules
from agent.ledger.book import Ledger
from agent.parse import build_parser
from agent.pipeline import Engine, parse_spec
from agent.sources.position import FileCheckpoint
from agent.store import FileOffset, LedgerChanges, Store
from agent.yamlfile import FileProblems, Problem

# What only the running agent builds (the sender, the sources) is imported where it is
# built: `check` and `replay` do not pay for Apprise they never send through.
if TYPE_CHECKING:
    from agent.notify.sender import AppriseSender, TargetProblems
    from agent.notify.templating import NoticeRenderer
    from agent.sources.files import FileSource
    from agent.sources.journald import JournalSource

log = logging.getLogger("invoice_agent")


def load_all(config_path: str | Path, notify: bool = True, batch: bool = False,
             model: bool = True, model_path: str | Path | None = None
             ) -> tuple[LoadedConfig, list[Detector]]:
    """Config and rules, validated together, and every part built once as `run` builds it;
    FileProblems lists everything wrong. `notify=False` (replay, demo) skips loading the
    notification targets, which they never use; `batch` builds detectors for a replay.
    The anomaly model (config `model:`, or `model_path`) joins the detectors when `model`;
    a model that does not fit is logged and left out: the agent runs on its rules."""
    loaded = load_config(config_path)
    problems: list[Problem] = []
    try:
        rules = load_rules(loaded.rule_globs(), [s.name for s in loaded.config.sources],
                           loaded.config.window, batch=batch, ledger=loaded.config.ledger,
                           timezone=loaded.config.timezone)
    except FileProblems as exc:
        problems += exc.problems
        rules = []
    problems += _runtime_problems(loaded, notify)
    if problems:
        raise FileProblems(problems)
    if model:
        rules += build_model(loaded, batch, model_path)
    return loaded, rules


def context(loaded: LoadedConfig, batch: bool = False) -> BuildContext:
    c = loaded.config
    return BuildContext(tuple(s.name for s in c.sources), c.window, batch, ledger=c.ledger,
                        timezone=c.timezone)


def build_model(loaded: LoadedConfig, batch: bool = False,
                path: str | Path | None = None) -> list[Detector]:
    """The model detector, when the config has a model or `path` names one (replay --model);
    [] after logging why when the model file does not fit the config."""
    cfg = loaded.config.model
    if cfg is None and path is None:
        return []
    if path is not None:
        path = Path(path).absolute()  # given on the command line: relative to where we are
    from agent.detect.model import build_model_detector
    from agent.model.config import ModelConfig
    from agent.model.files import ModelRefused

    try:
        return [build_model_detector(cfg or ModelConfig.model_validate({}),
                                     context(loaded, batch), loaded.base, path)]
    except ModelRefused as exc:
        log.warning("model not used, running on the rules alone: %s", exc)
        return []


def model_problems(loaded: LoadedConfig) -> list[Problem]:
    """For `check`: whether the configured model file fits (metadata only, cheap)."""
    cfg = loaded.config.model
    if cfg is None:
        return []
    from agent.detect.model import check_model_file
    from agent.model.files import ModelRefused

    try:
        check_model_file(cfg, context(loaded), loaded.base)
    except ModelRefused as exc:
        file, line = loaded.where(("model", "path"))
        return [Problem(file, "model.path", f"{exc} (the agent runs on its rules alone)",
                        line)]
    return []


def warnings(loaded: LoadedConfig, rules: list[Detector]) -> list[Problem]:
    """What is worth saying about a config that loads: it may watch nothing."""
    out = list(loaded.warnings)
    if not rules:
        out.append(Problem(str(loaded.path), "rules",
                           "no rule loaded: lines are read and counted, nothing can alert"))
    return out


def _runtime_problems(loaded: LoadedConfig, notify: bool) -> list[Problem]:
    cfg, where = loaded.config, str(loaded.path)
    problems = []
    for i, src in enumerate(cfg.sources):
        try:
            build_parser(parse_spec(src, cfg))
        except ValueError as exc:
            problems.append(Problem(where, f"sources.{i}", str(exc)))
    state = loaded.state_dir
    if state.exists() and not state.is_dir():
        problems.append(Problem(where, "state_dir", f"{state} exists and is not a folder"))
    if cfg.notify.templates:
        from agent.notify.templating import template_problems

        file, line = loaded.where(("notify", "templates"))
        problems += [Problem(file, "notify.templates", p, line)
                     for p in template_problems(loaded.resolve(cfg.notify.templates))]
    if notify and _has_targets(loaded):
        from agent.notify.sender import TargetProblems

        try:
            build_sender(loaded)
        except FileProblems as exc:
            problems += exc.problems
        except TargetProblems as exc:
            problems += _target_problems(loaded, exc)
        except ValueError as exc:
            problems.append(Problem(where, "notify", str(exc)))
    return problems


def _has_targets(loaded: LoadedConfig) -> bool:
    """Whether the config names notification targets; without any, alerts go to the console
    and the sender (Apprise) has nothing to validate."""
    n = loaded.config.notify
    return bool(n.urls or n.urls_file or n.config)


def _target_problems(loaded: LoadedConfig, exc: "TargetProblems") -> list[Problem]:
    """Each refused URL at the file and line that gave it (a urls_file line or notify.urls)."""
    n = loaded.config.notify
    out = []
    for i, url, why in exc.problems:
        if i < len(n.urls):
            file, line = loaded.where(("notify", "urls", i))
            out.append(Problem(file, f"notify.urls.{i}", f"{url}: {why}", line))
        else:
            file, line = loaded.where(("notify", "urls_file"))
            out.append(Problem(file, "notify.urls_file",
                               f"{url} (from {n.urls_file}): {why}", line))
    out += [Problem(str(loaded.path), "notify", other) for other in exc.others]
    return out


def build_sender(loaded: LoadedConfig) -> "AppriseSender":
    from agent.notify.sender import AppriseSender

    n = loaded.config.notify
    return AppriseSender(loaded.notify_urls(), loaded.apprise_config(),
                         {k: list(v) for k, v in n.routes.items()},
                         timeout=n.timeout.total_seconds())


def build_renderer(loaded: LoadedConfig, rules: list[Detector]) -> "NoticeRenderer":
    """Message templates: the operator's folder and rules' own texts over the shipped ones,
    times in the configured zone."""
    from agent.notify.templating import NoticeRenderer

    n = loaded.config.notify
    return NoticeRenderer(n.language, timezone=loaded.config.timezone,
                          templates=loaded.resolve(n.templates) if n.templates else None,
                          rule_templates={d.name: {str(k): v for k, v in d.config.template.items()}
                                          for d in rules if d.config.template})


def build_sources(loaded: LoadedConfig, store: Store,
                  counts: Counts) -> "list[FileSource | JournalSource]":
    """A source per configured source (files, or the journal), resumed from the stored
    offsets (a journal's cursor is stored among them)."""
    from agent.sources.files import FileSource
    from agent.sources.journald import JournalSource

    out: list[FileSource | JournalSource] = []
    for src in loaded.config.sources:
        # start_at applies to a source's first files, also for a source added later
        first_run = not store.offsets.has(src.name)
        checkpoints = [to_checkpoint(o) for o in store.offsets.of(src.name)]
        if src.format == "journald":
            j = src.journald or JournaldOptions.model_validate({})
            js = JournalSource(src.name, units=j.units, identifiers=j.identifiers,
                               priority=j.priority, files=[loaded.resolve(f) for f in j.files],
                               directory=loaded.resolve(j.directory) if j.directory else None,
                               start_at=src.start_at, journalctl=j.journalctl,
                               max_line_bytes=src.max_line_bytes)
            js.restore(checkpoints)
            out.append(js)
            continue
        fs = FileSource(src.name, loaded.source_globs(src), encoding=src.encoding,
                        start_at=src.start_at, max_line_bytes=src.max_line_bytes,
                        first_run=first_run,
                        rescan=loaded.config.poll_interval.total_seconds())
        fs.restore(checkpoints)
        out.append(fs)
    return out


def build_ledger(loaded: LoadedConfig, store: Store, counts: Counts,
                 flush: Callable[[LedgerChanges], None] | None = None) -> Ledger | None:
    """The invoice ledger over the store's tables, if the config has one."""
    cfg = loaded.config
    if cfg.ledger is None:
        return None
    return Ledger(cfg.ledger, cfg.sources, store.invoices, cfg.window, cfg.lateness, counts,
                  flush)


def build_engine(loaded: LoadedConfig, rules: list[Detector], store: Store,
                 counts: Counts) -> Engine:
    """The engine with its windows, ledger, rule memory and live alerts as stored."""
    engine = Engine(loaded, rules, counts=counts, ledger=build_ledger(loaded, store, counts))
    saved = store.engine_state().get("engine", {})
    if saved.get("window_seconds") != loaded.config.window.total_seconds():
        # boundaries moved
        saved = {k: v for k, v in saved.items() if k not in ("windows", "ledger")}
    engine.restore(saved, store.alerts.states())
    return engine


def engine_state(loaded: LoadedConfig, engine: Engine) -> dict[str, object]:
    state = engine.state()
    state["window_seconds"] = loaded.config.window.total_seconds()
    return {"engine": state}


def zone(loaded: LoadedConfig) -> ZoneInfo:
    return ZoneInfo(loaded.config.timezone)


def to_checkpoint(o: FileOffset) -> FileCheckpoint:
    return FileCheckpoint(o.file_id, o.path, o.offset, o.line_no, o.fingerprint, o.head)


def to_offset(source: str, c: FileCheckpoint) -> FileOffset:
    return FileOffset(source, c.file_id, c.path, c.offset, c.line_no, c.fingerprint, c.head)
