"""The counting path: JSON lines of a source that only windows read, counted without an Event.

A source whose lines no detector sees one by one (no per-line rule, no early rule, not an
invoice stage of the ledger) needs five things of each line: its time, status, error code,
level and latency. For such a source, `Tally` reads those five straight out of the line text
with a msgspec decoder that skips every other key, and counts them into the windows in one loop,
with no RawLine, record dict or Event per line. It decides exactly what `Engine.events` and
`Engine.push` decide on the same lines (tests/test_tally.py compares them): each value is
converted by the parser's own code, anything unusual (a line that is not a plain JSON object
with a readable timestamp, a cut or undecodable line) goes through the parser as usual, and time
advances, windows close and lateness is judged at the same lines.

It serves one source at a time: when several sources have lines to merge (a replay of several
sources, a daemon step where more than one file grew), the engine takes the usual path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from agent.detect.absence import AbsenceRule
from agent.detect.base import Detector
from agent.parse.base import Parser, field_value
from agent.parse.json_lines import JsonParser
from agent.types import Block, Event, LineBatch

if TYPE_CHECKING:
    from agent.pipeline import Engine

__all__ = ["Prepared", "Tally", "tally_for"]

# the fields windows count (agent/features.py _Acc.add), in the order it takes them
COUNTED = ("status", "error_code", "level", "latency_ms")
_MISS: Any = object()
_NONE = float("-inf")
_MEMO_SIZE = 4096  # raw values kept per field, as the parser's memo keeps them

# one line counted: (confirmed time, its POSIX time, the line's POSIX time, the line's time,
# status, error code, level, latency)
Item = tuple[datetime, float, float, datetime, Any, Any, Any, Any]


class Prepared:
    """A batch's lines read and confirmed (`Tally.prepare`), waiting to be counted (`push`)."""

    __slots__ = ("items", "last", "newest")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.last: datetime | None = None  # the confirmed time of the last line
        self.newest: datetime | None = None  # the latest line time


def tally_for(parser: Parser, watchers: Sequence[Detector] = (),
              window: float = 0.0) -> "Tally | None":
    """A Tally for the source of `parser`, or None when its lines cannot be read without their
    record: not JSON, a field reached through a dotted key, two fields (or the timestamp) read
    from the same key, or a detector that must see its events (`watchers`) other than an
    absence rule matching at most one of the counted fields, over windows of `window` s."""
    if type(parser) is not JsonParser:
        return None
    steps = parser.plain_steps(COUNTED)
    if steps is None:
        return None
    keys = [parser.ts_key] + [s.key for s in steps.values()]
    if len(set(keys)) != len(keys):
        return None
    watched: list[tuple[AbsenceRule, int, Any]] = []
    for d in watchers:
        if type(d) is not AbsenceRule or d.window_seconds != window:
            return None
        match = [(k, v) for k, v in d.match if not (k == "source" and v == parser.spec.name)]
        if len(match) > 1 or any(k not in COUNTED and k != "source" for k, _ in match):
            return None
        if match and match[0][0] == "source":
            continue  # another source's name: it never matches this source's events
        watched.append((d, COUNTED.index(match[0][0]) if match else -1,
                        match[0][1] if match else None))
    return Tally(parser, keys, watched)


class Tally:
    """Reads and counts one JSON source's lines for the windows (see the module's text)."""

    def __init__(self, parser: JsonParser, keys: list[str],
                 watched: list[tuple[AbsenceRule, int, Any]]) -> None:
        self.parser = parser
        # absence rules shown the source's events: (rule, the index in COUNTED of the field it
        # matches or -1 for every event, the value it matches)
        self.watched = watched
        self.source = parser.spec.name
        names = ("ts",) + COUNTED
        record = msgspec.defstruct(
            "Counted", [(n, Any, msgspec.field(name=k, default=None))
                        for n, k in zip(names, keys, strict=True)], gc=False)
        # the same numbers as the parser's decoder (Decimal for fractions); every other key is
        # skipped, though still checked: a line it accepts the parser's decoder accepts too
        self._decode: Callable[[str], Any] = msgspec.json.Decoder(
            record, float_hook=JsonParser.float_hook).decode
        steps = parser.plain_steps(COUNTED)
        assert steps is not None
        self._steps = [steps[f] for f in COUNTED]
        # each field's raw text (an integer for the latency) -> its value, as the parser's
        # memo has it but without its marker for refused values
        self._memos: tuple[dict[Any, Any], ...] = ({}, {}, {}, {})

    def prepare(self, engine: "Engine", batch: LineBatch) -> Prepared:
        """Read each line of `batch` and confirm its time (as `Engine.events` does); lines the
        fast reading does not take go through the parser, failures are counted there."""
        out = Prepared()
        items = out.items
        add = items.append
        decode = self._decode
        read = self.parser.times.read
        st_step, code_step, lvl_step, lat_step = self._steps
        st_memo, code_memo, lvl_memo, lat_memo = self._memos
        confirm = engine.confirmer(self.source)
        prev, last = confirm.prev, confirm.last
        prev_e = last_e = 0.0 if last is None else last.timestamp()
        newest = None
        for part in batch.parts:
            texts = part.texts if type(part) is Block else (part.text,)  # type: ignore[union-attr]
            for i, text in enumerate(texts):
                try:
                    if text[:1] != "{":
                        raise ValueError
                    rec = decode(text)
                    ts = read(rec.ts)
                    t = ts.timestamp()
                    st = rec.status
                    if st is not None:
                        got = st_memo.get(st, _MISS) if type(st) is str else _MISS
                        st = _learn(st_memo, st_step, st) if got is _MISS else got
                    code = rec.error_code
                    if code is not None:
                        got = code_memo.get(code, _MISS) if type(code) is str else _MISS
                        code = _learn(code_memo, code_step, code) if got is _MISS else got
                    lvl = rec.level
                    if lvl is not None:
                        got = lvl_memo.get(lvl, _MISS) if type(lvl) is str else _MISS
                        lvl = _learn(lvl_memo, lvl_step, lvl) if got is _MISS else got
                    lat = rec.latency_ms
                    if lat is not None:
                        got = lat_memo.get(lat, _MISS) if type(lat) is int else _MISS
                        lat = _learn(lat_memo, lat_step, lat) if got is _MISS else got
                except Exception:  # noqa: BLE001 - the parser reads it, and says what is wrong
                    got = engine.parse(part.line(i) if type(part) is Block
                                       else part)  # type: ignore[arg-type]
                    if not isinstance(got, Event):
                        continue
                    ts = got.ts  # type: ignore[assignment]
                    t = ts.timestamp()
                    st, code, lvl, lat = got.status, got.error_code, got.level, got.latency_ms
                # confirmed as agent.pipeline.Confirmed.push does
                prev, prev_e, last, last_e = last, last_e, ts, t
                if prev is None or ts < prev:
                    add((ts, t, t, ts, st, code, lvl, lat))
                else:
                    add((prev, prev_e, t, ts, st, code, lvl, lat))
                if newest is None or ts > newest:
                    newest = ts
        confirm.prev, confirm.last = prev, last
        if items:
            out.last = items[-1][0]
        out.newest = newest
        return out

    def push(self, engine: "Engine", prepared: Prepared, limit: datetime | None = None) -> None:
        """Count the prepared lines, advancing time before each as `Engine.push` does (no
        further than `limit`)."""
        source = self.source
        windows = engine.windows
        current = windows.current(source)
        # the window being counted into: [lo, hi); hi = -inf after windows closed (none)
        lo, hi, acc = current if current is not None else (0.0, _NONE, None)
        limit_e = 0.0 if limit is None else limit.timestamp()
        due = engine.due
        wm = engine.watermarks.get(source)
        late = 0
        counted = False
        # the times each absence rule is shown, handed over before windows close
        watched: list[tuple[int, Any, list[datetime], AbsenceRule]] = [
            (idx, value, [], rule) for rule, idx, value in self.watched]
        for conf, conf_e, t, ts, st, code, lvl, lat in prepared.items:
            if limit is None or conf < limit:
                if due is None or conf_e >= due:
                    Tally._show(watched)
                    engine.advance(conf)
                    due, hi = engine.due, _NONE
            elif due is None or limit_e >= due:
                Tally._show(watched)
                engine.advance(limit)
                due, hi = engine.due, _NONE
            if not lo <= t < hi:
                slot = windows.open_slot(source, t)
                if slot is None:
                    late += 1
                    if wm is None or conf > wm:
                        wm = conf
                    continue
                lo, hi, acc = slot
            acc.add(st, code, lvl, lat)  # type: ignore[union-attr]
            counted = True
            for idx, value, times, _ in watched:
                if idx < 0 or (st, code, lvl, lat)[idx] == value:
                    times.append(ts)
            if wm is None or conf > wm:
                wm = conf
        Tally._show(watched)
        if wm is not None:
            engine.watermarks[source] = wm
        if late:
            engine.counts.add(source, "late", late)
        if counted:
            windows.counted(lo, acc)  # type: ignore[arg-type]


    @staticmethod
    def _show(watched: list[tuple[int, Any, list[datetime], AbsenceRule]]) -> None:
        for _, _, times, rule in watched:
            if times:
                rule.saw(times)
                times.clear()


def _learn(memo: dict[Any, Any], step: Any, value: Any) -> Any:
    """The field's value for `value`, remembered when it is of the memo's type."""
    got = field_value(step, value)
    if type(value) is str or type(value) is int:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = got
    return got
