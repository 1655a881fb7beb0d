"""The detector interface every rule type implements, and the registry of types by name.

Rules are data (operator YAML); detector types are code registered by name (registry.py). A
type is a config class (validated, immutable) whose `build(context)` returns the runtime
detector. A detector
declares what it wants to be shown (`watch()`), and the engine calls it:

- `start(now)` once, when monitoring begins (event time);
- `on_event(ev, open_window)` for each event of a watched source, after time has advanced to
  where the event's stream confirms it (normally the line before it: one line stamped hours
  ahead must not move time), so the windows that closed by then were shown first. A detector
  judging windows from events places each event in its own window (as absence does);
- `on_window(window)` for each closed window of a watched source, in time order;
- `on_tick(now)` when event time advances far enough to close a window, and at the end of
  each batch in `run` (deadlines that are not window-bound);
- `on_ledger(update)` for each event the invoice ledger recorded (what it changed about the
  invoice: stages reached, mismatches, problems), after the ledger took it;
- `finish(now)` at the end of a replay, for what a batch-mode detector deferred.

Each returns findings (verdicts: does the condition hold now), which the alert lifecycle turns
into transitions. Detectors are pure: time only comes in as arguments. `state()`/`restore()`
carry what they remember across a restart.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.config import Duration
from agent.detect.expr import ExprError, Template
from agent.ledger.config import LedgerConfig
from agent.ledger.records import Update
from agent.routing.config import Escalate
from agent.routing.timespec import ActiveHours, TimeRange
from agent.types import Event, Finding, Window

NO_FINDINGS: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What a detector may know of the agent when it is built."""

    sources: Collection[str]  # configured source names
    window: timedelta  # tumbling window length
    # replay: files as fast as possible. A detector may then defer work (score windows in
    # batches) as long as its own findings keep their order; `finish` ends the run
    batch: bool = False
    ledger: LedgerConfig | None = None  # the ledger's stages, for the ledger rule types
    timezone: str = "Asia/Shanghai"  # for calendar rules (month_end)


class RuleError(ValueError):
    """A rule whose options cannot work with this agent (an unknown stage, no ledger); `key`
    is the option at fault."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Watch:
    """What a detector is shown: the engine dispatches by this declaration."""

    # None: every log source (the derived `ledger` source, whose windows carry other
    # features, only when named)
    sources: frozenset[str] | None
    events: bool = False  # on_event for each event of those sources
    windows: bool = True  # on_window for each closed window of those sources
    ticks: bool = False  # on_tick each time event time advances
    ledger: bool = False  # on_ledger for each event the invoice ledger recorded


class OpenWindow(Protocol):
    """The engine's view of the window an event was just counted into."""

    def so_far(self, ev: Event) -> Window | None: ...


class RuleConfig(BaseModel):
    """Options shared by every rule type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", description="Unique rule name")
    type: str
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    for_: Duration = Field(timedelta(0), alias="for", description="Pending time before firing")
    repeat_interval: Duration | None = Field(None, description="Overrides notify.repeat_interval")
    summary: dict[Literal["zh", "en"], str] = Field(default_factory=dict)
    template: dict[Literal["zh", "en"], str] = Field(
        default_factory=dict, description="The rule's own text for its alert's line in messages "
                                          "(Jinja2, sandboxed); by language or one for both")
    active_hours: ActiveHours | None = Field(
        None, description="When the rule may alert, in the agent's time zone: "
                          "{days: [business], start: \"08:00\", end: \"20:00\"} or a list; "
                          "outside, its alerts resolve and none fires")
    escalate: Escalate | None = Field(
        None, description="{after: 1h, to: critical}: an alert firing that long takes the "
                          "new severity")

    @field_validator("active_hours")
    @classmethod
    def _some_hours(cls, v: list[TimeRange] | None) -> list[TimeRange] | None:
        if v is not None and not v:
            raise ValueError("expected at least one range (leave active_hours out to alert "
                             "at any time)")
        return v

    @model_validator(mode="after")
    def _escalates_up(self) -> "RuleConfig":
        ranks = ("info", "warning", "critical")
        if self.escalate is not None and \
                ranks.index(self.escalate.to) <= ranks.index(self.severity):
            raise ValueError(f"escalate.to {self.escalate.to!r} must be above the rule's "
                             f"severity {self.severity!r}")
        return self

    @field_validator("summary", "template", mode="before")
    @classmethod
    def _one_text(cls, v: Any) -> Any:
        return {"zh": v, "en": v} if isinstance(v, str) else v

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, v: dict[str, str]) -> dict[str, str]:
        from agent.notify.templating import rule_template_problem

        for lang, text in v.items():
            problem = rule_template_problem(text)
            if problem:
                raise ValueError(f"template.{lang}: {problem}")
        return v

    def template_names(self) -> set[str]:
        """Names the summary templates may use."""
        return set()

    def source_names(self) -> list[str]:
        """Sources the rule refers to (checked against the configured ones at load)."""
        return []

    def build(self, context: BuildContext) -> "Detector":
        raise NotImplementedError


def plain_summary(name: str, values: Mapping[str, Any]) -> str:
    """The fallback text when a template cannot render: the rule and its plain values."""
    shown = ", ".join(f"{k}={v}" for k, v in list(values.items())[:12]
                      if isinstance(v, (int, float, str)))
    return f"{name}: {shown}"[:1000]


class Detector:
    """A runtime rule: shown events, windows and ticks as declared by `watch()`; returns
    findings. Also what the alert lifecycle needs to know of it (name, severity, labels,
    pending time, repeat interval, summary)."""

    kind = "rule"  # rule | ledger | model (the "source" of the jsonl contract)

    def __init__(self, config: RuleConfig, labels: Mapping[str, str]):
        self.config = config
        self.name = config.name
        self.severity: str = config.severity
        self.labels = dict(labels)
        self.pending_for: timedelta = config.for_
        self.repeat_interval = config.repeat_interval
        # None: at any time; else the weekly ranges in the agent's time zone
        self.active_hours: tuple[TimeRange, ...] | None = (
            tuple(config.active_hours) if config.active_hours else None)
        self.escalate: Escalate | None = config.escalate
        names = config.template_names()
        self.summaries: dict[str, Template] = {}
        for lang, text in config.summary.items():
            try:
                self.summaries[lang] = Template(text, names)
            except ExprError as exc:
                raise ExprError(str(exc), key=f"summary.{lang}") from None

    def watch(self) -> Watch:
        raise NotImplementedError

    def start(self, now: datetime) -> None:
        """Monitoring begins at `now` (event time)."""

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        return NO_FINDINGS

    def on_window(self, window: Window) -> Collection[Finding]:
        return NO_FINDINGS

    def on_tick(self, now: datetime) -> Collection[Finding]:
        return NO_FINDINGS

    def on_ledger(self, update: Update) -> Collection[Finding]:
        return NO_FINDINGS

    def finish(self, now: datetime) -> Collection[Finding]:
        return NO_FINDINGS

    def summary(self, values: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for lang, t in self.summaries.items():
            try:
                out[lang] = t.render(values)
            except Exception:  # noqa: BLE001  an alert is never lost to its message template
                out[lang] = plain_summary(self.name, values)
        if not out:
            out = {"zh": self.name, "en": self.name}
        return out

    def state(self) -> Any:
        return None

    def restore(self, state: Any) -> None:
        """Take back what `state()` returned before a restart."""
