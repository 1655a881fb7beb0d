"""The daemon: runs the loop. Everything it runs is built by agent.wiring.

One loop, one thread writing SQLite: poll files (woken by inotify, polled every second as a
fallback), push their events through the engine in event time, advance the clock, let the
dispatcher hand due notifications to the delivery worker. Batches are committed in groups
(agent/store/group.py): every `commit_interval` or `commit_lines` lines, and at once when an
alert changes or a message waits for the outbox; one transaction holds the lines read since the
last commit with everything they caused. SIGTERM finishes the batch, commits and exits 0.
An edited config or rules file (seen within a few seconds, agent/configwatch.py) or SIGHUP
reloads config and rules; an invalid edit is refused with its problems logged and one
notification, and the running rules go on.
"""

from __future__ import annotations

import heapq
import logging
import os
import signal
import sqlite3
import sys
import time
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterable, TextIO

from agent import systemd, wiring
from agent.configwatch import ConfigWatch
from agent.counting import Counts
from agent.detect.model import ModelDetector
from agent.eventclock import EventClock, boot_clock
from agent.notify.about_agent import agent_messages
from agent.notify.console import print_transition
from agent.notify.outbox import Dispatcher
from agent.observe import Observer
from agent.sources.watch import Waker
from agent.store import DB_NAME, Batch
from agent.store.group import CommitGroup
from agent.store.guard import StateLock, open_state, state_unwritable
from agent.training.retrain import Retrainer
from agent.types import Event, Transition
from agent.yamlfile import FileProblems

log = logging.getLogger("invoice_agent")

WAKER_CHECK_SECONDS = 5.0


class Daemon:
    """A running agent. `run()` returns the process exit code."""

    def __init__(self, config_path: str | Path, out: TextIO = sys.stdout,
                 signals: bool = False):
        self.config_path = Path(config_path)
        self.out = out
        self._stop = False
        self._reload = False
        if signals:  # before loading: a SIGTERM while starting up still stops cleanly
            self.install_signals()
        self._uncommitted = False  # a batch failed half way: never checkpoint its state
        self.started = datetime.now().astimezone()
        self.loaded, self.rules = wiring.load_all(self.config_path)
        for w in wiring.warnings(self.loaded, self.rules):
            log.warning("%s", w)
        # one daemon per state folder; a damaged or vanished database said, not crashed on
        self.lock = StateLock(self.loaded.state_dir)
        try:
            self.store, state_notes = open_state(self.loaded.state_dir)
        except BaseException:
            self.lock.release()
            raise
        self.config_watch = ConfigWatch(self.loaded)
        self.reload_error: str | None = None  # why the last reload was refused, until one works
        self.counts = Counts()
        self.dispatcher: Dispatcher | None = None
        self.observer = Observer(self.started)  # /healthz, /metrics, /status (config `http:`)
        self.group = CommitGroup(0.0, 1)  # set from the config by _build
        self.clock = EventClock()  # the wall clock, trusted as far as the boot clock agrees
        self._step_began, self._step_read = 0.0, 0  # when the last step began, lines it read
        self._build()
        if state_notes:
            self._tell("state", state_notes)

    # -- wiring ----------------------------------------------------------------------------
    def _build(self) -> None:
        """(Re)create every stage from the current config and the stored state."""
        loaded = self.loaded
        self.sources = wiring.build_sources(loaded, self.store, self.counts)
        self.engine = wiring.build_engine(loaded, self.rules, self.store, self.counts)
        self.engine.set_silences(self.store.silences.all())
        self.zone = wiring.zone(loaded)  # live alert times read like the log's own
        sender = wiring.build_sender(loaded)
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if sender.has_targets:
            self.dispatcher = Dispatcher(self.store.outbox, sender, loaded.config.notify.language,
                                         wake=lambda: self.waker.wake(),
                                         renderer=wiring.build_renderer(loaded, self.rules))
            self.dispatcher.start()
        self._positions_unsaved = True  # e.g. start_at: end positions, before any line
        self.group.interval = loaded.config.commit_interval.total_seconds()
        self.group.max_lines = loaded.config.commit_lines
        self.observer.configure(loaded.config.http)
        self._build_model()
        self.waker_dirs = self._watch_dirs()
        self.waker = Waker(self.waker_dirs)
        self.waker.start()
        self._waker_checked = time.monotonic()
        log.info("running: %d sources, %d rules, notify %s", len(self.sources), len(self.rules),
                 "to %d targets" % len(sender.targets) if self.dispatcher else "to console")

    def _build_model(self) -> None:
        """The model detector among the rules (if the config has one), and its retraining."""
        self.model = next((d for d in self.rules if isinstance(d, ModelDetector)), None)
        self.retrainer: Retrainer | None = None
        cfg = self.loaded.config
        if self.model is not None and self.model.path is not None and cfg.model is not None \
                and cfg.model.retrain_every:
            pending = {r.name: r.pending_for for r in self.rules}
            self.retrainer = Retrainer(self.loaded.state_dir / DB_NAME, self.model.spec,
                                       cfg.model, cfg.window, cfg.timezone, pending,
                                       self.model.path)

    def _tend_model(self) -> None:
        """A model file retrained (here or by `invoice-agent train`) is picked up without a
        restart; a due retraining starts in a child process. Both cost a stat when idle."""
        if self.model is None:
            return
        self.model.reload_if_changed()
        if self.retrainer is not None:
            self.retrainer.poll(datetime.now(self.zone))

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

    def _on_term(self, signum: int, _frame: Any) -> None:
        self._stop_reason = signal.Signals(signum).name
        self._stop = True

    def _on_hup(self, *_: Any) -> None:
        self._reload = True

    def stop(self) -> None:
        self._stop = True

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        """0 after SIGTERM; 1 when the state cannot be written (full or read-only folder): the
        unfinished batch is read again at the next start (systemd restarts the agent)."""
        wd = systemd.watchdog_interval()
        last_ping = 0.0
        code = 0
        try:
            self._mark_running(stopped=None)
            systemd.notify("READY=1\nSTATUS=watching %d sources" % len(self.sources))
            log.info("started (pid %d, config %s)", os.getpid(), self.config_path)
            while not self._stop:
                try:
                    backlog = self.step()
                except BaseException:
                    # the lines read since the last commit were not committed: they are read
                    # again at the next start. Committing the engine's half-processed state at
                    # shutdown would skip them and lose what they should have raised.
                    self._uncommitted = True
                    raise
                if self._reload or self.config_watch.changed():
                    why = "SIGHUP" if self._reload else "file changed"
                    self._reload = False
                    self.reload(why)
                mono = time.monotonic()
                if wd and mono - last_ping >= wd and self.healthy():
                    systemd.notify("WATCHDOG=1")
                    last_ping = mono
                self._refresh_waker()
                self._tend_model()
                if not backlog and not self._stop:
                    self._pace()
                    self.waker.wait(self.group.wait(
                        self._engine_pending(), self.loaded.config.poll_interval.total_seconds()))
        except sqlite3.OperationalError as exc:
            self._uncommitted = True
            self._stop_reason = "the state cannot be written"
            log.error("%s", state_unwritable(self.loaded.state_dir, exc))
            systemd.notify("STATUS=state not writable: %s" % exc)
            code = 1
        finally:
            systemd.notify("STOPPING=1")
            self.shutdown()
            log.info("stopped (%s)", getattr(self, "_stop_reason", "asked to stop"))
        return code

    def _pace(self) -> None:
        """After a step that read lines, let `read_interval` pass since it began before the
        next: lines written meanwhile are read together (a wake-up costs far more than a
        line). After a step that read nothing, or as soon as a file is created (one created
        and deleted at once must still be opened), the next step reads at once."""
        rest = self._step_began + self.loaded.config.read_interval.total_seconds() - \
            time.monotonic()
        if self._step_read and rest > 0:
            self.waker.pace(rest)

    def step(self, now: datetime | None = None, boot: float | None = None) -> bool:
        """One batch: read, decide, commit when due, deliver. True if files still hold unread
        lines. `now` and `boot` stand for the wall and the boot clock (tests): a `now` given
        alone is followed as it is."""
        self._step_began = time.monotonic()
        per_source = max(1, self.loaded.config.batch_lines // max(1, len(self.sources)))
        if self.store.silences.changed():  # `invoice-agent silence` wrote: honoured at once
            self.engine.set_silences(self.store.silences.all())
            self.group.urge("silences")
        streams: list[list[tuple[datetime, Event]]] = []
        limit: datetime | None = None  # catching up: time moves as far as the slowest source
        backlog = False
        batches = [(fs, fs.read(per_source)) for fs in self.sources]
        read = self._step_read = sum(len(got) for _, got in batches)
        busy = [fs.name for fs, got in batches if got]
        # the lines of a single source that only windows read are counted without Events
        tally = self.engine.tallies.get(busy[0]) if len(busy) == 1 else None
        counted = None
        for fs, got in batches:
            for name, n in fs.take_counts().items():
                self.counts.add(fs.name, name, n)
            full = len(got) >= per_source or fs.backlog()
            if tally is not None and fs.name == tally.source:
                counted = got
                last = tally.last_confirmed(self.engine, got) if full else None
            else:
                events = list(self.engine.events(got.raw()))
                streams.append(events)
                last = events[-1][0] if events else None
            # a full batch, or lines the source knows of but could not read yet (files waiting
            # for a descriptor): time must not run ahead of them
            if full:
                backlog = True
                mark = last if last is not None else self.engine.watermarks.get(fs.name)
                if mark is not None and (limit is None or mark < limit):
                    limit = mark
        if tally is not None and counted is not None:
            tally.count(self.engine, counted, limit)
        for confirmed, ev in _merge(streams):
            self.engine.push(confirmed, ev, limit)
        if backlog:
            if limit is not None:
                self.engine.advance(limit)
        else:
            self.engine.advance(self._quiet_time(now, boot))
        transitions = self.engine.take()
        self._gather(transitions, read)
        if self._positions_unsaved:
            self.group.urge("positions")
        why = self.group.due(self._engine_pending())
        if why is not None:
            log.debug("commit (%s): %d lines", why, self.group.lines)
            self._commit()
        self.observer.behind(backlog)
        self.observer.publish(config=str(self.config_path), rules=len(self.rules),
                              reload_error=self.reload_error, engine=self.engine,
                              store=self.store, dispatcher=self.dispatcher, model=self.model,
                              now=self.engine.now or datetime.now(self.zone),
                              clock_jumps=self.clock.jumps)
        if self.dispatcher is None:
            for tr in transitions:
                print_transition(tr, self.loaded.config.notify.language, self.out)
            self.out.flush()
        else:
            self.dispatcher.pump()
        return backlog

    def _quiet_time(self, now: datetime | None, boot: float | None) -> datetime:
        """How far time moves with no line to move it: the wall clock, not followed when it
        leaps ahead of the time really elapsed (agent/eventclock.py)."""
        if now is not None and boot is None:
            return now
        marks = self.engine.watermarks.values()
        return self.clock(now or datetime.now(self.zone),
                          boot if boot is not None else boot_clock(),
                          max(marks) if marks else None)

    def _gather(self, transitions: list[Transition], read: int) -> None:
        """A batch's counts, transitions and notices join the group waiting for its commit
        (the counts reach /metrics at once)."""
        notices = self.engine.take_notices()
        for m in self.engine.take_muted():
            log.info("not notified: %s %s (%s by %s)", m.rule, m.state, m.why, m.by)
        counters = self.counts.drain()
        self.observer.counted(counters)
        self.group.add(counters, read, transitions, notices)

    def _engine_pending(self) -> bool:
        """The engine holds closed windows, alert states or samples not committed yet."""
        e = self.engine
        return bool(e.closed or e.changed or e.failures)

    def _commit(self) -> None:
        """One transaction: the group's offsets, counts, windows, alerts, ledger changes, the
        engine's state and the messages its groups flushed (the state counts them as sent:
        they must reach the outbox in the same commit)."""
        self._gather([], 0)
        group = self.group
        drained = self.engine.drain()
        notices = group.notices
        batch = Batch(counters=group.counters, samples=drained.failures,
                      windows=drained.windows, alerts=drained.alerts,
                      transitions=group.transitions, ledger=drained.ledger)
        if batch.empty() and not notices and not group.lines and not self._positions_unsaved:
            group.committed()
            return
        self._positions_unsaved = False
        batch.offsets = {fs.name: [wiring.to_offset(fs.name, c) for c in fs.checkpoints()]
                         for fs in self.sources}
        batch.engine_state = wiring.engine_state(self.loaded, self.engine)
        batch.engine_state["sources"] = {  # what `status` shows beside the counts
            fs.name: {"encoding_hint": fs.encoding_hint(), "missing_dirs": fs.missing_dirs()}
            for fs in self.sources}
        if self.dispatcher is not None:
            batch.outbox = self.dispatcher.messages(notices)
        self.store.commit(batch)
        group.committed()
        if drained.windows:
            end, cfg = drained.windows[-1].end, self.loaded.config
            self.store.prune_now_and_then(
                end - cfg.retention,
                ledger_before=end - cfg.ledger.retention if cfg.ledger else None)

    # -- reload and stop ---------------------------------------------------------------------
    def reload(self, why: str = "SIGHUP") -> bool:
        """Re-read config and rules; on any problem keep running on the current ones."""
        systemd.reloading()
        try:
            loaded, rules = wiring.load_all(self.config_path)
        except FileProblems as exc:
            self._refuse([str(p) for p in exc.problems])
            return False
        except Exception as exc:  # a config the checks did not foresee must not stop the agent
            self._refuse([f"{type(exc).__name__}: {exc}"])
            return False
        self._commit()
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
        self.config_watch.reset(loaded)
        for w in wiring.warnings(loaded, rules):
            log.warning("%s", w)
        if self.reload_error is not None:
            log.info("config valid again")
        self.reload_error = None
        log.info("reloaded %s (%s): %d rules", self.config_path, why, len(rules))
        self._mark_running(stopped=None)
        systemd.notify("READY=1\nSTATUS=reloaded")
        return True

    def _refuse(self, problems: list[str]) -> None:
        """An invalid config or rules edit: logged in full, told once (until a reload works),
        and the running config goes on."""
        for p in problems:
            log.error("reload refused, keeping the running config: %s", p)
        systemd.notify("READY=1\nSTATUS=reload refused: config invalid")
        first = self.reload_error is None
        self.reload_error = "; ".join(problems)[:2000]
        self._mark_running(stopped=None)
        if first:
            self._tell("config", problems)

    def _tell(self, what: str, lines: list[str]) -> None:
        """A notification about the agent itself (its config, its state) to every target
        warnings go to; nothing more than the log without targets."""
        if self.dispatcher is None:
            return
        self.store.commit(Batch(outbox=agent_messages(
            self.dispatcher.sender, self.loaded.config.notify.language, what, lines)))
        self.dispatcher.pump()

    def _mark_running(self, stopped: str | None) -> None:
        """For `status`: which process runs on this state, since when, or when it stopped."""
        info = {"pid": os.getpid(), "started": self.started.isoformat(timespec="seconds"),
                "config": str(self.config_path), "rules": len(self.rules), "stopped": stopped,
                "reload_error": self.reload_error}
        self.store.commit(Batch(engine_state={"daemon": info}))

    def healthy(self) -> bool:
        """Every worker thread is alive (the file watcher is only a wake-up: polling covers it)."""
        return self.dispatcher is None or self.dispatcher.alive()

    def shutdown(self) -> None:
        try:
            if not self._uncommitted:
                self._commit()
            self._mark_running(stopped=datetime.now().astimezone().isoformat(timespec="seconds"))
        except sqlite3.OperationalError as exc:
            # a stop while the state folder is full: the last batch is read again at the next
            # start; what stopped it is said, not raised over the reason already logged
            if not self._uncommitted:
                log.error("%s", state_unwritable(self.loaded.state_dir, exc))
        finally:
            self._teardown_sources()
            if self.dispatcher is not None:
                self.dispatcher.stop()
                self.dispatcher = None
            self.store.close()
            self.lock.release()
            self.observer.stop()


def _merge(streams: list[list[tuple[datetime, Event]]]) -> Iterable[tuple[datetime, Event]]:
    """Events of several sources in confirmed-time order (each source's own order kept)."""
    nonempty = [s for s in streams if s]
    if len(nonempty) <= 1:
        return nonempty[0] if nonempty else []
    return heapq.merge(*nonempty, key=itemgetter(0))
