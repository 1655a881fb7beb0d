"""The running ledger: each event of a stage source updates its invoice's record.

`observe(ev)` finds the stages the event reaches, checks its fields (number, taxpayer id,
amount, date, required fields), compares them with the other stages and returns an `Update`
for the ledger rules. Records touched by the current batch stay in memory (read-your-writes);
every other record is one indexed read away in SQLite. `take()` hands the batch's changes to
the batch commit, so they are written with the offsets of the lines that caused them; replay
passes `flush` to write them to its scratch database every few thousand records instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from agent.counting import Counts
from agent.ledger.config import FIELDS, LedgerConfig, StageConfig
from agent.ledger.deadlines import Deadlines
from agent.ledger.features import LedgerWindows
from agent.ledger.numbers import invoice_key, same_value, taxpayer_problem
from agent.ledger.records import Duplicate, InvoiceRecord, Mismatch, Seen, Update
from agent.store.ledger import Invoices
from agent.store.records import LedgerChanges, LedgerFinding
from agent.types import Event, Window

FLUSH_EVERY = 5000  # records buffered before replay writes them out
# replay writes its buffer out before a window's gauges when it holds more than this many
# records: the gauges correct the stored counts record by record
GAUGE_FLUSH = 512
HOT_RECORDS = 16384  # stored records kept in memory after their batch (bounded)
ROUTES = 1024  # distinct (source, event, status) and log paths remembered


class NamedSource(Protocol):
    """What the ledger needs of a configured source (agent.config.SourceConfig)."""

    @property
    def name(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, str]: ...


class Ledger:
    def __init__(self, config: LedgerConfig, sources: Sequence[NamedSource], repo: Invoices,
                 window: timedelta, lateness: timedelta, counts: Counts | None = None,
                 flush: Callable[[LedgerChanges], None] | None = None):
        self.config = config
        self.repo = repo
        self.counts = counts if counts is not None else Counts()
        self.order = list(config.stages)
        self._first, self._final = self.order[0], self.order[-1]
        self._one_taxpayer = "taxpayer_id" not in config.compare  # else a mismatch says it
        self._by_source: dict[str, list[tuple[str, StageConfig]]] = {}
        for name, stage in config.stages.items():
            self._by_source.setdefault(stage.source, []).append((name, stage))
        self.sources = frozenset(self._by_source)
        # the log's own key for the amount: an amount that did not parse is kept there
        self._amount_key = {s.name: s.fields.get("amount", "amount") for s in sources}
        self._flush = flush
        # key -> (record, its first-stage time as stored if the stored row was pending)
        self._dirty: dict[str, tuple[InvoiceRecord, float | None]] = {}
        # records written by the last batches, as stored (same entry shape): the invoice's
        # next stage usually comes soon after, and is then found without a read and a JSON
        # decode. Two generations of at most HOT_RECORDS // 2 each keep it bounded.
        self._hot: dict[str, tuple[InvoiceRecord, float | None]] = {}
        self._hot_old: dict[str, tuple[InvoiceRecord, float | None]] = {}
        self._hot_gen = repo.generation
        # (source, event, status) -> the stages such an event reaches (None: not about one)
        self._routes: dict[tuple[str, str | None, str | None],
                           tuple[tuple[str, StageConfig], ...] | None] = {}
        self._require = {name: tuple(stage.require) for name, stage in config.stages.items()}
        self._compare_fields = tuple(config.compare)
        self._files: dict[str, str | None] = {}  # a log's path -> its file name
        self._findings: list[LedgerFinding] = []
        self._trackers: dict[str, Deadlines] = {}
        self._rules: list[str] | None = None
        self.open = repo.open_count()  # pending: at the first stage, not yet at the final
        self.windows = LedgerWindows(window, lateness)
        self.horizon = math.inf  # replay: the end of the data, beyond which nothing is judged

    # -- events in ---------------------------------------------------------------------------
    def _route(self, source: str, event: str | None, status: str | None
               ) -> tuple[tuple[str, StageConfig], ...] | None:
        """The stages an event of `source` with this event and status reaches (None: it is
        not about any stage of the source)."""
        about = False
        reached: list[tuple[str, StageConfig]] = []
        for name, stage in self._by_source.get(source, ()):
            if stage.event is not None and event != stage.event:
                continue
            about = True
            if stage.status is None or status == stage.status:
                reached.append((name, stage))
        out = tuple(reached) if about else None
        if len(self._routes) < ROUTES:  # statuses come from the logs: keep the table bounded
            self._routes[(source, event, status)] = out
        return out

    def observe(self, ev: Event) -> Update | None:
        """Record one event of a stage source; None when it is not about an invoice stage."""
        source = ev.source
        if source not in self._by_source:
            return None
        route = (source, ev.event, ev.status)
        reached = self._routes[route] if route in self._routes else self._route(*route)
        if reached is None:
            return None
        ts = ev.ts.timestamp()
        number = ev.invoice_no
        if number is None:
            if reached:  # counted, not ledgered: there is nothing to key it by
                self.counts.add(source, "ledger_no_key")
                self.windows.count("no_key", ts)
            return None
        code = ev.extra.get(self.config.code) if self.config.code else None
        key: str | None
        if code is None and len(number) == 20 and number.isdigit() and number.isascii():
            key, why = number, ""  # the usual all-electronic number, checked cheaply
        else:
            key, why = invoice_key(number, str(code) if code is not None else None,
                                   self.config.check_numbers)
        # the fields' own checks (each distinct date and taxpayer id is checked once)
        problems: list[str] = []
        if ev.amount is None:
            raw = self._raw_amount(ev)
            if raw is not None:
                problems.append(f"amount {str(raw)[:40]!r} is not a number")
        if ev.issue_date is not None and not _is_date(ev.issue_date):
            problems.append(f"issue date {ev.issue_date[:40]!r} is not a date")
        if ev.taxpayer_id is not None and self.config.check_taxpayer_ids:
            bad = taxpayer_problem(ev.taxpayer_id)
            if bad:
                problems.append(bad)
        if key is None:
            self.counts.add(source, "ledger_malformed")
            update = Update(ev, ts, None, number, None, tuple(n for n, _ in reached),
                            problems=(why, *problems))
            self._incomplete(update)
            return update
        got = self._dirty.get(key)
        if got is not None:
            rec, new = got[0], False
        else:
            rec, new = self._record(key, number, ts)
        if ev.taxpayer_id and self._one_taxpayer:
            if rec.taxpayer_id is None:
                rec.taxpayer_id = ev.taxpayer_id
            elif rec.taxpayer_id != ev.taxpayer_id:
                problems.append(f"invoice number used by two taxpayers: {rec.taxpayer_id} and "
                                f"{ev.taxpayer_id}")
        first: list[str] = []
        mismatches: list[Mismatch] = []
        duplicate = None
        stages = rec.stages
        for name, _stage in reached:
            seen = stages.get(name)
            if seen is None:
                path = ev.path
                if not path:
                    file = None
                else:
                    file = self._files.get(path)
                    if file is None:
                        file = path.rsplit("/", 1)[-1]
                        if len(self._files) < ROUTES:
                            self._files[path] = file
                seen = Seen(ts, ev.amount, ev.issue_date, ev.taxpayer_id, ev.status, source,
                            file, ev.line_no)
                if stages:
                    mismatches += self._compare(rec, name, seen)
                stages[name] = seen
                first.append(name)
                require = self._require[name]
                if require:
                    problems += [f"{name} without {f}" for f in require
                                 if getattr(ev, f) is None and not (
                                     f == "amount" and self._raw_amount(ev) is not None)]
            else:
                diffs = _diffs(seen, ev)
                if diffs:
                    duplicate = Duplicate(name, diffs)
                else:
                    seen.n += 1
                if ts < seen.ts:
                    seen.ts = ts
        if first:
            was_pending = rec.start_ts is not None and rec.final_ts is None
            if self._first in first:
                rec.start_ts = ts
                self.windows.count("issued", ts)
            if self._final in first:
                rec.final_ts = ts
                if rec.start_ts is not None:
                    self.windows.lag(ts, ts - rec.start_ts)
            self.open += (rec.start_ts is not None and rec.final_ts is None) - was_pending
        status_before = rec.status
        if ev.status is not None and (rec.status_ts is None or ts >= rec.status_ts):
            rec.status, rec.status_ts = ev.status, ts
        if ts < rec.first_ts:
            rec.first_ts = ts
        if ts > rec.last_ts:
            rec.last_ts = ts
        update = Update(ev, ts, key, number, rec, tuple(first), new, status_before,
                        tuple(problems), tuple(mismatches), duplicate)
        if problems or mismatches or duplicate:
            self._record_findings(update)
        if self._flush is not None and len(self._dirty) >= FLUSH_EVERY:
            self._flush(self.take())
        return update

    def _record(self, key: str, number: str, ts: float) -> tuple[InvoiceRecord, bool]:
        got = self._dirty.get(key)
        if got is not None:
            return got[0], False
        if self._hot_gen != self.repo.generation:  # rows were deleted (pruned) since
            self._hot, self._hot_old = {}, {}
            self._hot_gen = self.repo.generation
        got = self._hot.get(key) or self._hot_old.get(key)
        if got is not None:
            self._dirty[key] = got
            return got[0], False
        row = self.repo.get(key)
        if row is None:
            rec = InvoiceRecord(key, number, ts)
            self._dirty[key] = (rec, None)
            return rec, True
        rec = InvoiceRecord.from_row(row)
        self._dirty[key] = (rec, row.start_ts if row.pending else None)
        return rec, False

    def _raw_amount(self, ev: Event) -> Any:
        return ev.extra.get(self._amount_key.get(ev.source, "amount"))

    def _compare(self, rec: InvoiceRecord, stage: str, seen: Seen) -> list[Mismatch]:
        """The compared fields of a stage just reached against the earliest stage giving each."""
        out = []
        stages = rec.stages
        for field in self._compare_fields:
            value = getattr(seen, field)
            if value is None:
                continue
            for name in self.order:
                other = stages.get(name)
                if other is None or name == stage:
                    continue
                ref = getattr(other, field)
                if ref is None:
                    continue
                if not same_value(field, ref, value):
                    out.append(Mismatch(field, name, ref, stage, value))
                break
        return out

    def _record_findings(self, u: Update) -> None:
        assert u.key is not None
        ts, where = u.ts, _where(u.ev)
        for m in u.mismatches:
            self.found("mismatch", u.key, "", ts, {**where, "field": m.field, "stage": m.stage,
                       "value": m.value, "other_stage": m.other_stage,
                       "other_value": m.other_value}, feature="mismatched")
        if u.duplicate is not None:
            self.found("duplicate", u.key, "", ts, {**where, "stage": u.duplicate.stage,
                       "diffs": [list(d) for d in u.duplicate.diffs]}, feature="duplicates")
        if u.problems:
            self._incomplete(u)

    def _incomplete(self, u: Update) -> None:
        self.found("incomplete", u.key or u.number, "", u.ts,
                   {**_where(u.ev), "number": u.number, "problems": list(u.problems)},
                   feature="incomplete")

    def found(self, kind: str, key: str, rule: str, ts: float, detail: dict[str, Any],
              feature: str | None = None) -> None:
        """Keep a finding about one invoice for `invoice-agent invoices` (and count it into
        the window's `feature`)."""
        self._findings.append(LedgerFinding(kind, key, rule, ts, detail))
        if feature is not None:
            self.windows.count(feature, ts)

    # -- what the rules use ------------------------------------------------------------------
    def tracker(self, rule: str, kind: str) -> Deadlines:
        """The waits of one deadline rule (created once per rule)."""
        if rule not in self._trackers:
            self._trackers[rule] = Deadlines(rule, kind, self.repo)
        return self._trackers[rule]

    def keep_rules(self, names: list[str]) -> None:
        """Waits of rules not in `names` (removed from the config) go with the next commit."""
        self._rules = list(names)

    def end_of_data(self, ts: datetime) -> None:
        """Replay: the files end at `ts`; deadlines after it are not judged (still pending)."""
        self.horizon = ts.timestamp()

    # -- time --------------------------------------------------------------------------------
    def start(self, now: datetime) -> None:
        self.windows.start(now)

    def advance(self, now: datetime) -> list[Window]:
        if self._flush is not None and len(self._dirty) > GAUGE_FLUSH:
            self._flush(self.take())
        return self.windows.advance(now, self._gauges)

    def _gauges(self, end: float) -> tuple[int, int, float | None]:
        """(pending, overdue, the oldest pending one's first-stage time) at `end`: the stored
        counts corrected by this batch's records."""
        if self.open <= 0:
            return 0, 0, None
        cut = end - self.config.deadline.total_seconds()
        overdue = self.repo.open_before(cut)
        oldest = None
        for rec, stored_open in self._dirty.values():
            if stored_open is not None and stored_open <= cut:
                overdue -= 1
            if rec.start_ts is not None and rec.final_ts is None:
                overdue += rec.start_ts <= cut
                oldest = rec.start_ts if oldest is None else min(oldest, rec.start_ts)
        for key, first in self.repo.open_oldest():
            if key not in self._dirty:
                oldest = first if oldest is None else min(oldest, first)
                break
        return self.open, max(0, overdue), oldest

    # -- the batch commit --------------------------------------------------------------------
    def take(self) -> LedgerChanges:
        """This batch's changes, for the commit; the ledger starts a new batch."""
        dirty = self._dirty
        changes = LedgerChanges([rec.to_row() for rec, _ in dirty.values()],
                                findings=self._findings, rules=self._rules)
        for t in self._trackers.values():
            write, gone = t.take()
            changes.waits += write
            changes.gone += gone
        # what was just handed over is what the store will hold: keep it hot
        hot = self._hot
        if len(hot) + len(dirty) > HOT_RECORDS // 2:
            self._hot_old, hot = hot, {}
            self._hot = hot
        for key, (rec, _) in dirty.items():
            hot[key] = (rec, rec.start_ts if rec.final_ts is None else None)
        if len(hot) > HOT_RECORDS // 2:  # one batch larger than a generation
            self._hot_old, self._hot = {}, {}
        self._dirty, self._findings, self._rules = {}, [], None
        return changes

    def state(self) -> dict[str, Any]:
        return {"windows": self.windows.state()}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("windows"):
            self.windows.restore(state["windows"])


def _diffs(seen: Seen, ev: Event) -> tuple[tuple[str, str | None, str | None], ...]:
    out = []
    for field in FIELDS:
        new, old = getattr(ev, field), seen.get(field)
        if new is not None and old is not None and not same_value(field, old, new):
            out.append((field, old, new))
    return tuple(out)


@lru_cache(maxsize=4096)  # issue dates repeat: a few hundred distinct ones a year
def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _where(ev: Event) -> dict[str, Any]:
    return {"source": ev.source, "file": ev.path.rsplit("/", 1)[-1] if ev.path else None,
            "line": ev.line_no}
