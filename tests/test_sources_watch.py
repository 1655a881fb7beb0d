"""Waker against real directories (inotify read directly, and watchdog's observer where
inotify is missing), and what file sources make of the events it notes: a source lists its
folders again only when an event concerns it, at least every `rescan` seconds, and at every
poll while no Waker runs; open files are read at every poll whatever happened."""

from __future__ import annotations

import logging
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import FileModifiedEvent

from agent.sources import inotify
from agent.sources.changes import DATA, NAME, Changes
from agent.sources.files import FileSource
from agent.sources.watch import Waker, _Handler

BACKENDS = [pytest.param(True, id="inotify",
                         marks=pytest.mark.skipif(not inotify.AVAILABLE, reason="no inotify")),
            pytest.param(False, id="watchdog")]
NEVER = 3600.0  # a rescan interval no test waits for: what is found, events found


def append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def append_later(path, text: str, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        append(path, text)

    t = threading.Thread(target=write)
    t.start()
    return t


def texts(lines) -> list[str]:
    return [ln.text for ln in lines]


def silent_watch(folder: Path) -> Changes:
    """Changes that count `folder` as watched by a running watcher that reports nothing, as
    when inotify missed the events (overflow, a write from another host)."""
    changes = Changes()
    changes.start(1)
    changes.watch(1, str(folder))
    return changes


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_waker_wakes_within_a_second_of_an_append(tmp_path, use_inotify):
    log = tmp_path / "upload.log"
    log.write_text("old\n")
    src = FileSource("up", [str(tmp_path / "*.log")])
    src.poll()
    waker = Waker(src.watch_dirs(), Changes(), use_inotify=use_inotify)
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


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_waker_wakes_on_rotation(tmp_path, use_inotify):
    log = tmp_path / "upload.log"
    log.write_text("x\n")
    waker = Waker([str(tmp_path)], Changes(), use_inotify=use_inotify)
    waker.start()
    try:
        waker.wait(0.2)  # settle
        os.rename(log, tmp_path / "upload.log.1")
        assert waker.wait(timeout=2) is True
    finally:
        waker.stop()


def test_wake_from_another_thread_ends_a_wait(tmp_path):
    waker = Waker([str(tmp_path)], Changes())
    waker.start()
    try:
        threading.Timer(0.1, waker.wake).start()
        assert waker.wait(timeout=5) is True  # a finished delivery wakes the loop
        assert waker.wait(timeout=0.1) is False  # and only once
    finally:
        waker.stop()


def test_waker_wakes_with_its_descriptors_past_1023(tmp_path):
    # an agent holding many open logs (its budget is half the descriptor limit) gets high
    # descriptor numbers for a Waker made later: select() would refuse them
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("the descriptor limit is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        waker = Waker([str(tmp_path)], Changes())
        waker.start()
        try:
            writer = append_later(tmp_path / "a.log", "x\n", 0.1)
            assert waker.wait(timeout=5) is True
            writer.join()
            waker.wait(0)  # the rest of the writer's events (the write after the creation)
            assert waker.wait(timeout=0.2) is False  # and it does not spin
        finally:
            waker.stop()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_reading_the_files_does_not_wake_the_reader(tmp_path, use_inotify):
    # Opening a new file and listing the directory generate inotify events too; waking on
    # them would turn the ingest loop into a busy loop, and noting them would make every
    # source list its folders at every poll.
    changes = Changes()
    src = FileSource("up", [str(tmp_path / "*.log")], changes=changes)
    waker = Waker(src.watch_dirs(), changes, use_inotify=use_inotify)
    waker.start()
    try:
        (tmp_path / "upload.log").write_text("a\nb\n")
        assert waker.wait(timeout=2) is True
        time.sleep(0.1)  # let the writer's remaining events arrive before clearing them
        waker.wait(0)
        seen = changes.seq
        assert len(src.poll()) == 2  # lists the folder and opens the new file
        assert waker.wait(timeout=0.3) is False
        src.poll()
        assert waker.wait(timeout=0.3) is False
        assert changes.since(seen) == (seen, [])
    finally:
        waker.stop()


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_events_are_noted_by_folder_name_and_kind(tmp_path, use_inotify):
    changes = Changes()
    waker = Waker([str(tmp_path)], changes, use_inotify=use_inotify)
    waker.start()
    try:
        waker.wait(0.2)
        seen = changes.seq
        append(tmp_path / "upload.log", "a\n")  # created, then written
        os.rename(tmp_path / "upload.log", tmp_path / "upload.log.1")
        folder = str(tmp_path)
        expected = {(folder, "upload.log", NAME), (folder, "upload.log", DATA),
                    (folder, "upload.log.1", NAME)}
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not expected <= set(changes.since(seen)[1] or ()):
            waker.wait(0.1)
        _, events = changes.since(seen)
        assert events is not None
        assert expected <= set(events)  # the latest of each: a burst of writes is one entry
    finally:
        waker.stop()


def test_missing_directory_is_skipped_and_the_rest_still_wake(tmp_path):
    waker = Waker([str(tmp_path / "not-yet"), str(tmp_path)], Changes())
    waker.start()
    try:
        assert waker.alive()
        writer = append_later(tmp_path / "a.log", "x\n", 0.1)
        assert waker.wait(timeout=2) is True
        writer.join()
    finally:
        waker.stop()


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_watch_ends_when_its_directory_is_deleted(tmp_path, use_inotify):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    changes = Changes()
    waker = Waker([str(logdir)], changes, use_inotify=use_inotify)
    waker.start()
    try:
        assert changes.watching([str(logdir)])
        os.rmdir(logdir)
        deadline = time.monotonic() + 3
        while waker.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not waker.alive()  # tells the daemon to rebuild its watches
        assert not changes.watching([str(logdir)])  # sources list it at every poll meanwhile
    finally:
        waker.stop()


def test_watch_ends_when_its_directory_is_renamed_away(tmp_path):
    # the kernel's watch follows the folder to its new name, where its events would be
    # taken for the old one's
    logdir = tmp_path / "logs"
    logdir.mkdir()
    changes = Changes()
    waker = Waker([str(logdir)], changes)
    waker.start()
    try:
        os.rename(logdir, tmp_path / "logs.old")
        assert not waker.alive()
        assert not changes.watching([str(logdir)])
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


# -- what the sources make of the events ---------------------------------------------------

def test_a_folder_without_events_is_listed_again_after_the_rescan_interval(tmp_path):
    log = tmp_path / "upload-1.log"
    append(log, "a\n")
    src = FileSource("up", [str(tmp_path / "upload*.log")], rescan=2.0,
                     changes=silent_watch(tmp_path))
    assert texts(src.poll()) == ["a"]
    append(tmp_path / "upload-2.log", "new file\n")  # its event was missed
    append(log, "b\n")
    assert texts(src.poll()) == ["b"]  # the open file is read at once; no listing yet
    time.sleep(2.1)
    assert texts(src.poll()) == ["new file"]  # listed again within the interval


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_new_rotated_and_recreated_files_in_a_watched_folder_are_found_at_once(
        tmp_path, use_inotify):
    changes = Changes()
    log = tmp_path / "upload.log"
    append(log, "1\n")
    src = FileSource("up", [str(tmp_path / "*.log")], rescan=NEVER, changes=changes,
                     rotate_grace=0)
    waker = Waker(src.watch_dirs(), changes, use_inotify=use_inotify)
    waker.start()
    try:
        assert texts(src.poll()) == ["1"]
        got: list[str] = []

        def read(n: int) -> None:  # what the daemon does: wait for a wake, poll
            deadline = time.monotonic() + 5
            while len(got) < n and time.monotonic() < deadline:
                waker.wait(0.2)
                got.extend(texts(src.poll()))

        append(tmp_path / "other.log", "new file\n")
        read(1)
        assert got == ["new file"]
        os.rename(log, tmp_path / "upload.log.1")  # rename rotation: the new name is not matched
        append(tmp_path / "upload.log.1", "2\n")
        append(log, "3\n")
        read(3)
        os.unlink(tmp_path / "other.log")  # delete and recreate
        append(tmp_path / "other.log", "4\n")
        read(4)
        assert sorted(got) == ["2", "3", "4", "new file"]
    finally:
        waker.stop()


@pytest.mark.parametrize("use_inotify", BACKENDS)
def test_with_the_waker_stopped_every_poll_lists(tmp_path, use_inotify):
    changes = Changes()
    append(tmp_path / "a.log", "a\n")
    src = FileSource("up", [str(tmp_path / "*.log")], rescan=NEVER, changes=changes)
    waker = Waker(src.watch_dirs(), changes, use_inotify=use_inotify)
    waker.start()
    assert texts(src.poll()) == ["a"]
    waker.stop()
    append(tmp_path / "b.log", "b\n")
    os.rename(tmp_path / "a.log", tmp_path / "a.old")
    assert texts(src.poll()) == ["b"]  # the polling fallback: found without any event
    assert src.stats["rotations"] == 1


def test_copytruncate_between_listings_loses_no_line(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "1\n2\n")
    src = FileSource("up", [str(log)], rescan=NEVER, changes=silent_watch(tmp_path))
    assert texts(src.poll()) == ["1", "2"]
    append(log, "3\n")
    shutil.copyfile(log, tmp_path / "upload.log.1")
    os.truncate(log, 0)
    append(log, "4\n5\n6\n")  # regrown past the old offset: only the content tells
    # no event was noted: the open file's check finds the truncation and the copy is found
    assert texts(src.poll()) == ["3", "4", "5", "6"]
    assert src.stats["truncations"] == 1


def test_only_events_of_matching_files_make_a_source_list(tmp_path):
    changes = silent_watch(tmp_path)
    folder = str(tmp_path)
    append(tmp_path / "upload-1.log", "a\n")
    src = FileSource("up", [str(tmp_path / "upload*.log")], rescan=NEVER, changes=changes)
    assert texts(src.poll()) == ["a"]
    append(tmp_path / "upload-2.log", "b\n")  # not noted yet
    changes.note(folder, "erp.log", NAME)  # another source's file
    changes.note(folder, "upload-1.log", DATA)  # a write to the file being read
    changes.note(str(tmp_path / "elsewhere"), "upload-9.log", NAME)  # another folder
    assert src.poll() == []
    changes.note(folder, "upload-2.log", NAME)
    assert texts(src.poll()) == ["b"]


def test_a_write_to_a_matching_file_that_is_not_open_makes_a_source_list(tmp_path):
    changes = silent_watch(tmp_path)
    src = FileSource("up", [str(tmp_path / "upload*.log")], rescan=NEVER, changes=changes)
    assert src.poll() == []
    append(tmp_path / "upload.log", "a\n")  # e.g. created while events were lost
    changes.note(str(tmp_path), "upload.log", DATA)
    assert texts(src.poll()) == ["a"]


def test_lost_events_make_every_source_list(tmp_path):
    if not inotify.AVAILABLE:
        pytest.skip("no inotify")
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    changes = Changes()
    src = FileSource("up", [str(tmp_path / "upload*.log")], rescan=NEVER, changes=changes)
    waker = Waker([str(tmp_path)], changes)
    waker.start()
    try:
        assert src.poll() == []
        # fill the kernel's queue (events of two other files alternate: never merged), so
        # that the creation of the log is dropped and only the overflow is told
        fds = [os.open(tmp_path / n, os.O_WRONLY | os.O_CREAT) for n in ("x.txt", "y.txt")]
        try:
            for _ in range(limit // 2 + 10):
                for fd in fds:
                    os.write(fd, b"x")
        finally:
            for fd in fds:
                os.close(fd)
        append(tmp_path / "upload.log", "a\n")
        assert texts(src.poll()) == ["a"]
    finally:
        waker.stop()


@pytest.mark.skipif(not inotify.AVAILABLE, reason="no inotify")
def test_pacing_sleeps_through_writes_and_ends_when_a_file_is_created(tmp_path):
    """What the daemon waits on between reads of a busy log (`read_interval`): a log written
    every 5 ms does not end it, a new file does at once (a file created and deleted quickly
    must still be opened), and the writes are still there for the next wait."""
    log = tmp_path / "upload.log"
    log.write_text("", encoding="utf-8")
    waker = Waker([str(tmp_path)])
    waker.start()
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            append(log, "x\n")
            time.sleep(0.005)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(3):
            began = time.monotonic()
            waker.pace(0.3)
            assert time.monotonic() - began >= 0.29  # ~60 writes slept through
        assert waker.wait(0)  # and they wake the next wait
        created = append_later(tmp_path / "upload.log.new", "first\n", 0.05)
        began = time.monotonic()
        waker.pace(5.0)
        assert time.monotonic() - began < 2.0
        created.join()
    finally:
        stop.set()
        t.join()
        waker.stop()
    waker.pace(0.2)  # stopped: returns at once, nothing to wait on
