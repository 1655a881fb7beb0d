"""Delivering the durable outbox: one row per (message, target), sent on a worker thread.

`Dispatcher` is driven by the loop's thread (the one that writes SQLite): it turns notices (one
alert group's news) into outbox messages for the targets their severity routes to, each
rendered once per channel (WeCom markdown, email, plain text: agent.notify.templating) and
stored as the target will receive it, submits due rows
to the `OutboxWorker`, and records each result: delivered, retried later with backoff (only to
the target that did not take it), or refused for good (a permanent failure such as a bad key
or an unknown recipient). Sending happens on one background thread so a dead or throttled
target never blocks ingestion.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.notify import alertmanager
from agent.notify.sender import AppriseSender, Delivery
from agent.notify.templating import NoticeRenderer
from agent.notify.view import notice_of
from agent.store import utc_now
from agent.store.outbox import Outbox
from agent.store.records import OutboxMessage
from agent.types import Notice, Transition

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification waiting in the outbox, as the daemon read it from its row."""

    id: int  # outbox row id
    severity: str
    title: str
    body: str
    attempts: int  # attempts already made before this one
    target: str = ""  # the sender's target key


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

    `send(item)` is usually `AppriseSender.send_item`.  An item stays in
    `in_flight()` from `submit` until its result has been drained by `results()`, so the
    daemon can re-scan due rows at any time without sending one twice.
    """

    def __init__(self, send: Callable[[OutboxItem], Delivery], name: str = "notify-outbox",
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
            delivery = self._send(item)
            if not isinstance(delivery, Delivery):
                raise TypeError(f"send returned {type(delivery).__name__}, not Delivery")
            return delivery
        except Exception as exc:
            # The thread must survive anything a sender does; the row is retried later.
            # No traceback with message text: it may quote a URL the sender failed to mask.
            log.error("outbox item %d: sender raised %s", item.id, type(exc).__name__)
            log.debug("outbox item %d: sender traceback", item.id, exc_info=True)
            return Delivery(False, True, f"sender raised {type(exc).__name__}")


class Dispatcher:
    """The outbox's schedule: which rows go to the worker when, and what their results mean.

    Runs on the loop's thread only (it reads and writes the outbox table); `pump()` never
    blocks on a target. `renderer` writes the messages (its language, timezone and templates);
    by default the shipped templates in `language`, times as the events carried them.
    """

    def __init__(self, outbox: Outbox, sender: AppriseSender, language: str,
                 wake: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time, *,
                 renderer: NoticeRenderer | None = None):
        self.outbox = outbox
        self.sender = sender
        self.language = language
        self.renderer = renderer or NoticeRenderer(language)
        self.clock = clock
        self.worker = OutboxWorker(self._send, on_result=wake)
        self._flying: dict[int, str] = {}  # row id -> target, submitted and not recorded
        # attempts by (channel, "ok" | "failed"), for /metrics
        self.deliveries: Counter[tuple[str, str]] = Counter()

    def start(self) -> None:
        """Start sending. Rows written before delivery was per target are first made one per
        target, in their order, before any newer row can be written behind them."""
        for row in self.outbox.untargeted():
            msg = row.message
            self.outbox.replace(row.id, [
                OutboxMessage(msg.fingerprint, msg.severity, msg.title, msg.body, key)
                for key in self.sender.target_keys(msg.severity)], utc_now())
        self.worker.start()

    def messages(self, notices: Iterable[Notice | Transition]) -> list[OutboxMessage]:
        """One message per notice and target its severity routes to, rendered once for each
        channel among those targets; keyed by the notice's group, so a group's messages
        reach a target in order. A bare transition is a notice of its own."""
        out = []
        for item in notices:
            notice = notice_of(item) if isinstance(item, Transition) else item
            rendered: dict[str, tuple[str, str]] = {}
            for key in self.sender.target_keys(notice.severity):
                channel = self.sender.channel(key)
                if channel not in rendered:
                    rendered[channel] = (
                        ("", alertmanager.payload(notice, self.language))
                        if channel == "alertmanager" else self.renderer.render(notice, channel))
                title, body = rendered[channel]
                out.append(OutboxMessage(notice.key, notice.severity, title, body, key))
        return out

    def pump(self) -> None:
        """Record finished deliveries; hand due rows to the worker."""
        now = self.clock()
        self._record(now)
        # the head row of each (alert, target), so a "resolved" never overtakes its "firing" at
        # a target; one message in flight per target, so a target that is down (each attempt
        # waiting out its timeout) costs the worker one attempt at a time, between the others'
        flying = set(self._flying.values())
        for row in self.outbox.pending():
            msg = row.message
            if not msg.target or msg.target in flying or row.next_attempt > now:
                continue
            flying.add(msg.target)
            self._flying[row.id] = msg.target
            self.worker.submit(OutboxItem(row.id, msg.severity, msg.title, msg.body,
                                          row.attempts, msg.target))

    def _record(self, now: float) -> None:
        for res in self.worker.results():
            target = self._flying.pop(res.id, None)
            channel = self.sender.channel(target) if target else "text"
            self.deliveries[(channel, "ok" if res.delivery.ok else "failed")] += 1
            self._result(res, now)

    def _result(self, res: OutboxResult, now: float) -> None:
        d = res.delivery
        if d.ok:
            self.outbox.delivered(res.id, utc_now())
            log.info("delivered alert #%d: %s", res.id, d.detail)
        elif not d.recoverable:
            self.outbox.failed(res.id, d.detail, None)
            log.error("delivery of alert #%d refused for good, not retried: %s",
                      res.id, d.detail)
        else:
            attempts = self.outbox.attempts(res.id) + 1
            delay = next_attempt_delay(attempts)
            self.outbox.failed(res.id, d.detail, now + delay)
            log.warning("delivery of alert #%d failed (attempt %d, retry in %.0fs): %s",
                        res.id, attempts, delay, d.detail)

    def _send(self, item: OutboxItem) -> Delivery:
        return self.sender.send_to(item.target, item.title, item.body, item.severity)

    def alive(self) -> bool:
        return self.worker.alive()

    def stop(self) -> None:
        """Let a delivery under way finish and record it, so it is not sent again later."""
        self.worker.stop()
        self._record(self.clock())
