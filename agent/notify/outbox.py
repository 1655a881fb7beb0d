"""The delivery worker behind the durable outbox.

The daemon owns the outbox table (one thread writes SQLite); this module only sends.  The
daemon submits due rows as `OutboxItem`s, drains `OutboxResult`s on its own schedule and
records them, using `next_attempt_delay` to schedule retries.  Sending happens on one
background thread so a dead or throttled target never blocks ingestion.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.notify.sender import Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification waiting in the outbox, as the daemon read it from its row."""

    id: int  # outbox row id
    severity: str
    title: str
    body: str
    attempts: int  # attempts already made before this one


@dataclass(frozen=True, slots=True)
class OutboxResult:
    """What happened to one submitted item."""

    id: int
    delivery: Delivery


def next_attempt_delay(
    attempts: int,
    base: float = 5.0,
    cap: float = 600.0,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt after `attempts` failed ones.

    0 failed -> 0 (send now); then base, 2*base, 4*base ... capped at `cap`.  `jitter` in
    [0, 1] shortens each delay by up to that fraction at random, so many agents recovering
    from one outage do not retry in lockstep; the default 0 keeps it deterministic.
    """
    if attempts <= 0:
        return 0.0
    # Clamp the exponent: 2.0 ** 1100 overflows, and the cap is reached long before.
    delay = min(cap, base * 2.0 ** min(attempts - 1, 60))
    if jitter > 0:
        delay *= 1.0 - min(jitter, 1.0) * (rng or random).random()
    return delay


_STOP = object()  # queue sentinel: wakes the thread up so it sees the stop request


class OutboxWorker:
    """Sends submitted items one at a time on a background thread.

    `send(title, body, severity)` is usually `AppriseSender.send`.  An item stays in
    `in_flight()` from `submit` until its result has been drained by `results()`, so the
    daemon can re-scan due rows at any time without sending one twice.
    """

    def __init__(self, send: Callable[[str, str, str], Delivery], name: str = "notify-outbox",
                 on_result: Callable[[], None] | None = None):
        self._send = send
        # called (on the worker thread) after each result: lets the daemon record a delivery
        # at once instead of at its next poll, narrowing the window in which a crash would
        # cause a repeat
        self._on_result = on_result
        self._name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: list[OutboxResult] = []
        self._in_flight: set[int] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("outbox worker already started")
        # daemon=True: a send stuck in a socket must not keep the process from exiting;
        # the row stays in the outbox and is retried after restart.
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, item: OutboxItem) -> None:
        """Queue `item` for sending; returns at once.  Ignored if already in flight."""
        with self._lock:
            if item.id in self._in_flight:
                return
            self._in_flight.add(item.id)
        self._queue.put(item)

    def results(self) -> list[OutboxResult]:
        """Take every result produced since the last call (never blocks)."""
        with self._lock:
            done, self._done = self._done, []
            self._in_flight.difference_update(r.id for r in done)
        return done

    def in_flight(self) -> set[int]:
        """Ids submitted whose results have not been drained yet."""
        with self._lock:
            return set(self._in_flight)

    def alive(self) -> bool:
        """True while the thread runs (report unhealthy, withhold WATCHDOG=1, otherwise)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to finish its current send and exit; True if it did in time.

        Items still queued are not sent: they remain due in the outbox table.
        """
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            if item is _STOP or self._stopping.is_set():
                break
            assert isinstance(item, OutboxItem)
            delivery = self._deliver(item)
            with self._lock:
                self._done.append(OutboxResult(item.id, delivery))
            if self._on_result is not None:
                try:
                    self._on_result()
                except Exception:  # a wake-up hook must never kill the sender thread
                    log.debug("outbox on_result hook failed", exc_info=True)

    def _deliver(self, item: OutboxItem) -> Delivery:
        try:
            delivery = self._send(item.title, item.body, item.severity)
            if not isinstance(delivery, Delivery):
                raise TypeError(f"send returned {type(delivery).__name__}, not Delivery")
            return delivery
        except Exception as exc:
            # The thread must survive anything a sender does; the row is retried later.
            # No traceback with message text: it may quote a URL the sender failed to mask.
            log.error("outbox item %d: sender raised %s", item.id, type(exc).__name__)
            log.debug("outbox item %d: sender traceback", item.id, exc_info=True)
            return Delivery(False, True, f"sender raised {type(exc).__name__}")
