"""Notifier outage: the webhook refuses connections, then answers 500, then hangs, then comes
back, while lines keep arriving and the alert keeps firing and resolving.

The daemon runs its real loop (`Daemon.run`) on a thread of the test, reading a real file,
writing a real SQLite state and delivering to a real HTTP server on 127.0.0.1. Only the retry
clock of its dispatcher is moved by hand, so a retry after the 5 s, 10 s, 20 s backoff comes at
once when the test says so. Checked: ingestion never stalls (lines are counted while a
delivery hangs), and after the recovery every message arrives exactly once, in the order the
alerts changed.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.daemon import Daemon
from tests.conftest import free_port
from tests.test_daemon import db_rows, layout, lines_counted, wait_for
from tests.test_reliability_crash import FLAPPING, FlappingWriter


class OutageTarget:
    """A webhook on a fixed port whose behaviour the test sets: `refuse` (nothing listens),
    `500`, `hang` (reads the request and never answers until `mode` changes) or `ok`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[dict] = []  # bodies taken with 200
        self.answered_500 = 0
        self.hanging = 0  # requests being held right now
        self.mode = "refuse"
        self.released = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def url(self) -> str:
        # a read timeout longer than the hang the test watches: the worker really waits
        return f"json://127.0.0.1:{self.port}/hook?cto=0.5&rto=4"

    def set(self, mode: str) -> None:
        if mode == "refuse":
            self._close()
        elif self.server is None:
            self._open()
        self.mode = mode
        if mode != "hang":
            self.released.set()
        else:
            self.released.clear()

    def _open(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if outer.mode == "hang":
                    outer.hanging += 1
                    outer.released.wait(10)
                    outer.hanging -= 1
                    self.close_connection = True
                    return  # no answer at all
                if outer.mode == "500":
                    outer.answered_500 += 1
                    self.send_response(500)
                else:
                    outer.posts.append(body)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.released.set()
        self._close()


class RetryClock:
    """The dispatcher's clock: the wall clock plus what the test skipped ahead."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped

    def skip_backoff(self) -> None:
        self.skipped += 3600  # past any retry delay


def attempts(config: Path) -> int:
    rows = db_rows(config, "SELECT coalesce(sum(attempts), 0) FROM outbox")
    return rows[0][0] if rows else 0


def test_refused_500_and_hanging_target_never_stall_ingestion_and_all_arrive_once_in_order(
        tmp_path):
    target = OutageTarget()
    config = layout(tmp_path, urls=[target.url()], window="1s", rules=FLAPPING, batch_lines=200)
    writer = FlappingWriter(tmp_path / "logs" / "upload.log")
    clock = RetryClock()
    made: list[Daemon] = []

    def run() -> None:  # SQLite is used from the thread that opened it: build it here
        daemon = Daemon(config)
        assert daemon.dispatcher is not None
        daemon.dispatcher.clock = clock
        made.append(daemon)
        daemon.run()

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    wait_for(lambda: made, what="the daemon to start")
    daemon = made[0]
    writer.start()
    try:
        # refused: the first alert's delivery fails and is kept
        wait_for(lambda: attempts(config) >= 1, what="a refused delivery")
        target.set("500")
        clock.skip_backoff()
        wait_for(lambda: target.answered_500 >= 1, what="a delivery answered 500")
        target.set("hang")
        clock.skip_backoff()
        wait_for(lambda: target.hanging >= 1, what="a delivery hanging")
        before = lines_counted(config)
        time.sleep(1.5)
        assert target.hanging >= 1  # the worker is still waiting on the target...
        assert lines_counted(config) >= before + 100  # ...and lines go on being counted
        target.set("ok")
        wait_for(lambda: target.hanging == 0, what="the hung request to end")
        clock.skip_backoff()
        time.sleep(2.5)  # the alert fires and resolves again with the target up
    finally:
        writer.stop.set()
        writer.join()
    try:
        wait_for(lambda: lines_counted(config) == writer.written, what="every line counted")
        wait_for(lambda: db_rows(config, "SELECT count(*) FROM outbox WHERE status != 'sent'")
                 == [(0,)], what="every message delivered")
    finally:
        daemon.stop()
        loop.join(timeout=15)
        target.close()
    rows = db_rows(config, "SELECT title, body FROM outbox ORDER BY id")
    assert len(rows) >= 4  # alerts decided during the outage and after it
    # each message once, in the order the alert changed (firing, resolved, firing, ...)
    assert [(p["title"], p["message"]) for p in target.posts] == rows
    states = [t.split()[0] for t, _ in rows]
    assert states == ["[FIRING", "[RESOLVED]"] * (len(rows) // 2) + ["[FIRING"] * (len(rows) % 2)
