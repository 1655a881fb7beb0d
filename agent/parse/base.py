"""The part every format shares: mapping a record (log key -> value) onto an Event.

A format's parser only turns the line's text into such a record; field mapping, value words,
type conversion, timestamps and the never-raise guarantee live here, planned once at build time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from agent.parse.spec import READABLE_FIELDS, ParseSpec
from agent.parse.timestamps import TimestampError, TimestampReader, load_zone
from agent.parse.values import CONVERTERS, plain, word
from agent.types import Event, ParseFailure, RawLine

__all__ = ["Parser", "field_value"]

# A failure keeps a sample of the line for operators; a 1 MB garbage line must not be kept whole.
FAILURE_TEXT_CHARS = 2000


class _Step(NamedTuple):
    """How one canonical field is read, decided at build time."""

    slot: int  # the field's place among READABLE_FIELDS[1:] (its place in Event, less 2)
    key: str  # the log's key or group name
    path: tuple[str, ...] | None  # the key split at dots, when it has any
    words: Mapping[str, str] | None  # value words exactly as configured
    folded: Mapping[str, str] | None  # the same, case-folded, for a second try
    convert: Callable[[Any], Any]
    memo: dict[Any, Any] | None  # raw text or integer -> what it converts to (or _BAD)


# Fields whose values repeat (a handful of statuses, events, codes, hosts, latencies in whole
# milliseconds): each distinct raw value is converted once and looked up after. Invoice numbers,
# amounts and messages rarely repeat: a memo would only cost them.
_MEMO_FIELDS = frozenset({"event", "issue_date", "taxpayer_id", "status", "latency_ms",
                          "error_code", "level", "host"})
_MEMO_SIZE = 4096  # distinct values kept per field; beyond, the memo starts over
_FIELDS = len(READABLE_FIELDS) - 1  # the canonical fields a record may fill, ts aside
_BAD: Any = object()  # a value its field's conversion refused: it goes to `extra`, as written
_MISS: Any = object()
_new_event = tuple.__new__


_OTHER: Any = object()  # marks a record key no field reads: it goes to `extra`


def _walk(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


class Parser:
    """Turns RawLines of one source into Events; ``parse`` never raises.

    Subclasses implement ``_record(text)``, returning a mapping of log keys to values or a
    string saying why the line is unusable.
    """

    default_event: str | None = None
    """Event kind when neither the line nor the spec names one."""

    def __init__(self, spec: ParseSpec, clock: Callable[[], datetime] | None = None) -> None:
        self.spec = spec
        self._check_names(spec)
        self._times = TimestampReader(
            load_zone(spec.timezone), spec.timestamp_format, spec.max_future, clock
        )
        self._name = spec.name
        self._event = spec.event or self.default_event
        self._ts_key = spec.fields.get("ts", "ts")
        self._ts_path = self._path(self._ts_key)
        # One pass over the record's own keys (a dict lookup each) beats probing the record
        # for all eleven fields; None marks keys that are consumed but read elsewhere.
        by_key: dict[str, _Step | None] = {self._ts_key: None}
        lookups: list[_Step] = []  # dotted paths, and keys read into two fields
        for slot, canonical in enumerate(READABLE_FIELDS[1:]):
            key = spec.fields.get(canonical, canonical)
            # YAML turns some words into booleans or numbers (yes, 0): compare their text.
            words = {word(k): v for k, v in spec.values.get(canonical, {}).items()} or None
            folded = {k.casefold(): v for k, v in words.items()} if words else None
            step = _Step(slot, key, self._path(key), words, folded, CONVERTERS[canonical],
                         {} if canonical in _MEMO_FIELDS else None)
            if step.path is None and key not in by_key:
                by_key[key] = step
            else:
                lookups.append(step)
                by_key.setdefault(key, None)
        self._by_key = by_key
        self._lookups = tuple(lookups)

    def plain_steps(self, fields: tuple[str, ...]) -> dict[str, _Step] | None:
        """How each of `fields` (canonical names) is read, if each is read from one key of the
        record, without dots, and the timestamp too: what agent/tally.py needs to read those
        fields without the record. None otherwise."""
        if self._ts_path is not None:
            return None
        out: dict[str, _Step] = {}
        steps = {s.key: s for s in self._lookups}
        for canonical in fields:
            key = self.spec.fields.get(canonical, canonical)
            step = self._by_key.get(key) or steps.get(key)
            if step is None or step.path is not None or \
                    READABLE_FIELDS[step.slot + 1] != canonical:
                return None
            out[canonical] = step
        return out

    @property
    def ts_key(self) -> str:
        return self._ts_key

    @property
    def times(self) -> TimestampReader:
        return self._times

    @staticmethod
    def _check_names(spec: ParseSpec) -> None:
        for what, names in (("fields", spec.fields), ("values", spec.values)):
            unknown = sorted(set(names) - set(READABLE_FIELDS))
            if unknown:
                raise ValueError(
                    f"{what}: unknown event field(s) {', '.join(map(repr, unknown))}; "
                    f"expected some of {', '.join(READABLE_FIELDS)}"
                )
        for canonical, key in spec.fields.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"fields.{canonical}: expected a non-empty key name")
        if "ts" in spec.values:
            raise ValueError("values.ts: timestamps cannot be mapped by words")

    def _path(self, key: str) -> tuple[str, ...] | None:
        """Dotted keys may reach into nested JSON objects (only JSON records nest)."""
        return tuple(key.split(".")) if "." in key else None

    def _record(self, text: str) -> Mapping[str, Any] | str:
        raise NotImplementedError

    def parse(self, raw: RawLine) -> Event | ParseFailure:
        """Return the line's Event, or a ParseFailure saying why there is none."""
        try:
            text = raw.text
            if text[:1] == "\ufeff":  # a byte-order mark on a file's first line
                text = text[1:]
            record = self._record(text)
            if type(record) is str:
                return self._failure(raw, record)
            return self._build(raw, record)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - bad input must never stop ingestion
            return self._failure(raw, f"parser error: {type(exc).__name__}: {exc}")

    def _failure(self, raw: RawLine, reason: str) -> ParseFailure:
        if raw.truncated:
            reason = f"{reason}; the line was truncated"
        text = raw.text
        if len(text) > FAILURE_TEXT_CHARS:
            text = text[:FAILURE_TEXT_CHARS] + "..."
        return ParseFailure(raw.source, raw.path, raw.line_no, text, reason)

    def _build(self, raw: RawLine, record: Mapping[str, Any]) -> Event | ParseFailure:
        value = record.get(self._ts_key)
        if value is None and self._ts_path is not None:
            value = _walk(record, self._ts_path)
        if value is None:
            return self._failure(raw, f"no timestamp (no {self._ts_key!r} field)")
        try:
            ts = self._times.read(value)
        except TimestampError as exc:
            return self._failure(raw, str(exc))

        found: list[Any] = [None] * _FIELDS
        extra: dict[str, Any] = {}
        by_key = self._by_key
        for key, value in record.items():
            if value is None:
                continue
            step = by_key.get(key, _OTHER)
            if step is None:
                continue
            if step is _OTHER:
                extra[key] = value if type(value) is str else plain(value)
                continue
            memo = step.memo  # field_value(), inlined: this runs for every field of a line
            if memo is not None and (type(value) is str or type(value) is int):
                got = memo.get(value, _MISS)
                if got is _MISS:
                    got = _remember(step, memo, value)
            else:
                got = _convert(step, value)
            if got is _BAD:
                # Keep what the log said where operators can see it; the line is still useful.
                extra[key] = plain(value)
            elif got is not None:
                found[step.slot] = got
        if self._lookups:
            self._look_up(record, found, extra)
        if found[0] is None:  # `event`, the first of READABLE_FIELDS[1:]
            found[0] = self._event
        if raw.truncated:
            extra["truncated"] = True
        if raw.replaced:
            extra["replaced"] = True
        return _new_event(Event, (ts, self._name, *found, extra, raw.path, raw.line_no))

    def _look_up(self, record: Mapping[str, Any], found: list[Any],
                 extra: dict[str, Any]) -> None:
        """Fields the single pass cannot see: dotted paths and keys shared by two fields."""
        for step in self._lookups:
            value = record.get(step.key)
            if value is None and step.path is not None:
                value = _walk(record, step.path)
            if value is None:
                continue
            got = _convert(step, value)
            if got is _BAD:
                extra[step.key] = plain(value)
            elif got is not None:
                found[step.slot] = got


def field_value(step: _Step, value: Any) -> Any:
    """What the field of `step` holds for the raw `value` (not None): exactly what `_build`
    puts there, None where it puts the value in `extra` instead."""
    memo = step.memo
    if memo is not None and (type(value) is str or type(value) is int):
        got = memo.get(value, _MISS)
        if got is _MISS:
            got = _remember(step, memo, value)
    else:
        got = _convert(step, value)
    return None if got is _BAD else got


def _remember(step: _Step, memo: dict[Any, Any], value: Any) -> Any:
    got = _convert(step, value)
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[value] = got
    return got


def _convert(step: _Step, value: Any) -> Any:
    """A raw value as its field holds it: mapped by the value words, then converted; None for
    none, _BAD when the conversion refuses it."""
    if step.words is not None:
        value = _map_word(value, step.words, step.folded)
    try:
        return step.convert(value)
    except (ValueError, ArithmeticError):
        return _BAD


def _map_word(value: Any, words: Mapping[str, str], folded: Mapping[str, str] | None) -> Any:
    spelled = value if type(value) is str else word(value)
    mapped = words.get(spelled)
    if mapped is None and folded is not None:
        mapped = folded.get(spelled.strip().casefold())
    return value if mapped is None else mapped
