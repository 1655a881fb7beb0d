"""The outbox dispatcher: delivery tracked per target, a retry only to the target that did not
take the message, a permanent refusal recorded and not retried. Real webhook receivers on
127.0.0.1 (the `hooks` fixture), a real SQLite outbox; only the retry clock is moved by hand."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from agent.notify.outbox import Dispatcher
from agent.notify.sender import AppriseSender
from agent.status import format_status
from agent.store import Batch, OutboxMessage, Store
from agent.types import Transition
from tests.conftest import FAST, free_port


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def titles(hook) -> list[str]:
    return [body.get("title", "") for _, body in hook.posts]


def firing(rule: str = "upload_outage", state: str = "firing") -> Transition:
    ts = datetime(2026, 11, 2, 10, 5, tzinfo=timezone(timedelta(hours=8)))
    return Transition(ts, rule, "rule", "critical", state, {"source": "upload"},
                      {"en": "uploads timing out", "zh": "上传超时"}, "fp-" + rule,
                      "first notification")


def run_rounds(d: Dispatcher, clock: Clock, rounds: int) -> None:
    """Pump, wait for the worker to finish what it was given, let an hour pass: again."""
    for _ in range(rounds):
        d.pump()
        deadline = time.monotonic() + 5
        while d.worker.in_flight() and time.monotonic() < deadline:
            d.pump()
            time.sleep(0.002)
        clock.t += 3600  # past any backoff


def dispatcher(tmp_path, urls: list[str]) -> tuple[Dispatcher, Store, Clock]:
    store = Store(tmp_path / "agent.db")
    clock = Clock()
    d = Dispatcher(store.outbox, AppriseSender(urls, None, {}, timeout=3), "en", clock=clock)
    d.start()
    return d, store, clock


def test_a_failing_target_is_retried_alone_and_the_working_one_gets_the_message_once(
        tmp_path, hooks):
    ok, broken = hooks(200), hooks(500)
    d, store, clock = dispatcher(tmp_path, [ok.url(), broken.url()])
    try:
        store.commit(Batch(outbox=d.messages([firing()])))
        run_rounds(d, clock, 4)
        assert titles(ok) == ["[FIRING critical] upload_outage"]  # once, not at every retry
        assert len(titles(broken)) == 4  # a 500 is worth retrying
        broken.status = 200
        run_rounds(d, clock, 2)
        assert len(titles(broken)) == 5 and len(titles(ok)) == 1
        assert store.outbox.summary()["pending"] == 0
    finally:
        d.stop()
        store.close()


def test_a_permanent_refusal_stops_retrying_that_target_and_shows_in_status(tmp_path, hooks):
    ok, refusing = hooks(200), hooks(400)
    d, store, clock = dispatcher(tmp_path, [ok.url(), refusing.url()])
    try:
        store.commit(Batch(outbox=d.messages([firing()])))
        run_rounds(d, clock, 4)
        assert len(titles(refusing)) == 1  # a 400 will not get better by asking again
        assert len(titles(ok)) == 1
        summary = store.outbox.summary()
        assert summary["pending"] == 0 and summary["failed"] == 1
        text = format_status({"config": "c", "state": "s", "sources": {}, "firing": [],
                              "outbox": summary})
        assert "1 refused" in text and "400" in text
    finally:
        d.stop()
        store.close()


def test_a_resolved_message_never_overtakes_its_firing_at_a_target(tmp_path, hooks):
    flaky = hooks(500)
    d, store, clock = dispatcher(tmp_path, [flaky.url()])
    try:
        store.commit(Batch(outbox=d.messages([firing(), firing(state="resolved")])))
        run_rounds(d, clock, 2)
        assert titles(flaky) == ["[FIRING critical] upload_outage"] * 2  # resolved waits
        flaky.status = 200
        run_rounds(d, clock, 3)
        assert titles(flaky)[2:] == ["[FIRING critical] upload_outage",
                                    "[RESOLVED] upload_outage"]
    finally:
        d.stop()
        store.close()


def test_a_dead_target_with_a_long_queue_does_not_hold_back_the_others(tmp_path, hooks):
    ok = hooks(200)
    dead = f"json://127.0.0.1:{free_port()}/hook?{FAST}"  # nobody listens: retried forever
    d, store, clock = dispatcher(tmp_path, [dead, ok.url()])
    try:
        many = [firing(f"r{i}") for i in range(150)]  # more than a page (100) per target
        store.commit(Batch(outbox=d.messages(many)))
        for _ in range(3):  # deliver the page's due rows; the dead target's stay pending
            run_rounds(d, clock, 1)
        store.commit(Batch(outbox=d.messages([firing("late_critical")])))
        deadline = time.monotonic() + 60
        while "[FIRING critical] late_critical" not in titles(ok) and \
                time.monotonic() < deadline:
            run_rounds(d, clock, 1)
        assert "[FIRING critical] late_critical" in titles(ok)
        assert len(titles(ok)) == 151
    finally:
        d.stop()
        store.close()


def test_rows_from_before_per_target_delivery_keep_their_order(tmp_path, hooks):
    target = hooks(200)
    store = Store(tmp_path / "agent.db")
    # rows as the previous version wrote them: one per message, for every target
    store.commit(Batch(outbox=[OutboxMessage("fp-r", "critical", "[FIRING critical] r", "b"),
                               OutboxMessage("fp-r", "critical", "[RESOLVED] r", "b")]))
    clock = Clock()
    d = Dispatcher(store.outbox, AppriseSender([target.url()], None, {}, timeout=3), "en",
                   clock=clock)
    d.start()
    try:
        # a batch committed after the start writes a per-target row behind them
        store.commit(Batch(outbox=d.messages([firing("r")])))
        run_rounds(d, clock, 4)
        assert titles(target) == ["[FIRING critical] r", "[RESOLVED] r",
                                  "[FIRING critical] r"]
    finally:
        d.stop()
        store.close()
