"""FileSource against real files in tmp_path: appends, rotations, restarts, odd bytes."""

from __future__ import annotations

import gzip
import logging
import os
import random
import shutil
import threading
import time

import pytest

from agent.sources import lines
from agent.sources.files import FileCheckpoint, FileSource
from agent.sources.position import digest


def append(path, data: bytes | str) -> None:
    with open(path, "ab") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def texts(lines) -> list[str]:
    return [ln.text for ln in lines]


def drain(src: FileSource, max_lines: int = 20000) -> list:
    out = []
    while batch := src.poll(max_lines):
        out += batch
    return out


def test_appended_lines_are_picked_up(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "a\nb\n")
    src = FileSource("up", [str(tmp_path / "*.log")])
    first = src.poll()
    assert [(ln.text, ln.line_no, ln.path, ln.source) for ln in first] == [
        ("a", 1, str(log), "up"), ("b", 2, str(log), "up")]
    assert src.poll() == []
    append(log, "c\n")
    assert [(ln.text, ln.line_no) for ln in src.poll()] == [("c", 3)]
    assert src.stats["lines"] == 3 and src.stats["files"] == 1


def test_file_created_after_start_is_read_from_beginning(tmp_path):
    logdir = tmp_path / "later"  # does not exist yet: not an error
    src = FileSource("up", [str(logdir / "upload*.log")], start_at="end")
    assert src.poll() == [] and src.watch_dirs() == set()
    logdir.mkdir()
    append(logdir / "upload-1.log", "first\nsecond\n")
    append(logdir / "other.txt", "not matched\n")
    assert texts(src.poll()) == ["first", "second"]
    assert src.watch_dirs() == {str(logdir)}


def test_rename_rotation_loses_no_line(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)], rotate_grace=0)
    with open(log, "a", buffering=1) as writer:
        writer.write("1\n2\n")
        assert texts(src.poll()) == ["1", "2"]
        writer.write("3\n4\n")  # not yet seen when the rotation happens
        os.rename(log, tmp_path / "upload.log.1")
        writer.write("5\n")  # the writer has not reopened yet
    append(log, "6\n7\n")  # logrotate `create`: a new file, new inode
    lines = src.poll()
    assert texts(lines) == ["3", "4", "5", "6", "7"]
    assert [ln.path for ln in lines] == [str(tmp_path / "upload.log.1")] * 3 + [str(log)] * 2
    assert [ln.line_no for ln in lines] == [3, 4, 5, 1, 2]
    append(log, "8\n")
    assert texts(src.poll()) == ["8"]
    assert src.stats["rotations"] == 1
    # The drained old file is let go: only the live file is checkpointed.
    assert [cp.path for cp in src.checkpoints()] == [str(log)]


def test_rename_rotation_to_matching_name_is_not_read_again(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload.log*")])
    append(log, "1\n2\n")
    assert texts(src.poll()) == ["1", "2"]
    append(log, "3\n")
    os.rename(log, tmp_path / "upload.log.1")
    append(log, "4\n")
    assert sorted(texts(src.poll())) == ["3", "4"]
    os.rename(tmp_path / "upload.log.1", tmp_path / "upload.log.2")
    os.rename(log, tmp_path / "upload.log.1")
    append(log, "5\n")
    assert texts(src.poll()) == ["5"]
    assert texts(src.poll()) == []
    assert len(src.checkpoints()) == 3


def test_writes_to_rotated_file_within_grace_are_read(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)], rotate_grace=30)
    with open(log, "a", buffering=1) as writer:
        writer.write("1\n")
        assert texts(src.poll()) == ["1"]
        os.rename(log, tmp_path / "upload.log.1")
        append(log, "new\n")
        assert texts(src.poll()) == ["new"]
        writer.write("late\n")  # the application reopens its log only a little later
    assert texts(src.poll()) == ["late"]
    assert len(src.checkpoints()) == 2  # rotated file still open, so still checkpointed


def test_copytruncate_loses_no_line(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)])
    append(log, "".join(f"old line {i}\n" for i in range(10)))
    assert len(src.poll()) == 10
    # logrotate copytruncate, then the file regrows past the old offset before the next poll,
    # so its size alone does not reveal the truncation.
    shutil.copy(log, tmp_path / "upload.log.1")
    os.truncate(log, 0)
    new = [f"new line number {i}" for i in range(20)]
    append(log, "".join(t + "\n" for t in new))
    lines = src.poll()
    assert texts(lines) == new
    assert [ln.line_no for ln in lines] == list(range(1, 21))
    assert src.stats["truncations"] == 1


def test_copytruncate_with_copy_matching_glob_is_not_read_again(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload.log*")])
    append(log, "".join(f"old line {i}\n" for i in range(10)))
    assert len(src.poll()) == 10
    append(log, "written just before rotation\n")
    shutil.copy(log, tmp_path / "upload.log.1")
    os.truncate(log, 0)
    append(log, "after rotation, long enough to pass the old offset " * 4 + "\n")
    lines = src.poll()
    assert texts(lines) == [
        "written just before rotation", "after rotation, long enough to pass the old offset " * 4]
    assert [(ln.path, ln.line_no) for ln in lines] == [
        (str(tmp_path / "upload.log.1"), 11), (str(log), 1)]
    assert src.poll() == []  # the copy, still matched by the glob, is not read again


def rotate_by_copytruncate(log, copy) -> None:
    shutil.copy(log, copy)
    os.truncate(log, 0)


@pytest.mark.parametrize("copy_name", ["upload.log.1", "upload.log-20261122"])
def test_copytruncate_to_a_name_the_glob_does_not_match_loses_no_line(tmp_path, copy_name):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload*.log")], rotate_grace=0)
    append(log, "".join(f"read {i}\n" for i in range(5)))
    assert texts(src.poll()) == [f"read {i}" for i in range(5)]
    append(log, "unread 1\nunread 2\n")  # written after our last read, before the rotation
    rotate_by_copytruncate(log, tmp_path / copy_name)
    append(log, "after 1\nafter 2\n")
    lines = drain(src)
    assert texts(lines) == ["unread 1", "unread 2", "after 1", "after 2"]
    assert [(ln.path, ln.line_no) for ln in lines] == [
        (str(tmp_path / copy_name), 6), (str(tmp_path / copy_name), 7), (str(log), 1),
        (str(log), 2)]
    assert src.stats["truncations"] == 1
    append(log, "later\n")
    assert texts(src.poll()) == ["later"]
    assert [cp.path for cp in src.checkpoints()] == [str(log)]  # the copy was let go


def test_copytruncate_recovery_when_the_file_regrew_past_the_old_offset(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload*.log")])
    append(log, "old 1\nold 2\n")
    assert texts(src.poll()) == ["old 1", "old 2"]
    append(log, "old 3\n")
    rotate_by_copytruncate(log, tmp_path / "upload.log.1")
    new = [f"new line long enough to pass the old offset {i}" for i in range(5)]
    append(log, "".join(t + "\n" for t in new))
    assert texts(drain(src)) == ["old 3"] + new


def test_copytruncate_ignores_compressed_and_unrelated_files_in_the_folder(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload*.log")], rotate_grace=0)
    header = "=== invoice uploader log, started by systemd, pid and version follow ===\n"
    append(log, header + "".join(f"read {i}\n" for i in range(5)))
    assert len(src.poll()) == 6
    append(log, "unread\n")
    # Newer than the real copy, so looked at first: an older rotation with the same header
    # (same head) but other lines at the old offset, and a compressed older rotation.
    append(tmp_path / "upload.log.2", header + "".join(f"other {i:04}\n" for i in range(50)))
    with gzip.open(tmp_path / "upload.log.3.gz", "wb") as f:
        f.write((header + "compressed line\n" * 10).encode() + os.urandom(4096))
    rotate_by_copytruncate(log, tmp_path / "upload.log.1")
    later = time.time() + 60
    for decoy in ("upload.log.2", "upload.log.3.gz"):
        os.utime(tmp_path / decoy, (later, later))
    append(log, "after\n")
    assert texts(drain(src)) == ["unread", "after"]


def test_copytruncate_while_the_agent_was_down_recovers_the_unread_lines(tmp_path):
    log = tmp_path / "upload.log"
    pattern = str(tmp_path / "upload*.log")
    src = FileSource("up", [pattern])
    append(log, "".join(f"read {i}\n" for i in range(5)))
    assert len(src.poll()) == 5
    stored = src.checkpoints()
    src.close()
    append(log, "unread 1\nunread 2\n")
    rotate_by_copytruncate(log, tmp_path / "upload.log.1")
    append(log, "after\n")
    again = FileSource("up", [pattern], first_run=False, rotate_grace=0)
    again.restore(stored)
    lines = drain(again)
    assert [(ln.text, ln.line_no) for ln in lines] == [
        ("unread 1", 6), ("unread 2", 7), ("after", 1)]
    assert [cp.path for cp in again.checkpoints()] == [str(log)]


def test_flush_returns_the_last_line_without_newline_once(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "a\nb\nlast line")
    src = FileSource("up", [str(log)])
    assert texts(src.poll()) == ["a", "b"]
    assert src.poll() == []
    lines = src.flush()
    assert [(ln.text, ln.line_no, ln.path) for ln in lines] == [("last line", 3, str(log))]
    assert src.poll() == [] and src.flush() == []
    assert src.checkpoints()[0].offset == os.path.getsize(log)


def test_text_appended_after_flush_starts_a_new_line(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "first part")
    src = FileSource("up", [str(log)])
    assert src.poll() == []
    assert texts(src.flush()) == ["first part"]
    append(log, " second\nthird\n")
    assert [(ln.text, ln.line_no) for ln in src.poll()] == [(" second", 2), ("third", 3)]


def test_flush_covers_every_file_and_survives_a_restart(tmp_path):
    append(tmp_path / "a.log", "a1\na2")
    append(tmp_path / "b.log", "b1\n")  # ends with a newline: nothing held
    append(tmp_path / "c.log", b"c1 \xff\r")  # bad byte, half of a CRLF
    pattern = str(tmp_path / "*.log")
    src = FileSource("up", [pattern])
    assert sorted(texts(src.poll())) == ["a1", "b1"]
    flushed = src.flush()
    assert sorted((ln.text, ln.replaced) for ln in flushed) == [
        ("a2", False), ("c1 \ufffd", True)]
    stored = src.checkpoints()
    src.close()
    again = FileSource("up", [pattern], first_run=False)
    again.restore(stored)
    assert again.poll() == [] and again.flush() == []


def test_flush_returns_a_held_overlong_line_cut(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)], max_line_bytes=10)
    append(log, "x" * 25)
    assert src.poll() == []
    assert [(ln.text, ln.truncated) for ln in src.flush()] == [("x" * 10, True)]
    append(log, "tail\n")
    assert texts(src.poll()) == ["tail"]


def test_delete_and_recreate_loses_no_line(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)], rotate_grace=0)
    append(log, "1\n")
    assert texts(src.poll()) == ["1"]
    append(log, "2\n")
    os.unlink(log)
    append(log, "3\n")
    assert texts(src.poll()) == ["2", "3"]
    append(log, "4\n")
    assert texts(src.poll()) == ["4"]
    assert len(src.checkpoints()) == 1


def test_partial_last_line_is_held_until_completed(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)])
    append(log, "done\nhalf")
    assert texts(src.poll()) == ["done"]
    assert src.checkpoints()[0].offset == 5  # not past the unfinished line
    append(log, " and half")
    assert src.poll() == []
    append(log, "\n")
    lines = src.poll()
    assert [(ln.text, ln.line_no) for ln in lines] == [("half and half", 2)]


def test_dangling_last_line_of_rotated_file_is_returned(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(log)], rotate_grace=0)
    append(log, "1\nno newline")
    assert texts(src.poll()) == ["1"]
    os.rename(log, tmp_path / "old.log.1")
    assert texts(src.poll()) == ["no newline"]
    assert src.checkpoints() == []


def test_crlf_line_endings_are_stripped(tmp_path):
    log = tmp_path / "win.log"
    append(log, "a\r\nb\r\n\r\nc\rd\r\n")
    src = FileSource("up", [str(log)])
    assert texts(src.poll()) == ["a", "b", "", "c\rd"]


def test_overlong_line_is_truncated_and_next_line_intact(tmp_path):
    log = tmp_path / "big.log"
    src = FileSource("up", [str(log)], max_line_bytes=100)
    append(log, "x" * 250 + "\nnext\n")
    lines = src.poll()
    assert [(ln.text, ln.truncated) for ln in lines] == [("x" * 100, True), ("next", False)]
    # An overlong line that arrives in pieces is held only up to the limit, then cut once.
    append(log, "y" * 150)
    assert src.poll() == []
    append(log, "y" * 150 + "\nafter\n")
    lines = src.poll()
    assert [(ln.text, ln.truncated, ln.line_no) for ln in lines] == [
        ("y" * 100, True, 3), ("after", False, 4)]
    assert src.stats["truncated"] == 2


def test_overlong_line_cut_inside_a_character_is_not_counted_as_replaced(tmp_path):
    log = tmp_path / "big.log"
    src = FileSource("up", [str(log)], max_line_bytes=10)
    append(log, "发票" * 10 + "\n")  # 3 bytes per character: byte 10 is mid-character
    [line] = src.poll()
    assert (line.text, line.truncated, line.replaced) == ("发票发", True, False)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_chinese_legacy_encodings_are_decoded(tmp_path, encoding):
    log = tmp_path / "cn.log"
    lines = ["上传发票 invoice_no=044001 状态=失败", "税号 91440300MA5", "空格\\n结尾"]
    append(log, "".join(t + "\r\n" for t in lines).encode(encoding))
    src = FileSource("up", [str(log)], encoding=encoding)
    got = src.poll()
    assert texts(got) == lines
    assert not any(ln.replaced for ln in got)


def test_invalid_bytes_are_replaced_and_counted(tmp_path):
    log = tmp_path / "bad.log"
    append(log, b"good\nbad \xff\xfe byte\nalso good\n")
    src = FileSource("up", [str(log)])
    lines = src.poll()
    assert [(ln.text, ln.replaced) for ln in lines] == [
        ("good", False), ("bad \ufffd\ufffd byte", True), ("also good", False)]
    assert src.stats["replaced"] == 1


def test_restart_from_checkpoints_continues_exactly(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "1\n2\n3\n")
    src = FileSource("up", [str(log)])
    assert texts(src.poll()) == ["1", "2", "3"]
    stored = src.checkpoints()  # the daemon commits after processing
    append(log, "4\n5 part")
    assert texts(src.poll()) == ["4"]  # processed, but the process dies before committing
    src.close()
    append(log, "ial\n6\n")
    again = FileSource("up", [str(log)], start_at="end", first_run=False)
    again.restore(stored)
    lines = again.poll()
    assert [(ln.text, ln.line_no) for ln in lines] == [("4", 4), ("5 partial", 5), ("6", 6)]


def test_restart_after_rotation_while_down_drains_old_file_first(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "1\n")
    src = FileSource("up", [str(log)])
    src.poll()
    stored = src.checkpoints()
    src.close()
    append(log, "2\n")  # written while the agent was down, then rotated away
    os.rename(log, tmp_path / "upload.log.1")
    append(log, "new\n")
    again = FileSource("up", [str(log)], first_run=False, rotate_grace=0)
    again.restore(stored)
    lines = again.poll()
    assert [(ln.text, ln.path) for ln in lines] == [
        ("2", str(tmp_path / "upload.log.1")), ("new", str(log))]
    assert [cp.path for cp in again.checkpoints()] == [str(log)]


def test_restart_after_file_was_replaced_reads_it_from_start(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "old 1\nold 2\n")
    src = FileSource("up", [str(log)])
    src.poll()
    stored = src.checkpoints()
    src.close()
    with open(log, "wb") as f:  # same inode, new content longer than the old offset
        f.write(b"fresh content line one\nfresh two\n")
    again = FileSource("up", [str(log)], first_run=False)
    again.restore(stored)
    assert texts(again.poll()) == ["fresh content line one", "fresh two"]


def test_restart_after_copytruncate_while_down_reads_only_the_unread_part_of_the_copy(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "".join(f"old line {i}\n" for i in range(10)))
    src = FileSource("up", [str(tmp_path / "upload.log*")])
    src.poll()
    stored = src.checkpoints()
    src.close()
    append(log, "unread old line\n")
    shutil.copy(log, tmp_path / "upload.log.1")
    with open(log, "wb") as f:
        f.write(b"new content that is longer than the old offset ever was " * 4 + b"\n")
    again = FileSource("up", [str(tmp_path / "upload.log*")], first_run=False)
    again.restore(stored)
    assert sorted(texts(again.poll())) == [
        "new content that is longer than the old offset ever was " * 4, "unread old line"]


def test_start_at_end_skips_existing_content_but_reads_appends(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "history 1\nhistory 2\nhalf-writ")
    src = FileSource("up", [str(tmp_path / "*.log")], start_at="end")
    assert src.poll() == []
    append(log, "ten\nlive\n")
    append(tmp_path / "new.log", "from the start\n")
    assert sorted(texts(src.poll())) == ["from the start", "half-written", "live"]


def test_start_at_end_does_not_apply_after_first_run(tmp_path):
    append(tmp_path / "upload.log", "appeared while we were down\n")
    src = FileSource("up", [str(tmp_path / "*.log")], start_at="end", first_run=False)
    assert texts(src.poll()) == ["appeared while we were down"]


def test_one_poll_is_bounded_and_the_next_continues(tmp_path):
    log = tmp_path / "huge.log"
    append(log, "".join(f"{i}\n" for i in range(50_000)))
    src = FileSource("up", [str(log)])
    first = src.poll(max_lines=1000)
    assert len(first) == 1000
    assert src.checkpoints()[0].line_no == 1000
    rest = drain(src, 7777)
    assert texts(first + rest) == [str(i) for i in range(50_000)]


def test_random_writes_and_chunk_edges_give_every_line_once(tmp_path, monkeypatch):
    # Tiny reads put chunk boundaries everywhere: inside CRLF, inside overlong lines.
    monkeypatch.setattr(lines, "CHUNK", 7)
    rng = random.Random(7)
    log = tmp_path / "fuzz.log"
    src = FileSource("up", [str(log)], max_line_bytes=20)
    expected, data = [], b""
    for i in range(400):
        body = f"{i}:" + "z" * rng.choice([0, 3, 15, 18, 30, 60])
        expected.append((body[:20], len(body) > 20))
        data += body.encode() + rng.choice([b"\n", b"\r\n"])
    got, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 40)
        append(log, data[pos:pos + step])
        pos += step
        got += src.poll(max_lines=rng.randint(1, 5))
    got += drain(src, 3)
    assert [(ln.text, ln.truncated) for ln in got] == expected
    assert [ln.line_no for ln in got] == list(range(1, 401))


def test_checkpoints_restore_mid_stream_at_any_point(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "".join(f"line {i}\n" for i in range(300)))
    seen: list[str] = []
    stored: list[FileCheckpoint] = []
    for _ in range(6):  # a restart after every batch of 50
        src = FileSource("up", [str(log)], first_run=not stored)
        src.restore(stored)
        seen += texts(src.poll(max_lines=50))
        stored = src.checkpoints()
        src.close()
    assert seen == [f"line {i}" for i in range(300)]


def test_utf16_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="utf-16"):
        FileSource("up", ["/var/log/x.log"], encoding="utf-16")
    with pytest.raises(ValueError, match="absolute"):
        FileSource("up", ["relative/*.log"])


# -- copies matched by the glob, folders that come and go, encodings -------------------------


def test_copytruncate_copy_seen_before_the_truncation_is_not_read_again(tmp_path):
    log, copy = tmp_path / "upload.log", tmp_path / "upload.log.1"
    src = FileSource("up", [str(tmp_path / "upload.log*")], rotate_grace=0)
    append(log, "".join(f"old line {i}\n" for i in range(10)))
    assert len(src.poll()) == 10
    append(log, "unread 1\nunread 2\nunread 3\n")
    shutil.copy(log, copy)
    # copy, poll, truncate, poll: the copy is matched while the original still holds it all
    assert texts(src.poll(max_lines=1)) == ["unread 1"]  # from the original, not the copy
    os.truncate(log, 0)
    append(log, "after\n")
    lines = drain(src)
    assert [(ln.text, ln.path, ln.line_no) for ln in lines] == [
        ("unread 2", str(copy), 12), ("unread 3", str(copy), 13), ("after", str(log), 1)]
    assert src.poll() == [] and src.stats["lines"] == 14


def test_copytruncate_copy_seen_while_being_written_is_not_read_again(tmp_path):
    log, copy = tmp_path / "upload.log", tmp_path / "upload.log.1"
    src = FileSource("up", [str(tmp_path / "upload.log*")], rotate_grace=0)
    append(log, "".join(f"old line {i}\n" for i in range(10)))
    assert len(src.poll()) == 10
    append(log, "unread\n")
    data = log.read_bytes()
    copy.write_bytes(b"")  # logrotate creates the copy, then fills it
    assert texts(src.poll()) == ["unread"]
    append(copy, data[:37])
    assert src.poll() == []
    append(copy, data[37:])
    assert src.poll() == []
    os.truncate(log, 0)
    append(log, "after\n")
    assert texts(drain(src)) == ["after"]


@pytest.mark.parametrize("budget", [3, 20000])
def test_copytruncate_of_lines_written_after_the_last_poll_reads_them_once(tmp_path, budget):
    # The sequence behind the flaky test below: the original had read nothing since the last
    # rotation when the next copy was made, so the copy could not be matched before the poll.
    log, first, second = (tmp_path / n for n in ("upload.log", "upload.log.1", "upload.log.2"))
    src = FileSource("up", [str(tmp_path / "upload.log*")], rotate_grace=0)
    append(log, "a0\na1\n")
    assert texts(src.poll()) == ["a0", "a1"]
    shutil.copy(log, first)
    assert src.poll() == []
    os.truncate(log, 0)
    assert src.poll() == []  # the original is back at byte 0, nothing read
    append(log, "".join(f"b{i}\n" for i in range(10)))
    os.replace(first, second)  # logrotate: .1 -> .2, copy, (poll), truncate
    shutil.copy(log, first)
    # Small budget: the copy is not reached before the truncation; large: the original and
    # the copy were both read in this poll.
    lines = src.poll(max_lines=budget)
    os.truncate(log, 0)
    append(log, "c0\n")
    lines += drain(src)
    cut = min(budget, 10)
    assert [(ln.text, ln.path) for ln in lines] == \
        [(f"b{i}", str(log)) for i in range(cut)] + \
        [(f"b{i}", str(first)) for i in range(cut, 10)] + [("c0", str(log))]
    assert src.poll() == [] and src.stats["lines"] == 13


def test_repeated_copytruncate_with_a_writer_counts_every_line_once(tmp_path):
    log = tmp_path / "upload.log"
    src = FileSource("up", [str(tmp_path / "upload.log*")], rotate_grace=0)
    lock, stop = threading.Lock(), threading.Event()
    written: list[str] = []
    log.touch()

    def writer() -> None:
        with open(log, "a", buffering=1) as f:  # O_APPEND, as applications log
            i = 0
            while not stop.is_set() or i < 2000:
                with lock:  # a rotation is copy-then-truncate with no line written between
                    text = f"line {i} " + "x" * (i % 50)
                    f.write(text + "\n")
                    written.append(text)
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    got: list[str] = []
    try:
        for r in range(30):
            got += texts(src.poll())
            with lock:
                for k in range(3, 0, -1):  # logrotate: rotate 4, copytruncate
                    older = tmp_path / f"upload.log.{k}"
                    if older.exists():
                        os.replace(older, tmp_path / f"upload.log.{k + 1}")
                shutil.copy(log, tmp_path / "upload.log.1")
                # The bad moment: the copy is there, the original not truncated yet.  A small
                # budget leaves lines unread, to be taken from the copy after the truncation.
                got += texts(src.poll(max_lines=r % 4 * 5))
                os.truncate(log, 0)
            got += texts(src.poll())
    finally:
        stop.set()
        thread.join()
    got += texts(drain(src))
    assert len(got) == len(written) and sorted(got) == sorted(written)
    assert src.stats["lines"] == len(written)


def test_folder_renamed_away_and_back_continues_at_the_offset(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    append(logdir / "a.log", "".join(f"a{i}\n" for i in range(50)))
    append(logdir / "b.log", "".join(f"b{i}\n" for i in range(50)))
    src = FileSource("up", [str(logdir / "*.log")], rotate_grace=0)
    assert len(src.poll()) == 100
    os.rename(logdir, tmp_path / "logs.away")
    for _ in range(5):  # past the rotation grace: the files are let go
        assert src.poll() == []
    assert src.checkpoints() == []
    os.rename(tmp_path / "logs.away", logdir)
    assert src.poll() == []
    append(logdir / "a.log", "a50\n")
    assert [(ln.text, ln.line_no) for ln in src.poll()] == [("a50", 51)]
    assert src.stats["lines"] == 101


def test_missing_folder_is_reported_and_picked_up_once_it_exists(tmp_path):
    logdir = tmp_path / "not-yet"
    src = FileSource("up", [str(logdir / "*.log"), str(tmp_path / "upload.log")])
    assert src.poll() == []
    assert src.missing_dirs() == [str(logdir)]
    logdir.mkdir()
    append(logdir / "a.log", "hello\n")
    assert texts(src.poll()) == ["hello"]
    assert src.missing_dirs() == []


def test_gbk_log_read_as_utf8_suggests_gb18030_once(tmp_path, caplog):
    log = tmp_path / "cn.log"
    line = "上传发票 invoice_no=044001 状态=失败 原因=税号不符"
    src = FileSource("up", [str(log)])
    append(log, "".join(f"{line} {i}\n" for i in range(10)).encode("gbk"))
    src.poll()
    assert src.encoding_hint() is None  # too few lines to tell
    append(log, "".join(f"{line} {i}\n" for i in range(10, 30)).encode("gbk"))
    with caplog.at_level(logging.WARNING, logger="agent.sources.files"):
        lines = src.poll()
        append(log, f"{line}\n".encode("gbk"))
        lines += src.poll()
    assert len(lines) == 21 and all(ln.replaced for ln in lines)
    assert src.encoding_hint() == "gb18030"
    warnings = [r.getMessage() for r in caplog.records if "gb18030" in r.getMessage()]
    assert len(warnings) == 1 and "up" in warnings[0] and str(log) in warnings[0]


def test_utf8_log_gets_no_encoding_hint(tmp_path):
    log = tmp_path / "cn.log"
    append(log, "".join(f"上传发票 {i}\n" for i in range(30)))
    append(log, b"one bad \xff line\n")
    src = FileSource("up", [str(log)])
    assert len(src.poll()) == 31
    assert src.encoding_hint() is None


def test_stats_has_every_counter(tmp_path):
    src = FileSource("up", [str(tmp_path / "*.log")])
    assert set(src.stats) == {"lines", "truncated", "replaced", "rotations", "truncations",
                              "files", "list_errors"}


def test_copy_given_the_inode_of_a_checkpointed_file_while_down_is_read_once(tmp_path):
    # copytruncate while the agent was down, the copy getting the inode of a file the same
    # rotation deleted (file systems reuse a freed inode at once), whose checkpoint is stored:
    # that stale checkpoint must not hide that the file is the copy of the truncated content
    log, copy = tmp_path / "upload.log", tmp_path / "upload.log.1"
    append(log, "".join(f"read line {i}\n" for i in range(10)))
    src = FileSource("up", [str(tmp_path / "upload.log*")])
    assert len(src.poll()) == 10
    stored = src.checkpoints()
    src.close()
    append(log, "unread line\n")
    shutil.copy(log, copy)
    os.truncate(log, 0)
    append(log, "new\n")
    st = os.stat(copy)
    stale = FileCheckpoint(f"{st.st_dev}:{st.st_ino}", str(tmp_path / "upload.log.4"), 30, 2,
                           digest(b"other content"), digest(b"other head"))
    now = time.time_ns()  # the original is listed first: its copy still waits for restoring
    os.utime(log, ns=(now - 10**9, now - 10**9))
    os.utime(copy, ns=(now, now))
    again = FileSource("up", [str(tmp_path / "upload.log*")], first_run=False)
    again.restore([*stored, stale])
    assert sorted(texts(drain(again))) == ["new", "unread line"]


# -- backlog(): unread data the last poll knows of ---------------------------------------------


def test_backlog_while_the_line_budget_leaves_lines_unread(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "".join(f"{i}\n" for i in range(10)))
    src = FileSource("up", [str(log)])
    assert not src.backlog()  # nothing polled yet
    assert len(src.poll(4)) == 4 and src.backlog()
    assert len(src.poll(4)) == 4 and src.backlog()
    assert len(src.poll(2)) == 2 and not src.backlog()  # a full batch, but nothing left
    append(log, "10\n11")  # a line without its newline yet: nothing to read on at once
    assert texts(src.poll()) == ["10"] and not src.backlog()
    append(log, "\n")
    assert src.poll() and not src.backlog()


def test_backlog_covers_every_file_not_just_the_one_read_last(tmp_path):
    for name in ("a", "b", "c"):
        append(tmp_path / f"{name}.log", "".join(f"{name}{i}\n" for i in range(5)))
    src = FileSource("up", [str(tmp_path / "*.log")])
    got = src.poll(7)  # the budget ends inside the second file; the third is not touched
    assert len(got) == 7 and src.backlog()
    got += src.poll(7)
    assert len(got) == 14 and src.backlog()
    got += src.poll(7)
    assert len(got) == 15 and not src.backlog()


def test_no_backlog_for_a_drained_rotated_file_in_its_grace_or_a_followed_copy(tmp_path):
    log = tmp_path / "upload.log"
    append(log, "1\n2\n")
    src = FileSource("up", [str(tmp_path / "upload.log*")], rotate_grace=60)
    assert len(src.poll()) == 2
    shutil.copy(log, tmp_path / "upload.log.2")  # a copy of what was read: followed, not read
    append(log, "3\n")
    os.rename(log, tmp_path / "upload.log.1")  # drained, then kept open for the grace
    append(log, "4\n")
    assert texts(src.poll()) == ["3", "4"]
    assert not src.backlog()
    assert src.poll() == [] and not src.backlog()


def test_a_file_that_cannot_be_read_is_no_backlog(tmp_path, monkeypatch):
    # retried at the regular poll interval, not in a busy loop
    append(tmp_path / "upload.log", "1\n2\n")
    src = FileSource("up", [str(tmp_path / "*.log")])

    def failing(*_):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(src._lines, "read", failing)
    assert src.poll() == [] and not src.backlog()
    monkeypatch.undo()
    assert texts(src.poll()) == ["1", "2"] and not src.backlog()
