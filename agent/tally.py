"""The counting path: JSON lines of a source that only windows read, counted without an Event.

A JSON source whose lines need no Event (its rules judge windows, absence rules match on at
most one counted field, early threshold rules; not an invoice stage of the ledger) needs five
things of each line: its time, status, error code, level and latency. For such a source,
`Tally` reads those five straight out of the line text with a msgspec decoder that skips every
other key, and counts them into the windows in one loop, with no RawLine, record dict or Event
per line; an early rule is judged, with an Event made for it, only at a line that may make it
true (SourceThresholds.due_at and quiet_lines). It decides exactly what `Engine.events` and
`Engine.push` decide on the same lines (tests/test_tally.py compares them): each value is
converted by the parser's own code, anything unusual (a line that is not a plain JSON object
with a readable timestamp, a cut or undecodable line) goes through the parser as usual, and time
advances, windows close and lateness is judged at the same lines.

It serves one source at a time: when several sources have lines to merge (a replay of several
sources, a daemon step where more than one file grew), the engine takes the usual path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import msgspec

from agent.counting import Counts
from agent.detect.absence import AbsenceRule
from agent.detect.base import Detector
from agent.detect.threshold import Due, Placed, SourceThresholds
from agent.detect.when import changes_of
from agent.features import Windows, _Acc
from agent.parse.base import Parser, field_value
from agent.parse.json_lines import JsonParser
from agent.types import Block, Event, LineBatch, ParseFailure, RawLine

__all__ = ["Counted", "Tally", "tally_for"]


class _Confirm(Protocol):
    prev: datetime | None
    last: datetime | None


class Engine(Protocol):
    """What counting needs of the engine (agent/pipeline.py Engine)."""

    windows: Windows
    watermarks: dict[str, datetime]
    counts: Counts

    @property
    def due(self) -> float | None: ...

    def confirmer(self, source: str) -> _Confirm: ...

    def parse(self, raw: RawLine) -> Event | ParseFailure: ...

    def advance(self, now: datetime) -> None: ...

    def eval_failed(self, d: Detector, exc: ValueError) -> None: ...

    def decide_placed(self, placed: Placed) -> None: ...

# the fields windows count (agent/features.py _Acc.add), in the order it takes them
COUNTED = ("status", "error_code", "level", "latency_ms")
_NONE = float("-inf")
_STRETCH = 16  # fewer lines without an early rule holding are not worth asking for again
_new_event = tuple.__new__
_NO_EXTRA = Event._field_defaults["extra"]
_MEMO_SIZE = 4096  # raw values kept per field, as the parser's memo keeps them


class Counted(NamedTuple):
    """What `Tally.count` saw of a batch."""

    last: datetime | None  # the time the last line confirmed
    newest: datetime | None  # the latest line time


def tally_for(parser: Parser, watchers: Sequence[Detector] = (), window: float = 0.0,
              early: SourceThresholds | None = None) -> "Tally | None":
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
    ordered = [steps[f] for f in COUNTED]
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
    return Tally(parser, ordered, watched, early)


class Tally:
    """Reads and counts one JSON source's lines for the windows (see the module's text)."""

    def __init__(self, parser: JsonParser, steps: list[Any],
                 watched: list[tuple[AbsenceRule, int, Any]],
                 early: SourceThresholds | None = None) -> None:
        self.parser = parser
        # the source's early threshold rules: judged at the lines that change what they read
        # (an Event is made for those lines only)
        self.early = early
        self._bits: dict[tuple[Any, Any, Any, bool], int] = {}  # what a line's values change
        # absence rules shown the source's events: (rule, the index in COUNTED of the field it
        # matches or -1 for every event, the value it matches)
        self.watched = watched
        self.source = parser.spec.name
        # `steps`: how each field of COUNTED is read (Parser.plain_steps), in that order
        keys = [parser.ts_key] + [step.key for step in steps]
        names = ("ts",) + COUNTED
        record = msgspec.defstruct(
            "Counted", [(n, Any, msgspec.field(name=k, default=None))
                        for n, k in zip(names, keys, strict=True)], gc=False)
        # the same numbers as the parser's decoder (Decimal for fractions); every other key is
        # skipped, though still checked: a line it accepts the parser's decoder accepts too
        self._decode: Callable[[str], Any] = msgspec.json.Decoder(
            record, float_hook=JsonParser.float_hook).decode
        self._steps = steps
        # each field's raw text (an integer for the latency) -> its value, as the parser's
        # memo has it but without its marker for refused values
        self._memos: tuple[dict[Any, Any], ...] = ({}, {}, {}, {})

    def count(self, engine: Engine, batch: LineBatch,
              limit: datetime | None = None) -> Counted:
        """Read each line of `batch`, confirm its time (as `Engine.events` does), advance time
        to it (no further than `limit`) and count it into its window (as `Engine.push` does).
        Lines the fast reading does not take go through the parser, which counts failures."""
        decode = self._decode
        reader = self.parser.times
        read = reader.read
        # the reader's own cache and bound, read here to spare a call per line: a cached time
        # within the bound is what read() returns; anything else is asked of read()
        cache, bound = reader.cache, reader.bound
        st_step, code_step, lvl_step, lat_step = self._steps
        st_memo, code_memo, lvl_memo, lat_memo = self._memos
        confirm = engine.confirmer(self.source)
        prev, last = confirm.prev, confirm.last
        last_e = 0.0 if last is None else last.timestamp()
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
        ts: datetime
        conf: datetime
        newest: datetime | None = None
        early, bits_of = self.early, self._bits
        quiet_lo, quiet_bits = _NONE, 0  # a window and change found to judge no early rule
        sure_lo, sure = _NONE, 0  # a window and the lines after this one no early rule holds at
        # the lines counted into `acc` not handed to it yet: (status, code, level, latency,
        # time); they go to the window and the absence rules before windows close and when
        # the next line falls in another window
        run: list[tuple[Any, Any, Any, Any, datetime]] = []
        add = run.append
        for part in batch.parts:
            texts = part.texts if type(part) is Block else (part.text,)  # type: ignore[union-attr]
            for i, text in enumerate(texts):
                try:
                    # what this decoder accepts the parser's reads the same (a byte-order mark
                    # or a non-object is refused by both)
                    rec = decode(text)
                    known = cache.get(rec.ts)
                    if known is None or known > bound:
                        known = read(rec.ts)
                        bound = reader.bound
                    t = known._epoch
                    ts = known
                    # each field through its memo: the text fields' memos hold only texts (a
                    # number or a boolean never equals a key), the latency's only integers
                    st = rec.status
                    if st is not None:
                        try:
                            st = st_memo[st]
                        except KeyError:
                            st = _learn(st_memo, str, st_step, st)
                    code = rec.error_code
                    if code is not None:
                        try:
                            code = code_memo[code]
                        except KeyError:
                            code = _learn(code_memo, str, code_step, code)
                    lvl = rec.level
                    if lvl is not None:
                        try:
                            lvl = lvl_memo[lvl]
                        except KeyError:
                            lvl = _learn(lvl_memo, str, lvl_step, lvl)
                    lat = rec.latency_ms
                    if lat is not None:
                        if type(lat) is int:
                            try:
                                lat = lat_memo[lat]
                            except KeyError:
                                lat = _learn(lat_memo, int, lat_step, lat)
                        else:
                            lat = field_value(lat_step, lat)
                except Exception:  # noqa: BLE001 - the parser reads it, and says what is wrong
                    got = engine.parse(part.line(i) if type(part) is Block
                                       else part)  # type: ignore[arg-type]
                    if not isinstance(got, Event):
                        continue
                    ts = got.ts
                    t = ts.timestamp()
                    st, code, lvl, lat = got.status, got.error_code, got.level, got.latency_ms
                if newest is None or ts > newest:
                    newest = ts
                # confirmed as agent.pipeline.Confirmed.push does
                prev = last
                prev_e = last_e
                last = ts
                last_e = t
                if prev is None or ts < prev:
                    conf, conf_e = ts, t
                else:
                    conf, conf_e = prev, prev_e
                # time advances to it first, as in Engine.push
                if limit is None or conf < limit:
                    if due is None or conf_e >= due:
                        if run:
                            self._hand(acc, run)  # type: ignore[arg-type]
                        engine.advance(conf)
                        due, hi = engine.due, _NONE
                elif due is None or limit_e >= due:
                    if run:
                        self._hand(acc, run)  # type: ignore[arg-type]
                    engine.advance(limit)
                    due, hi = engine.due, _NONE
                if wm is None or conf > wm:
                    wm = conf
                if not lo <= t < hi:
                    if run:
                        self._hand(acc, run)  # type: ignore[arg-type]
                    slot = windows.open_slot(source, t)
                    if slot is None:
                        late += 1
                        continue
                    lo, hi, acc = slot
                add((st, code, lvl, lat, ts))
                counted = True
                if early is not None:
                    # for how many more lines of this window no early rule can hold: asked at
                    # a window's first line and after each such stretch; -1: not again here
                    if lo != sure_lo or sure == 0:
                        quiet = early.quiet_lines(lo, acc, len(run))  # type: ignore[arg-type]
                        sure_lo, sure = lo, quiet if quiet >= _STRETCH else -1
                        if quiet:
                            sure = max(sure - 1, -1)
                            continue
                    elif sure > 0:
                        sure -= 1
                        continue
                    # a rule may hold soon: judged by what each line changes
                    key = (st, code, lvl, lat is None)
                    bits = bits_of.get(key)
                    if bits is None:
                        if len(bits_of) >= _MEMO_SIZE:  # 100,000 error codes: kept bounded
                            bits_of.clear()
                        bits = bits_of[key] = changes_of(st, code, lvl, lat)
                    if lo != quiet_lo or bits != quiet_bits:
                        due_rules = early.due_at(lo, bits)
                        if due_rules is not None:
                            self._hand(acc, run)  # type: ignore[arg-type]
                            windows.counted(lo, acc)  # type: ignore[arg-type]
                            self._judge(engine, early, due_rules, lo, bits, ts, st, code, lvl,
                                        lat, part, i)
                            quiet_lo = _NONE
                        else:  # judged again only when the window or what changes differs
                            quiet_lo, quiet_bits = lo, bits
        if run:
            self._hand(acc, run)  # type: ignore[arg-type]
        confirm.prev, confirm.last = prev, last
        if wm is not None:
            engine.watermarks[source] = wm
        if late:
            engine.counts.add(source, "late", late)
        if counted:
            windows.counted(lo, acc)  # type: ignore[arg-type]
        return Counted(conf if newest is not None else None, newest)

    def last_confirmed(self, engine: Engine, batch: LineBatch) -> datetime | None:
        """The time `batch`'s last line will confirm once counted (None without a line that
        parses): what the daemon bounds time by while a source catches up. Reads only the last
        lines, with the parser, counting nothing."""
        times: list[datetime] = []
        for part in reversed(batch.parts):
            lines: Iterable[RawLine] = (
                (part.line(i) for i in range(len(part.texts) - 1, -1, -1))
                if isinstance(part, Block) else (part,))
            for raw in lines:
                got = self.parser.parse(raw)
                if isinstance(got, Event):
                    times.append(got.ts)
                    if len(times) == 2:
                        break
            if len(times) == 2:
                break
        if not times:
            return None
        prev = times[1] if len(times) == 2 else engine.confirmer(self.source).last
        return times[0] if prev is None or times[0] < prev else prev

    def _judge(self, engine: Engine, early: SourceThresholds, due: Due, start: float,
               bits: int, ts: datetime, st: Any, code: Any, lvl: Any, lat: Any,
               part: Block | RawLine, i: int) -> None:
        """The early rules due at one line, just counted: as Engine.push shows them an Event.
        Only the fields they read are filled; the line's place names it in a finding."""
        if type(part) is Block:
            path, line_no = part.path, part.first + i
        else:
            path, line_no = part.path, part.line_no  # type: ignore[union-attr]
        # positionally (see agent/types.py Event): keywords go through Python-level __new__
        ev = _new_event(Event, (ts, self.source, None, None, None, None, None, st, lat, code,
                                lvl, None, None, _NO_EXTRA, path, line_no))
        placed = early.judge(ev, engine.windows, engine.eval_failed, due, start, bits)
        if placed:
            engine.decide_placed(placed)

    def _hand(self, acc: _Acc, run: list[tuple[Any, Any, Any, Any, datetime]]) -> None:
        """Count `run` into its window and show the absence rules its matching lines, in line
        order; empty it."""
        if len(run) == 1:  # a line an early rule is judged at: columns would cost more
            st, code, lvl, lat, _ = run[0]
            acc.add(st, code, lvl, lat)
        else:
            acc.add_rows(run)
        for rule, idx, value in self.watched:
            times = [row[4] for row in run] if idx < 0 else \
                [row[4] for row in run if row[idx] == value]
            if times:
                rule.saw_window(times)  # a run is one window's
        run.clear()


def _learn(memo: dict[Any, Any], kind: type, step: Any, value: Any) -> Any:
    """The field's value for `value`, remembered when it is of the memo's `kind` exactly."""
    got = field_value(step, value)
    if type(value) is kind:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = got
    return got
