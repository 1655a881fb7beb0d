"""The outbox worker: sends in the background, survives failing senders, backs off."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from agent.notify.outbox import OutboxItem, OutboxResult, OutboxWorker, next_attempt_delay
from agent.notify.sender import AppriseSender, Delivery


@pytest.fixture
def worker_factory():
    workers: list[OutboxWorker] = []

    def make(send, on_result=None) -> OutboxWorker:
        worker = OutboxWorker(send, on_result=on_result)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        assert worker.stop(timeout=5)


def wait_for_results(worker: OutboxWorker, count: int, timeout: float = 5.0) -> list[OutboxResult]:
    results: list[OutboxResult] = []
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        results += worker.results()
        time.sleep(0.01)
    return results


def send_all(sender: AppriseSender):
    """The worker's send for a sender: every item to every target of its severity."""
    return lambda it: sender.send(it.title, it.body, it.severity)


def item(id_: int, title: str = "【告警·严重】upload_outage", attempts: int = 0) -> OutboxItem:
    return OutboxItem(
        id=id_, severity="critical", title=title, body="上传超时率 100%", attempts=attempts
    )


def test_worker_delivers_submitted_alerts_to_a_real_webhook(receiver, worker_factory):
    url = receiver.url("/alerts")
    worker = worker_factory(send_all(AppriseSender([url], None, {}, timeout=3)))

    worker.submit(item(1))
    worker.submit(item(2, title="【恢复】upload_outage"))
    results = wait_for_results(worker, 2)

    assert sorted(r.id for r in results) == [1, 2]
    assert all(r.delivery.ok for r in results)
    posts = [body for _, body in receiver.posts]
    assert [p["title"] for p in posts] == ["【告警·严重】upload_outage", "【恢复】upload_outage"]
    assert posts[0]["message"] == "上传超时率 100%"


def test_submit_returns_immediately_while_a_send_is_slow(worker_factory):
    release = threading.Event()

    def slow_send(it):
        release.wait(5)
        return Delivery(True, False, "sent")

    worker = worker_factory(slow_send)
    started = time.monotonic()
    worker.submit(item(1))
    worker.submit(item(2))
    assert time.monotonic() - started < 0.1
    assert worker.results() == []  # drain never blocks either
    release.set()
    assert len(wait_for_results(worker, 2)) == 2


def test_crashing_sender_is_a_recoverable_failure_and_the_worker_survives(worker_factory):
    calls = []

    def flaky_send(it):
        calls.append(it.title)
        if len(calls) == 1:
            raise ConnectionResetError("boom")
        return Delivery(True, False, "sent")

    worker = worker_factory(flaky_send)
    worker.submit(item(1))
    [failed] = wait_for_results(worker, 1)
    assert failed == OutboxResult(1, Delivery(False, True, "sender raised ConnectionResetError"))
    assert worker.alive()

    worker.submit(item(1, attempts=1))  # the daemon retries the same row later
    [retried] = wait_for_results(worker, 1)
    assert retried.delivery.ok


def test_dead_webhook_is_reported_not_raised(worker_factory):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = AppriseSender([f"json://127.0.0.1:{port}/x?cto=0.3&rto=0.3"], None, {}, timeout=2)
    worker = worker_factory(send_all(dead))
    worker.submit(item(7))
    [result] = wait_for_results(worker, 1)
    assert result.id == 7 and not result.delivery.ok and result.delivery.recoverable
    assert worker.alive()


def test_item_stays_in_flight_until_its_result_is_drained(worker_factory):
    sent = []

    def send(it):
        sent.append(it.title)
        return Delivery(True, False, "sent")

    worker = worker_factory(send)
    worker.submit(item(1))
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the result is recorded but not drained yet
    worker.submit(item(1))  # a daemon re-scanning due rows must not send it twice
    assert worker.in_flight() == {1}
    assert [r.id for r in wait_for_results(worker, 1)] == [1]
    assert worker.in_flight() == set()
    assert sent == ["【告警·严重】upload_outage"]


def test_stop_ends_the_thread():
    worker = OutboxWorker(lambda it: Delivery(True, False, "sent"))
    assert not worker.alive()
    worker.start()
    assert worker.alive()
    assert worker.stop(timeout=2)
    assert not worker.alive()


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        (0, 0.0),  # never tried: send now
        (1, 5.0),  # first retry after base
        (2, 10.0),
        (5, 80.0),
        (7, 320.0),
        (8, 600.0),  # 640 capped
        (5000, 600.0),  # a row failing for weeks must not overflow
    ],
)
def test_backoff_doubles_up_to_the_cap(attempts, expected):
    assert next_attempt_delay(attempts) == expected


def test_backoff_jitter_only_shortens_and_is_seedable():
    delays = [next_attempt_delay(3, jitter=0.5, rng=random.Random(seed)) for seed in range(50)]
    assert all(10.0 <= d <= 20.0 for d in delays)
    assert len(set(delays)) > 1
    assert next_attempt_delay(3, jitter=0.5, rng=random.Random(1)) == next_attempt_delay(
        3, jitter=0.5, rng=random.Random(1)
    )


def test_each_result_wakes_the_daemon_loop_at_once(worker_factory):
    woken = threading.Event()
    worker = worker_factory(lambda it: Delivery(True, False, "sent"), on_result=woken.set)
    worker.submit(item(1))
    assert woken.wait(2), "the loop would only learn of the delivery at its next poll"
    assert [r.id for r in worker.results()] == [1]


def test_a_failing_wake_up_hook_does_not_stop_deliveries(worker_factory):
    def broken_hook():
        raise RuntimeError("boom")

    worker = worker_factory(lambda it: Delivery(True, False, "sent"), on_result=broken_hook)
    worker.submit(item(1))
    worker.submit(item(2))
    assert sorted(r.id for r in wait_for_results(worker, 2)) == [1, 2]
    assert worker.alive()
