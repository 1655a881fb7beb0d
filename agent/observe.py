"""The daemon's health snapshot, built on the loop's thread after each batch from what it
already holds (agent/health.py serves it over HTTP).

Per batch it costs a few dict updates; what needs SQLite (outbox and ledger counts) or a walk
over the alert groups (what is muted) is refreshed every REFRESH_SECONDS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.health import Health, HttpServer, Snapshot

if TYPE_CHECKING:
    from agent.configsections import HttpConfig
    from agent.detect.model import ModelDetector
    from agent.notify.outbox import Dispatcher
    from agent.pipeline import Engine
    from agent.store import Store

REFRESH_SECONDS = 5.0


class Observer:
    """Keeps the snapshot of one daemon and, when configured, its HTTP endpoint."""

    def __init__(self, started: datetime):
        self.started = started.timestamp()
        self.totals: dict[str, dict[str, int]] = {}
        self.behind_since: float | None = None
        self.health: Health | None = None
        self.server: HttpServer | None = None
        self._listen: str | None = None
        self._refreshed = 0.0
        self._slow: dict[str, Any] = {}

    def configure(self, http: "HttpConfig | None") -> None:
        """Start, move or stop the endpoint as the (re)loaded config says."""
        listen = http.listen if http is not None else None
        if listen == self._listen:
            if http is not None and self.health is not None:
                self.health.max_lag = http.max_lag.total_seconds()
            return
        self.stop()
        if http is None:
            return
        self.health = Health(http.max_lag.total_seconds())
        host, port = http.address()
        self.server = HttpServer(self.health, host, port)
        self.server.start()
        self._listen = listen

    def counted(self, increments: Mapping[tuple[str, str], int]) -> None:
        for (source, name), n in increments.items():
            per = self.totals.setdefault(source, {})
            per[name] = per.get(name, 0) + n

    def behind(self, backlog: bool) -> None:
        if backlog and self.behind_since is None:
            self.behind_since = time.time()
        elif not backlog:
            self.behind_since = None

    def publish(self, *, config: str, rules: int, reload_error: str | None, engine: "Engine",
                store: "Store", dispatcher: "Dispatcher | None",
                model: "ModelDetector | None", now: datetime, clock_jumps: int = 0) -> None:
        if self.health is None:
            return
        wall = time.time()
        if wall - self._refreshed >= REFRESH_SECONDS:
            self._refreshed = wall
            self._slow = {
                "outbox": {k: v for k, v in store.outbox.summary().items()
                           if isinstance(v, int)},
                "ledger": store.invoices.counts() if engine.ledger is not None else None,
                "muted": len(engine.router.muted_now()),
                "silences": sum(s.active(now) for s in engine.router.silencer.silences),
            }
        alerts: dict[str, int] = {}
        for a in engine.book.live.values():
            alerts[a.state] = alerts.get(a.state, 0) + 1
        threads = {"http": self.server is not None and self.server.alive()}
        if dispatcher is not None:
            threads["delivery"] = dispatcher.alive()
        self.health.publish(Snapshot(
            at=wall, started=self.started, pid=os.getpid(), config=config, rules=rules,
            reload_error=reload_error, counters={k: dict(v) for k, v in self.totals.items()},
            lag_seconds=_lags(engine.watermarks.items(), now), behind_since=self.behind_since,
            windows=engine.windows_closed, rule_seconds=engine.rule_seconds, alerts=alerts,
            outbox=self._slow.get("outbox") or {},
            deliveries=dict(dispatcher.deliveries) if dispatcher is not None else {},
            ledger=self._slow.get("ledger"),
            model_score=model.last_score if model is not None else None,
            threads=threads, silences=self._slow.get("silences", 0),
            muted=self._slow.get("muted", 0), clock_jumps=clock_jumps))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = None
        self.health = None
        self._listen = None


def _lags(marks: Iterable[tuple[str, datetime]], now: datetime) -> dict[str, float]:
    return {source: max(0.0, (now - t).total_seconds()) for source, t in marks}
