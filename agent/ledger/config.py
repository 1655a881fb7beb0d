"""The `ledger:` section of the agent config: which events are which stage of an invoice.

```yaml
ledger:
  key: invoice_no
  stages:                       # in the order an invoice passes them; the last is final
    issued:   {source: platform, event: issue, require: [amount, issue_date, taxpayer_id]}
    uploaded: {source: upload, event: upload, status: ok}
    synced:   {source: erp, status: ok}
  compare: [amount, issue_date] # must agree across stages
  deadline: 60m                 # first -> final stage; the `overdue` feature, missing's default
  retention: 400d
```
Plain data, validated at load with the rest of the config (agent/config.py refers to it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.configtypes import Duration

LEDGER_SOURCE = "ledger"  # the derived source whose windows carry the ledger's features
FIELDS = ("amount", "issue_date", "taxpayer_id")
Field_ = Literal["amount", "issue_date", "taxpayer_id"]
DEFAULT_PENDING = ("pending", "待处理", "待更新", "未处理")
DEFAULT_COMPARE: tuple[Field_, ...] = ("amount", "issue_date")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageConfig(_Model):
    """The events that put an invoice at this stage: from `source`, of kind `event` (if
    given), with `status` (if given). Events of the source and kind with another status
    (failed, pending) still update the invoice's latest status."""

    source: str
    event: str | None = Field(None, description="Only events of this kind (issue, upload, ...)")
    status: str | None = Field(None, description="Only events with this status (e.g. ok)")
    require: list[Field_] = Field(
        default_factory=list,
        description="Fields an event reaching this stage must carry; else `incomplete`")


class ColumnsConfig(_Model):
    """Column names of exported invoice lists for `invoice-agent reconcile` (each field may
    have several names; the first found in a file's header is used)."""

    invoice_no: list[str] = Field(default_factory=list)
    code: list[str] = Field(default_factory=list)
    amount: list[str] = Field(default_factory=list)
    issue_date: list[str] = Field(default_factory=list)
    taxpayer_id: list[str] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class LedgerConfig(_Model):
    """Every invoice seen, by number, with each stage's time and fields (SQLite)."""

    key: Literal["invoice_no"] = Field("invoice_no", description="The field numbering invoices")
    code: str | None = Field(
        None, description="Log field holding a legacy invoice's 10/12-digit code (发票代码); "
                          "the key is then CODE-NUMBER")
    stages: dict[str, StageConfig] = Field(min_length=2, description="In flow order; last final")
    compare: list[Field_] = Field(default_factory=lambda: list(DEFAULT_COMPARE),
                                  description="Fields that must agree across stages")
    deadline: Duration = Field(
        timedelta(minutes=60),
        description="First to final stage; the `overdue` feature and missing's default")
    retention: Duration = Field(timedelta(days=400), description="Completed invoices kept")
    check_numbers: bool = Field(True, description="Malformed invoice numbers are `incomplete`")
    check_taxpayer_ids: bool = Field(
        True, description="Taxpayer ids that are not unified social credit codes: `incomplete`")
    columns: ColumnsConfig = Field(default_factory=lambda: ColumnsConfig.model_validate({}))

    @field_validator("stages")
    @classmethod
    def _names(cls, v: dict[str, StageConfig]) -> dict[str, StageConfig]:
        for name in v:
            if not name or not name[0].isalpha() or not name.replace("_", "").isalnum():
                raise ValueError(f"stage name {name!r}: use letters, digits and _")
        return v

    @field_validator("deadline", "retention")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be more than 0")
        return v

    @property
    def first(self) -> str:
        return next(iter(self.stages))

    @property
    def final(self) -> str:
        return list(self.stages)[-1]


def source_problems(ledger: LedgerConfig, sources: list[str]
                    ) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, message) for each stage naming a source that is not configured, and for a
    source that takes the derived source's name."""
    out: list[tuple[tuple[Any, ...], str]] = []
    for name, stage in ledger.stages.items():
        if stage.source not in sources:
            out.append((("ledger", "stages", name, "source"),
                        f"unknown source {stage.source!r}; configured: "
                        f"{', '.join(sources) or 'none'}"))
    if LEDGER_SOURCE in sources:
        out.append((("sources",), f"a source may not be named {LEDGER_SOURCE!r} when a ledger "
                                  "is configured: its windows carry the ledger's features"))
    return out
