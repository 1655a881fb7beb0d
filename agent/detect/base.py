"""What every rule has in common, and the registry of rule types.

Rules are data (operator YAML); rule types are code registered by name. A type is a config
class (validated, immutable) whose `build()` returns the runtime rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.config import Duration
from agent.detect.expr import ExprError, Template
from agent.types import Event, Finding, Window

RULE_TYPES: dict[str, type["RuleConfig"]] = {}


def register(name: str):
    """Class decorator: make a RuleConfig available as `type: name`."""

    def inner(cls: type[RuleConfig]) -> type[RuleConfig]:
        cls.type_name = name
        RULE_TYPES[name] = cls
        return cls

    return inner


class RuleConfig(BaseModel):
    """Options shared by every rule type."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type_name: ClassVar[str] = ""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", description="Unique rule name")
    type: str
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    for_: Duration = Field(timedelta(0), alias="for", description="Pending time before firing")
    repeat_interval: Duration | None = Field(None, description="Overrides notify.repeat_interval")
    summary: dict[Literal["zh", "en"], str] = Field(default_factory=dict)

    @field_validator("summary", mode="before")
    @classmethod
    def _one_text(cls, v: Any) -> Any:
        return {"zh": v, "en": v} if isinstance(v, str) else v

    def template_names(self) -> set[str]:
        """Names the summary templates may use."""
        return set()

    def build(self, sources: Mapping[str, Any]) -> "Rule":
        raise NotImplementedError


class Rule:
    """Runtime rule: sees events and windows, returns findings. Pure: no clock of its own."""

    kind = "rule"

    def __init__(self, config: RuleConfig, labels: Mapping[str, str]):
        self.config = config
        self.name = config.name
        self.severity = config.severity
        self.labels = dict(labels)
        self.pending_for: timedelta = config.for_
        self.repeat_interval = config.repeat_interval
        names = config.template_names()
        self.summaries: dict[str, Template] = {}
        for lang, text in config.summary.items():
            try:
                self.summaries[lang] = Template(text, names)
            except ExprError as exc:
                raise ExprError(str(exc), key=f"summary.{lang}") from None

    def observe(self, ev: Event) -> None:
        """See one event (most rule types only look at windows)."""

    def start(self, now: datetime) -> None:
        """Monitoring begins at `now` (event time)."""

    def evaluate_early(self, ev: Event, so_far: Window) -> Finding | None:
        """A firing verdict at one line from its window so far (rules with `early:`)."""
        return None

    def evaluate(self, window: Window) -> Finding | None:
        """A verdict for a closed window, or None if the window is not this rule's business."""
        raise NotImplementedError

    def summary(self, values: Mapping[str, Any]) -> dict[str, str]:
        out = {lang: t.render(values) for lang, t in self.summaries.items()}
        if not out:
            out = {"zh": self.name, "en": self.name}
        return out

    def state(self) -> Any:
        return None

    def restore(self, state: Any) -> None:
        """Take back what `state()` returned before a restart."""
