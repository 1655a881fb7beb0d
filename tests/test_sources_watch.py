"""Waker against a real directory watched by watchdog."""

from __future__ import annotations

import logging
import os
import threading
import time

from watchdog.events import FileModifiedEvent

from agent.sources.files import FileSource
from agent.sources.watch import Waker, _Handler


def append_later(path, text: str, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        with open(path, "a") as f:
            f.write(text)

    t = threading.Thread(target=write)
    t.start()
    return t


def test_waker_wakes_within_a_second_of_an_append(tmp_path):
    log = tmp_path / "upload.log"
    log.write_text("old\n")
    src = FileSource("up", [str(tmp_path / "*.log")])
    src.poll()
    waker = Waker(src.watch_dirs())
    waker.start()
    try:
        assert waker.alive()
        writer = append_later(log, "new\n", 0.2)
        started = time.monotonic()
        assert waker.wait(timeout=5) is True
        latency = time.monotonic() - started - 0.2
        writer.join()
        assert latency < 0.5
        assert [ln.text for ln in src.poll()] == ["new"]
    finally:
        waker.stop()
    assert not waker.alive()


def test_waker_wakes_on_rotation(tmp_path):
    log = tmp_path / "upload.log"
    log.write_text("x\n")
    waker = Waker([str(tmp_path)])
    waker.start()
    try:
        waker.wait(0.2)  # settle
        os.rename(log, tmp_path / "upload.log.1")
        assert waker.wait(timeout=2) is True
    finally:
        waker.stop()


def test_reading_the_files_does_not_wake_the_reader(tmp_path):
    # Opening a new file and listing the directory generate inotify events too; waking on
    # them would turn the ingest loop into a busy loop.
    src = FileSource("up", [str(tmp_path / "*.log")])
    waker = Waker(src.watch_dirs())
    waker.start()
    try:
        (tmp_path / "upload.log").write_text("a\nb\n")
        assert waker.wait(timeout=2) is True
        time.sleep(0.1)  # let the writer's remaining events arrive before clearing them
        waker.wait(0)
        assert len(src.poll()) == 2  # opens the new file
        assert waker.wait(timeout=0.3) is False
        src.poll()
        assert waker.wait(timeout=0.3) is False
    finally:
        waker.stop()


def test_missing_directory_is_skipped_and_the_rest_still_wake(tmp_path):
    waker = Waker([str(tmp_path / "not-yet"), str(tmp_path)])
    waker.start()
    try:
        assert waker.alive()
        writer = append_later(tmp_path / "a.log", "x\n", 0.1)
        assert waker.wait(timeout=2) is True
        writer.join()
    finally:
        waker.stop()


def test_watch_ends_when_its_directory_is_deleted(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    waker = Waker([str(logdir)])
    waker.start()
    try:
        os.rmdir(logdir)
        deadline = time.monotonic() + 3
        while waker.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not waker.alive()  # tells the daemon to rebuild its watches
    finally:
        waker.stop()


class _BrokenEvent:
    def set(self) -> None:
        raise RuntimeError("boom")


def test_handler_failure_is_logged_not_raised(caplog):
    handler = _Handler(_BrokenEvent())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="agent.sources.watch"):
        handler.dispatch(FileModifiedEvent("/tmp/x.log"))
    assert "handler failed" in caplog.text
