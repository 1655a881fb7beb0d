"""Lines out of the bytes of a tailed file: split on newline bytes, decoded in bulk.

Per line work is kept to the minimum (this is the hot path): a block of complete lines is
decoded at once, split on newlines and handed out as one Block; only a block that does not
decode, or may hold an overlong line, is taken line by line (RawLines).  Lines whose bytes do
not decode are kept (their starts) to suggest the encoding the file is likely in.
"""

from __future__ import annotations

import codecs
import logging
import os
from collections import deque

from agent.sources.position import PROBE, Tail
from agent.types import Block, LineBatch, RawLine

log = logging.getLogger("agent.sources.files")  # the source's own logger: one place to look

CHUNK = 1 << 20  # bytes per read: large enough to amortise syscalls, small enough to bound memory
# Upper bound of encoded bytes per character (utf-8, gb18030): a line of n characters is at most
# n * 4 bytes, so blocks whose lines are all short can skip the exact byte-length check.
_MAX_CHAR_BYTES = 4
_HINTS = ("gb18030", "gbk", "utf-16")  # encodings suggested when most lines do not decode
_HINT_MIN_LINES = 20


class LineReader:
    """Reads tails of the source `name` into LineBatches, counting into `stats` (lines, truncated,
    replaced).  `encoding` must be ASCII-compatible: lines are split on the byte 0x0A."""

    def __init__(self, name: str, encoding: str, max_line_bytes: int,
                 stats: dict[str, int]) -> None:
        try:
            codec = codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}") from None
        try:
            ascii_newline = b"\r\n".decode(codec.name) == "\r\n"
        except UnicodeDecodeError:
            ascii_newline = False
        if not ascii_newline:
            raise ValueError(f"encoding {encoding!r} is not ASCII-compatible (newline is not "
                             "the byte 0x0A); lines are split on bytes, so utf-16/utf-32 "
                             "logs cannot be tailed: convert them or log in utf-8")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.name = name
        self.stats = stats
        self._enc = codec.name
        self._max = max_line_bytes
        self._bad: deque[bytes] = deque(maxlen=8)  # starts of recent lines that did not decode
        self._bad_file = ""
        self._hinted = False

    def encoding_hint(self) -> str | None:
        """A likelier encoding when most lines do not decode (at least 20 read, over half with
        replaced bytes): the first of gb18030, gbk, utf-16 that decodes the kept starts of the
        recent bad lines.  None otherwise."""
        lines, bad = self.stats["lines"], self.stats["replaced"]
        if lines < _HINT_MIN_LINES or bad * 2 <= lines or not self._bad:
            return None
        for enc in _HINTS:
            if codecs.lookup(enc).name == self._enc:
                continue
            try:
                for raw in self._bad:  # not final: a kept start may end inside a character
                    codecs.getincrementaldecoder(enc)().decode(raw)
            except UnicodeDecodeError:
                continue
            return enc
        return None

    def warn_encoding(self) -> None:
        """Log the encoding hint, once, as soon as there is one."""
        if self._bad and not self._hinted:
            hint = self.encoding_hint()
            if hint:
                self._hinted = True
                log.warning("%s: most lines of %s are not valid %s but decode as %s: set the "
                            "source's encoding to %s", self.name, self._bad_file, self._enc,
                            hint, hint)

    def read(self, t: Tail, budget: int, out: LineBatch) -> None:
        """Read t up to its known size, appending at most `budget` lines to `out`."""
        limit = len(out) + budget
        while len(out) < limit and t.read_pos < t.size:
            chunk = os.pread(t.fd, min(CHUNK, t.size - t.read_pos), t.read_pos)
            if not chunk:
                break
            start = t.read_pos
            t.read_pos += len(chunk)
            if t.overlong:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue  # still inside the overlong line: drop bytes, keep memory bounded
                self.emit_pending(t, out)
                t.offset = start + nl + 1
                t.fp = chunk[nl + 1 - PROBE:nl + 1] if nl + 1 >= PROBE else os.pread(
                    t.fd, min(PROBE, t.offset), max(0, t.offset - PROBE))
                data = chunk[nl + 1:]
            else:
                data = t.pending + chunk if t.pending else chunk
            t.pending = b""
            self._split(t, data, limit - len(out), out)
        if len(t.head) < PROBE and t.offset > len(t.head):
            t.head = os.pread(t.fd, min(PROBE, t.offset), 0)

    def _split(self, t: Tail, data: bytes, budget: int, out: LineBatch) -> None:
        """Hand out the complete lines of `data` (which starts at t.offset); hold the rest."""
        last = data.rfind(b"\n")
        end = last + 1
        if end:
            n = data.count(b"\n", 0, end)
            stop = n > budget
            if stop:  # cut after the budget-th newline; the next poll re-reads from there
                n = budget
                end = len(data) - len(data.split(b"\n", budget)[-1]) if budget else 0
            if n:
                self._emit(t, data[:end], n, out)
                t.offset += end
                t.fp = data[end - PROBE:end] if end >= PROBE else (t.fp + data[:end])[-PROBE:]
            if stop:
                t.read_pos = t.offset
                return
        rest = data[end:]
        if len(rest) > self._max:
            t.pending, t.overlong = rest[:self._max], True
        else:
            t.pending = rest

    def _emit(self, t: Tail, block: bytes, n: int, out: LineBatch) -> None:
        """Decode `block` (n lines, each ending in newline) in bulk; per line only if needed."""
        try:
            text = block.decode(self._enc)
        except UnicodeDecodeError:
            text = None
        if text is not None:
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            texts = text.split("\n")
            texts.pop()
            fits = len(block) <= self._max or \
                max(map(len, texts)) * _MAX_CHAR_BYTES <= self._max
            if fits and len(texts) == n:
                out.add_block(Block(self.name, t.shown, t.line_no + 1, texts))
                t.line_no += n
                self.stats["lines"] += n
                return
        for raw in block[:-1].split(b"\n"):
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            cut = len(raw) > self._max
            self._add(t, raw[:self._max] if cut else raw, cut, out)

    def _add(self, t: Tail, raw: bytes, truncated: bool, out: LineBatch) -> None:
        """One line decoded on its own (the slow path: a block did not decode, or was cut)."""
        text, replaced = self._decode(raw, truncated)
        if replaced:
            self._bad.append(raw[:4096])
            self._bad_file = t.shown
        t.line_no += 1
        out.append(RawLine(self.name, t.shown, t.line_no, text, truncated, replaced))
        self.stats["lines"] += 1
        self.stats["truncated"] += truncated
        self.stats["replaced"] += replaced

    def _decode(self, raw: bytes, prefix: bool = False) -> tuple[str, bool]:
        """Text and whether bytes were replaced; strict first because it is the fast common
        case.  A `prefix` (cut at max_line_bytes) drops a character cut in half."""
        if prefix:
            try:
                return codecs.getincrementaldecoder(self._enc)().decode(raw), False
            except UnicodeDecodeError:
                return codecs.getincrementaldecoder(self._enc)("replace").decode(raw), True
        try:
            return raw.decode(self._enc), False
        except UnicodeDecodeError:
            return raw.decode(self._enc, "replace"), True

    def emit_pending(self, t: Tail, out: LineBatch) -> None:
        """Hand out the held line as it is (an overlong line's prefix, or a dangling last line)."""
        raw = t.pending[:-1] if not t.overlong and t.pending.endswith(b"\r") else t.pending
        self._add(t, raw, t.overlong, out)
        t.pending, t.overlong = b"", False

