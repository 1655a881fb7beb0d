"""The small immutable records that flow between pipeline stages.

sources --RawLine--> parse --Event--> features --Window--> detect --Finding--> alerts
--Transition--> notify.  A stage imports only the types it receives and emits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from itertools import count, repeat
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple


class RawLine(NamedTuple):
    """One complete line read from a log file, already decoded (a NamedTuple: built once per
    line, it is several times cheaper than a frozen dataclass and just as immutable)."""

    source: str  # config name of the source
    path: str  # the path the line was read from
    line_no: int  # 1-based line number within that file
    text: str  # decoded text without the line terminator
    truncated: bool = False  # longer than max_line_bytes and cut
    replaced: bool = False  # had undecodable bytes, replaced with U+FFFD


class Block(NamedTuple):
    """Lines of one file read and decoded together, in file order: none was cut or had bytes
    replaced. A consumer that needs no RawLine per line (agent/tally.py) reads the texts as
    they are; `raw()` makes the RawLines any other consumer takes."""

    source: str
    path: str
    first: int  # line number of texts[0] within the file, 1-based
    texts: list[str]  # each line's text without its terminator

    def raw(self) -> list[RawLine]:
        return list(map(_new_raw, zip(repeat(self.source), repeat(self.path),
                                      count(self.first), self.texts, repeat(False),
                                      repeat(False))))

    def line(self, i: int) -> RawLine:
        """The RawLine of texts[i]."""
        return RawLine(self.source, self.path, self.first + i, self.texts[i])


# a RawLine from a tuple of its six fields, without the NamedTuple's Python-level __new__
_new_raw = partial(tuple.__new__, RawLine)


class LineBatch:
    """What one read of a source hands out: its lines in file order, as blocks read together
    and single lines (cut, undecodable, or a file's last line). `len()` counts lines."""

    __slots__ = ("parts", "lines")

    def __init__(self) -> None:
        self.parts: list[Block | RawLine] = []
        self.lines = 0

    def __len__(self) -> int:
        return self.lines

    def append(self, line: RawLine) -> None:
        self.parts.append(line)
        self.lines += 1

    def add_block(self, block: Block) -> None:
        self.parts.append(block)
        self.lines += len(block.texts)

    def raw(self) -> list[RawLine]:
        """Every line as a RawLine."""
        out: list[RawLine] = []
        for part in self.parts:
            if type(part) is Block:
                out += part.raw()
            else:
                out.append(part)  # type: ignore[arg-type]
        return out


class Event(NamedTuple):
    """The canonical event every parser produces (see DESIGN.md).

    A NamedTuple rather than a frozen dataclass: equally immutable, and built about three
    times faster, which matters once per log line.
    """

    ts: datetime  # timezone-aware
    source: str
    event: str | None = None  # issue | upload | ack | sync | query | login | system | ...
    invoice_no: str | None = None
    amount: str | None = None  # kept as written: decimal text, never a float
    issue_date: str | None = None
    taxpayer_id: str | None = None
    status: str | None = None  # ok | failed | timeout | pending | ...
    latency_ms: float | None = None
    error_code: str | None = None
    level: str | None = None
    host: str | None = None
    message: str | None = None
    extra: Mapping[str, Any] = MappingProxyType({})
    path: str | None = None
    line_no: int | None = None


# Event fields a log line can supply (operators map their names onto these). `source`, `path`
# and `line_no` come from where the line was read, never from the line; `extra` collects the
# rest.
READABLE_FIELDS = tuple(f for f in Event._fields if f not in ("source", "extra", "path",
                                                               "line_no"))


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A line that could not be turned into an Event; counted and sampled, never fatal."""

    source: str
    path: str
    line_no: int
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Window:
    """Features of one tumbling window [start, end) of one source."""

    source: str
    start: datetime
    end: datetime
    features: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict for one evaluation: whether its condition holds right now."""

    rule: str
    active: bool
    ts: datetime  # event time the verdict refers to (window end, or the line's time)
    labels: Mapping[str, str]
    values: Mapping[str, Any]  # feature values for message templates
    kind: str = "rule"  # rule | model | ledger
    line_no: int | None = None  # the line that caused it, for verdicts at one line
    path: str | None = None  # the file of that line
    # start of the window the verdict looked at; None for verdicts at one line. A window that
    # began before an alert became active cannot end it (an early firing stands until a
    # window after it says otherwise)
    window_start: datetime | None = None
    # a severity other than the rule's (month_end escalates to critical near the filing day);
    # None: the rule's own
    severity: str | None = None
    # what the condition is due to, when a rule can tell ("silent": a missing rule's source is
    # down): a firing alert whose cause changes is told again
    cause: str | None = None


# why a transition is told (Transition.reason), as logs and messages name it
FIRST = "first notification"
REPEAT = "repeat interval elapsed"
ESCALATED = "escalated"
CHANGED = "cause changed"
RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert changing state (or repeating): what operators are told about."""

    ts: datetime
    rule: str
    kind: str  # rule | model | ledger (the "source" key of the jsonl contract)
    severity: str
    state: str  # firing | resolved
    labels: Mapping[str, str]
    summary: Mapping[str, str]  # language -> rendered text
    fingerprint: str
    reason: str  # first notification | repeat interval elapsed | escalated | cause changed
    # | resolved
    line_no: int | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None  # the file of `line_no`
    fired_at: datetime | None = None  # when the alert began firing (for "resolved after ...")


_TIMES = ("active_since", "fired_at", "last_notified", "resolved_at", "early_at")


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert's lifecycle state, keyed by fingerprint (rule + labels); persisted."""

    fingerprint: str
    rule: str
    kind: str
    severity: str
    labels: Mapping[str, str]
    state: str  # pending | firing | resolved | cleared (pending that never fired)
    active_since: datetime
    fired_at: datetime | None = None
    last_notified: datetime | None = None
    resolved_at: datetime | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    line_no: int | None = None
    path: str | None = None
    # the newest line at which an early rule found its condition true: only a window that
    # begins after it can end the alert
    early_at: datetime | None = None
    cause: str | None = None  # the finding's cause when it last changed (see Finding)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in _TIMES:
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "AlertState":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in _TIMES:
            d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
        return cls(**d)


# -- what the alert management (agent/routing) hands to notify ------------------------------

@dataclass(frozen=True, slots=True)
class Muted:
    """An alert transition that was not sent, and why: an inhibition (`by` is the muting
    alert's rule), a silence (`by` is its id) or a maintenance window (`by` is its name)."""

    ts: datetime
    rule: str
    labels: Mapping[str, str]
    fingerprint: str
    state: str  # firing | resolved
    why: str  # inhibited | silenced | maintenance
    by: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to the people on call: the news of one alert group (alerts sharing the
    `group_by` labels), flushed after `group_wait`, then at most every `group_interval`."""

    ts: datetime  # event time of the flush
    key: str  # stable id of the group (the outbox orders a group's messages by it)
    group: Mapping[str, str]  # the group_by labels and their values
    severity: str  # highest severity among firing alerts, else among the resolved
    firing: tuple[Transition, ...]  # every alert of the group firing now (latest of each)
    resolved: tuple[Transition, ...]  # resolved since the group's last message
    news: frozenset[str]  # fingerprints of the alerts that changed since the last message
    muted: tuple[Muted, ...] = ()  # what this group's alerts inhibited since the last message
    reason: str = "first notification"  # first notification | update | repeat | resolved


@dataclass(frozen=True, slots=True)
class Silence:
    """An operator's silence: alerts whose rule and labels match every matcher are not
    notified between `starts_at` and `ends_at` (`invoice-agent silence add`)."""

    id: str
    matchers: Mapping[str, str]  # label -> value; the key "rule" matches the rule's name
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""

    def matches(self, rule: str, labels: Mapping[str, str]) -> bool:
        return all((rule if k == "rule" else labels.get(k)) == v
                   for k, v in self.matchers.items())

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at
