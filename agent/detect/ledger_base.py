"""What the ledger rule types share: the ledger they judge, how an alert lists invoices, and
the two shapes of ledger rule.

- An episode rule (mismatch, duplicate, incomplete) fires at the line whose event showed the
  problem, lists the invoices found while it fires, and resolves with the first window that
  closes without a new one.
- A deadline rule (missing, stuck, month_end) waits on invoices in SQLite; when a window of
  the derived `ledger` source closes, the waits due by its end turn overdue, and one alert
  lists them (the oldest first, up to `limit`, then a count) with the oldest age and the
  amount total; it resolves when every overdue invoice arrived, naming those that came late.

Both judge in event time (the `ledger` windows close with every other source's), so `run`
and `replay` decide the same. Their summaries default to texts of their own (`default_text`);
a rule's `summary:` templates may use the names its values carry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from agent.detect.base import NO_FINDINGS, BuildContext, Detector, RuleConfig, RuleError, Watch
from agent.ledger.book import Ledger
from agent.ledger.config import LEDGER_SOURCE, LedgerConfig
from agent.ledger.deadlines import Deadlines
from agent.ledger.records import Update
from agent.store.records import WaitRow
from agent.types import Event, Finding, Window

LISTING_NAMES = {"count", "invoices", "invoice_list", "more"}


class LedgerRuleConfig(RuleConfig):
    """Options every ledger rule type has."""

    limit: int = Field(20, ge=1, le=500, description="Invoices an alert lists; then a count")

    def stages_used(self) -> list[tuple[str, str]]:
        """(option, stage name) pairs to check against the configured stages."""
        return []


class Listing:
    """The invoices an alert names: the first `limit` with a note each, then only a count."""

    def __init__(self, limit: int):
        self.limit = limit
        self.items: list[tuple[str, str]] = []
        self.count = 0

    def add(self, key: str, note: str = "") -> None:
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append((key, note))

    def clear(self) -> None:
        self.items, self.count = [], 0

    def values(self) -> dict[str, Any]:
        return {"count": self.count, "invoices": [k for k, _ in self.items],
                "invoice_list": list_text(self.items, self.count), "more": self.count - len(
                    self.items)}

    def state(self) -> dict[str, Any]:
        return {"items": self.items, "count": self.count}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):
            self.items = [(str(k), str(n)) for k, n in state.get("items", [])][:self.limit]
            self.count = int(state.get("count", len(self.items)))


def list_text(items: list[tuple[str, str]], count: int) -> str:
    """`a (note), b (note) … +3 more` (a count only when the list was cut)."""
    text = ", ".join(f"{k} ({n})" if n else k for k, n in items)
    more = count - len(items)
    return f"{text} … +{more}" if more > 0 else text


class LedgerRule(Detector):
    """A rule over the invoice ledger: attached to it by the engine, shown its updates and the
    windows of the derived `ledger` source."""

    kind = "ledger"

    def __init__(self, config: LedgerRuleConfig, context: BuildContext):
        ledger = context.ledger
        if ledger is None:
            raise RuleError(f"rule type {config.type!r} needs a `ledger:` section in the agent "
                            "config (its stages)", key="type")
        for option, stage in config.stages_used():
            if stage not in ledger.stages:
                raise RuleError(f"unknown stage {stage!r}; configured: "
                                f"{', '.join(ledger.stages)}", key=option)
        super().__init__(config, config.labels)
        self.ledger_config: LedgerConfig = ledger
        self.zone = ZoneInfo(context.timezone)
        self.limit = config.limit
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, f"rule {self.name} used before the engine attached it"
        return self._ledger

    def attach(self, ledger: Ledger) -> None:
        """Called once by the engine that runs the rule, before any event."""
        self._ledger = ledger

    def watch(self) -> Watch:
        return Watch(frozenset({LEDGER_SOURCE}), windows=True, ledger=True)

    def finding(self, active: bool, ts: datetime, values: Mapping[str, Any],
                window: Window | None = None, ev: Event | None = None,
                severity: str | None = None, cause: str | None = None) -> Finding:
        return Finding(self.name, active, ts, self.labels, values, kind="ledger",
                       line_no=ev.line_no if ev is not None else None,
                       path=ev.path if ev is not None else None,
                       window_start=window.start if window is not None else None,
                       severity=severity, cause=cause)

    def summary(self, values: Mapping[str, Any]) -> dict[str, str]:
        if self.summaries:
            return super().summary(values)
        try:
            return {lang: self.default_text(values, lang) for lang in ("zh", "en")}
        except Exception:  # noqa: BLE001  a notification is never lost to its text
            return super().summary(values)

    def default_text(self, values: Mapping[str, Any], lang: str) -> str:
        raise NotImplementedError

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.zone)


class EpisodeRule(LedgerRule):
    """Fires at the line showing a problem; resolves with the first window without one."""

    def __init__(self, config: LedgerRuleConfig, context: BuildContext):
        super().__init__(config, context)
        self.found = Listing(self.limit)
        # event time of the newest finding: a window that closes without any from its start on
        # ends the episode (by time, not by arrival: a line shown ahead of its window counts
        # for its own window, as it would live)
        self._newest: float | None = None

    def items(self, u: Update) -> list[tuple[str, str]]:
        """(invoice, note) for each problem of this rule's kind the update shows."""
        raise NotImplementedError

    def on_ledger(self, update: Update) -> Collection[Finding]:
        # the engine shows an episode rule only the updates that show a problem (`anything`)
        if not (update.problems or update.mismatches or update.duplicate):
            return NO_FINDINGS
        got = self.items(update)
        if not got:
            return NO_FINDINGS
        for key, note in got:
            self.found.add(key, note)
        self._newest = update.ts if self._newest is None else max(self._newest, update.ts)
        return (self.finding(True, update.ev.ts, self.found.values(), ev=update.ev),)

    def on_window(self, window: Window) -> Collection[Finding]:
        active = self._newest is not None and self._newest >= window.start.timestamp()
        if not active and not self.found.count:
            return (self.finding(False, window.end, {}, window),)
        values = self.found.values()
        if not active:
            self.found.clear()  # the episode is over: its alert resolves with these values
        return (self.finding(active, window.end, values, window),)

    def state(self) -> Any:
        return {"found": self.found.state(), "newest": self._newest}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):
            self.found.restore(state.get("found"))
            newest = state.get("newest")
            self._newest = float(newest) if newest is not None else None


class DeadlineRule(LedgerRule):
    """Waits on invoices (in the ledger's tables) and lists those overdue."""

    wait_kind = ""
    late_finding = False  # an arrival after the deadline is kept for `invoices late`

    def __init__(self, config: LedgerRuleConfig, context: BuildContext):
        super().__init__(config, context)
        self.cutoff: float | None = None  # event time judged so far
        self.arrived = Listing(self.limit)  # overdue invoices that arrived since it fired
        self._waits: Deadlines | None = None
        self._window = context.window.total_seconds()
        # arrivals shown before the window holding them is open (the first line after a gap
        # in a file read at once): each ends its wait when its own window closes, as it would
        # have live, so it cannot hide what was overdue before it
        self._ahead: list[tuple[float, str, dict[str, Any]]] = []

    @property
    def waits(self) -> Deadlines:
        assert self._waits is not None
        return self._waits

    def attach(self, ledger: Ledger) -> None:
        super().attach(ledger)
        self._waits = ledger.tracker(self.name, self.wait_kind)

    def on_window(self, window: Window) -> Collection[Finding]:
        end = window.end.timestamp()
        if self._ahead:
            now = sorted(a for a in self._ahead if a[0] < end)
            self._ahead = [a for a in self._ahead if a[0] >= end]
            for ts, key, detail in now:
                self._end(key, ts, detail)
        cut = min(end, self.ledger.horizon)
        if self.cutoff is None or cut > self.cutoff:
            self.waits.expire(cut)
            self.cutoff = cut
        active = self.waits.overdue > 0
        if not active and not self.arrived.count:
            return (self.finding(False, window.end, {}, window),)
        values, severity = self.values(cut)
        if not active:
            self.arrived.clear()
        return (self.finding(active, window.end, values, window, severity=severity,
                             cause=self.cause(values)),)

    def cause(self, values: Mapping[str, Any]) -> str | None:
        """What the overdue invoices are due to, if the rule can tell (see Finding.cause)."""
        return None

    def values(self, now: float) -> tuple[dict[str, Any], str | None]:
        """What the alert says at `now`, and a severity other than the rule's (or None)."""
        rows = self.waits.oldest(self.limit)
        listing = Listing(self.limit)
        for w in rows:
            listing.add(w.key, self.note(w, now))
        listing.count = self.waits.overdue
        oldest = rows[0].since if rows else now
        return {**listing.values(), "oldest_minutes": int(max(0.0, now - oldest) // 60),
                "oldest_since": self.local(oldest).strftime("%Y-%m-%d %H:%M"),
                "amount_total": money(self.waits.total),
                "late_count": self.arrived.count, "late_list": list_text(
                    self.arrived.items, self.arrived.count)}, None

    def note(self, w: WaitRow, now: float) -> str:
        """What the listing says beside one overdue invoice."""
        return f"{int((now - w.since) // 60)} min"

    def ended(self, key: str, ts: float, detail: dict[str, Any]) -> None:
        """The wait for `key` is over at `ts` (now, or when the window holding `ts` closes)."""
        if self.cutoff is not None and ts >= self.cutoff + self._window:
            self._ahead.append((ts, key, detail))
        else:
            self._end(key, ts, detail)

    def _end(self, key: str, ts: float, detail: dict[str, Any]) -> WaitRow | None:
        """An arrival after the deadline is late; one the alert listed is named when it
        resolves."""
        w = self.waits.remove(key)
        if w is None or ts <= w.due:
            return w
        late = int((ts - w.due) // 60)
        if w.overdue:
            self.arrived.add(key, f"+{late} min")
        if self.late_finding:
            self.ledger.found("late", key, self.name, ts, {
                **detail, "since": w.since, "due": w.due, "arrived": ts, "late_minutes": late,
                "amount": w.amount}, feature="late")
        return w

    def state(self) -> Any:
        return {"cutoff": self.cutoff, "arrived": self.arrived.state(), "ahead": self._ahead}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):
            self.cutoff = state.get("cutoff")
            self.arrived.restore(state.get("arrived"))
            self._ahead = [(float(t), str(k), dict(d)) for t, k, d in state.get("ahead") or []]


def money(total: Decimal) -> str:
    return f"{total:,.2f}"


def minutes(d: timedelta) -> int:
    return int(d.total_seconds() // 60)
