"""The daemon: wires sources, pipeline, store and notifier from the config, and runs the loop.

One loop, one thread writing SQLite: poll files (woken by inotify, polled every second as a
fallback), feed the pipeline, advance the clock, commit the batch with its offsets, hand due
notifications to the delivery worker. SIGTERM finishes the batch, checkpoints and exits 0;
SIGHUP reloads config and rules, keeping the running ones if the new are invalid.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from agent import systemd
from agent.config import LoadedConfig, load_config
from agent.detect.base import Rule
from agent.detect.loader import load_rules
from agent.notify.console import print_transition
from agent.notify.outbox import OutboxItem, OutboxWorker, next_attempt_delay
from agent.notify.render import render
from agent.notify.sender import AppriseSender
from agent.parse import build_parser
from agent.pipeline import Engine, parse_spec
from agent.sources.files import FileSource
from agent.sources.position import FileCheckpoint
from agent.sources.watch import Waker
from agent.store import DB_NAME, Batch, Store
from agent.types import RawLine, Transition
from agent.yamlfile import FileProblems, Problem

log = logging.getLogger("invoice_agent")

WAKER_CHECK_SECONDS = 5.0


def load_all(config_path: str | Path, notify: bool = True) -> tuple[LoadedConfig, list[Rule]]:
    """Config and rules, validated together, and every part built once as `run` builds it,
    so that `check` passing means `run` starts; FileProblems lists everything wrong."""
    loaded = load_config(config_path)
    problems: list[Problem] = []
    try:
        rules = load_rules(loaded.rule_globs(), [s.name for s in loaded.config.sources])
    except FileProblems as exc:
        problems += exc.problems
        rules = []
    problems += _runtime_problems(loaded, notify)
    if problems:
        raise FileProblems(problems)
    return loaded, rules


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
    try:
        if notify:  # replay and demo send nothing: they need not load Apprise
            build_sender(loaded)
    except FileProblems as exc:
        problems += exc.problems
    except ValueError as exc:
        problems.append(Problem(where, "notify", str(exc)))
    return problems


def build_sender(loaded: LoadedConfig) -> AppriseSender:
    n = loaded.config.notify
    return AppriseSender(loaded.notify_urls(), loaded.apprise_config(),
                         {k: list(v) for k, v in n.routes.items()},
                         timeout=n.timeout.total_seconds())


def transition_record(tr: Transition, language: str) -> dict[str, Any]:
    """The alert-transition object of the `--format jsonl` contract."""
    rec: dict[str, Any] = {
        "ts": tr.ts.isoformat(), "rule": tr.rule, "source": tr.kind, "severity": tr.severity,
        "state": tr.state, "labels": dict(tr.labels),
        "summary": tr.summary.get(language) or next(iter(tr.summary.values()), tr.rule),
    }
    if tr.line_no is not None:
        rec["line"] = tr.line_no
    return rec


class Daemon:
    """A running agent. `run()` returns the process exit code."""

    def __init__(self, config_path: str | Path, out: TextIO = sys.stdout):
        self.config_path = Path(config_path)
        self.out = out
        self._stop = False
        self._reload = False
        self.loaded, self.rules = load_all(self.config_path)
        self.store = Store(self.loaded.state_dir / DB_NAME)
        self.worker: OutboxWorker | None = None
        self.sender: AppriseSender | None = None
        self._build()

    # -- wiring ----------------------------------------------------------------------------
    def _build(self) -> None:
        """(Re)create every stage from the current config and the stored state."""
        cfg = self.loaded.config
        self.sources: list[FileSource] = []
        saved = self.store.engine_state().get("engine", {})
        for src in cfg.sources:
            # start_at applies to a source's first files, also for a source added later
            first_run = not self.store.has_offsets(src.name)
            fs = FileSource(src.name, self.loaded.source_globs(src), encoding=src.encoding,
                            start_at=src.start_at, max_line_bytes=src.max_line_bytes,
                            first_run=first_run)
            fs.restore([_checkpoint(r) for r in self.store.offsets(src.name)])
            self.sources.append(fs)
        self.engine = Engine(self.loaded, self.rules)
        if saved.get("window_seconds") != cfg.window.total_seconds():
            saved = {k: v for k, v in saved.items() if k != "windows"}  # boundaries moved
        self.engine.restore(saved, self.store.alert_states())
        self.language = cfg.notify.language
        self.zone = ZoneInfo(cfg.timezone)  # live alert times read like the log's own
        sender = build_sender(self.loaded)
        if self.worker is not None:
            self._stop_worker()
        self.sender = sender if sender.has_targets else None
        if self.sender is not None:
            self.worker = OutboxWorker(self.sender.send, on_result=lambda: self.waker.wake())
            self.worker.start()
        self.waker_dirs = self._watch_dirs()
        self.waker = Waker(self.waker_dirs)
        self.waker.start()
        self._waker_checked = time.monotonic()
        log.info("running: %d sources, %d rules, notify %s", len(self.sources), len(self.rules),
                 "to %d targets" % len(self.sender.targets) if self.sender else "to console")

    def _watch_dirs(self) -> list[str]:
        dirs: set[str] = set()
        for fs in self.sources:
            dirs |= fs.watch_dirs()
        return sorted(dirs)

    def _refresh_waker(self) -> None:
        """A log folder created later, or a watcher that died, gets a new inotify watcher."""
        if time.monotonic() - self._waker_checked < WAKER_CHECK_SECONDS:
            return
        self._waker_checked = time.monotonic()
        dirs = self._watch_dirs()
        if self.waker.alive() and dirs == self.waker_dirs:
            return
        log.info("watching %s", ", ".join(dirs) or "no folder yet (polling)")
        self.waker.stop()
        self.waker = Waker(dirs)
        self.waker.start()
        self.waker_dirs = dirs

    def _teardown_sources(self) -> None:
        self.waker.stop()
        for fs in self.sources:
            fs.close()

    # -- signals ---------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_term(self, *_: Any) -> None:
        self._stop = True

    def _on_hup(self, *_: Any) -> None:
        self._reload = True

    def stop(self) -> None:
        self._stop = True

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        systemd.notify("READY=1\nSTATUS=watching %d sources" % len(self.sources))
        wd = systemd.watchdog_interval()
        last_ping = 0.0
        try:
            while not self._stop:
                backlog = self.step()
                if self._reload:
                    self._reload = False
                    self.reload()
                mono = time.monotonic()
                if wd and mono - last_ping >= wd and self.healthy():
                    systemd.notify("WATCHDOG=1")
                    last_ping = mono
                self._refresh_waker()
                if not backlog and not self._stop:
                    self.waker.wait(self.loaded.config.poll_interval.total_seconds())
        finally:
            systemd.notify("STOPPING=1")
            self.shutdown()
        return 0

    def step(self, now: datetime | None = None) -> bool:
        """One batch: read, decide, commit, deliver. True if files still hold unread lines."""
        cfg = self.loaded.config
        per_source = max(1, cfg.batch_lines // max(1, len(self.sources)))
        lines: list[RawLine] = []
        backlog_sources = []
        for fs in self.sources:
            got = fs.poll(per_source)
            lines += got
            if len(got) >= per_source:
                backlog_sources.append(fs.name)
        self.engine.feed(lines)
        if now is None:
            now = datetime.now(self.zone)
        if backlog_sources:
            # catching up: let time move only as far as the slowest source has read
            marks = [self.engine.watermarks[s] for s in backlog_sources
                     if s in self.engine.watermarks]
            now = min(marks) if marks else None
        # early-rule transitions are committed with the batch that caused them, clock or not
        transitions = self.engine.advance(now) if now is not None else self.engine.take_early()
        self._commit(lines, transitions)
        if self.sender is None:
            for tr in transitions:
                print_transition(tr, self.language, self.out)
            self.out.flush()
        self._deliver()
        return bool(backlog_sources)

    def _commit(self, lines: list[RawLine], transitions: list[Transition]) -> None:
        drained = self.engine.drain()
        if not lines and not drained.windows and not transitions and not drained.counters:
            return
        batch = Batch()
        for fs in self.sources:
            batch.offsets += [dict(asdict(c), source=fs.name) for c in fs.checkpoints()]
            batch.offset_sources.append(fs.name)
        batch.counters = dict(drained.counters)
        batch.samples = [{"source": f.source, "path": f.path, "line_no": f.line_no,
                          "reason": f.reason, "text": f.text[:2000]} for f in drained.failures]
        batch.windows = [{"source": w.source, "start": w.start.isoformat(),
                          "end": w.end.isoformat(), "features": dict(w.features)}
                         for w in drained.windows]
        state = self.engine.state()
        state["window_seconds"] = self.loaded.config.window.total_seconds()
        batch.engine_state = {"engine": state}
        batch.alerts = [a.to_json() for a in drained.alerts]
        batch.transitions = [{"ts": t.ts.isoformat(), "rule": t.rule, "kind": t.kind,
                              "severity": t.severity, "state": t.state, "labels": dict(t.labels),
                              "summary": dict(t.summary), "reason": t.reason}
                             for t in transitions]
        if self.sender is not None:
            for tr in transitions:
                title, body = render(tr, self.language)
                batch.outbox.append({"fingerprint": tr.fingerprint, "severity": tr.severity,
                                     "title": title, "body": body, "next_attempt": 0.0})
        self.store.commit(batch)
        if drained.windows:
            self.store.prune(drained.windows[-1].end - self.loaded.config.retention)

    def _deliver(self) -> None:
        """Record finished deliveries; hand due ones to the worker. Never blocks on a target."""
        if self.worker is None:
            return
        now = time.time()
        for res in self.worker.results():
            d = res.delivery
            if d.ok:
                self.store.outbox_delivered(res.id)
                log.info("delivered alert #%d: %s", res.id, d.detail)
            else:
                attempts = self.store.outbox_attempts(res.id) + 1
                delay = next_attempt_delay(attempts)
                self.store.outbox_failed(res.id, d.detail, now + delay)
                log.warning("delivery of alert #%d failed (attempt %d, retry in %.0fs): %s",
                            res.id, attempts, delay, d.detail)
        busy = self.worker.in_flight()
        waiting: set[str] = set()
        for row in self.store.pending_outbox():
            # one alert's messages go out in order: a "resolved" never overtakes its "firing"
            if row["fingerprint"] in waiting:
                continue
            waiting.add(row["fingerprint"])
            if row["id"] not in busy and row["next_attempt"] <= now:
                self.worker.submit(OutboxItem(row["id"], row["severity"], row["title"],
                                              row["body"], row["attempts"]))

    # -- reload and stop ---------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read config and rules; on any problem keep running on the current ones."""
        systemd.reloading()
        try:
            loaded, rules = load_all(self.config_path)
        except FileProblems as exc:
            for p in exc.problems:
                log.error("reload refused, keeping the running config: %s", p)
            systemd.notify("READY=1\nSTATUS=reload refused: config invalid")
            return False
        except Exception as exc:  # a config the checks did not foresee must not stop the agent
            log.error("reload refused, keeping the running config: %s: %s",
                      type(exc).__name__, exc)
            systemd.notify("READY=1\nSTATUS=reload refused")
            return False
        self._commit([], [])
        self._teardown_sources()
        old = self.loaded, self.rules
        self.loaded, self.rules = loaded, rules
        try:
            if loaded.state_dir != old[0].state_dir:
                log.warning("state_dir changes take effect at restart; keeping %s",
                            old[0].state_dir)
            self._build()
        except Exception:
            log.exception("reload failed, going back to the running config")
            self.loaded, self.rules = old
            self._build()
            systemd.notify("READY=1")
            return False
        log.info("reloaded %s", self.config_path)
        systemd.notify("READY=1\nSTATUS=reloaded")
        return True

    def healthy(self) -> bool:
        """Every worker thread is alive (the file watcher is only a wake-up: polling covers it)."""
        return self.worker is None or self.worker.alive()

    def shutdown(self) -> None:
        try:
            self._commit([], [])
        finally:
            self._teardown_sources()
            if self.worker is not None:
                self._stop_worker()
            self.store.close()

    def _stop_worker(self) -> None:
        """Let a delivery under way finish and record it, so it is not sent again later."""
        assert self.worker is not None
        self.worker.stop()
        for res in self.worker.results():
            if res.delivery.ok:
                self.store.outbox_delivered(res.id)
        self.worker = None


def _checkpoint(row: dict[str, Any]) -> FileCheckpoint:
    return FileCheckpoint(row["file_id"], row["path"], row["offset"], row["line_no"],
                          row["fingerprint"], row["head"])

