"""The `model:` section of the agent config: where the model file is, how its alerts behave,
how it is (re)trained. Plain data, unknown keys refused; `build_model_detector` turns it into
the runtime detector.

```yaml
model:
  path: models/isolation_forest.skops   # relative to the config file
  severity: warning
  for: 2                                 # abnormal windows in a row before it fires
  quantile: 0.9995                       # alert above this share of the training windows
  retrain_every: 7d                      # from the stored windows of the last retrain_days
```
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.configtypes import Duration

DEFAULT_QUANTILE = 0.9995


class ModelConfig(BaseModel):
    """The IsolationForest model: scoring every closed time slot, training, retraining."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str = Field("models/isolation_forest.skops",
                      description="The model file (skops); its arrays and metadata are the "
                                  "same path with `.npz` and `.json`. Relative to the config "
                                  "file")
    name: str = Field("model_anomaly", pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
                      description="Rule name of the model's alert (`rule` in replay output)")
    severity: Literal["info", "warning", "critical"] = Field(
        "warning", description="Severity of the model's alert")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the alert")
    for_windows: int = Field(
        2, ge=1, le=288, alias="for",
        description="Abnormal windows in a row before the alert fires (1: at the first)")
    repeat_interval: Duration | None = Field(
        None, description="Re-notify a firing model alert; default notify.repeat_interval")
    quantile: float | None = Field(
        None, gt=0.5, lt=1.0,
        description=f"Alert threshold: the score this share of training windows stays below "
                    f"(default {DEFAULT_QUANTILE}). Exclusive with `contamination`")
    contamination: float | None = Field(
        None, gt=0.0, lt=0.5,
        description="Alert threshold as the share of training windows expected abnormal "
                    "(1 - quantile)")
    explain: int = Field(3, ge=1, le=6,
                         description="At most this many unusual measurements named in a message")
    names: dict[str, dict[Literal["zh", "en"], str]] = Field(
        default_factory=dict,
        description="How messages name a source, e.g. {upload: {zh: 上传, en: upload}}")
    holidays: list[date] = Field(
        default_factory=list,
        description="Extra days off (dates chinese-calendar does not know yet, company closures)")
    workdays: list[date] = Field(
        default_factory=list, description="Extra business days (announced make-up workdays)")
    month_end_days: int = Field(3, ge=1, le=10,
                                description="The last N days of a month count as month-end")
    filing_last_day: int = Field(15, ge=1, le=31,
                                 description="Days 1..N of a month are the filing period (征期)")
    trees: int = Field(
        50, ge=10, le=1000,
        description="Training: trees in the forest (50 score as 100 did in bench/model_eval.py, "
                    "in half the file)")
    max_samples: int = Field(256, ge=32, le=4096, description="Training: windows per tree")
    seed: int = Field(0, description="Training: random seed (same data, same model)")
    min_days: float = Field(
        7.0, ge=0.01,
        description="Training refuses less history than this many days (a week shows the "
                    "weekly rhythm; fewer days make every weekend look abnormal)")
    retrain_every: Duration | None = Field(
        None, description="Retrain from the stored windows this often (None: never)")
    retrain_days: int = Field(
        28, ge=1, le=366,
        description="Retraining uses the stored windows of the last N days (config "
                    "`retention` must keep them that long)")
    batch_size: int = Field(512, ge=1, le=100000,
                            description="replay: time slots scored per model call")

    @model_validator(mode="after")
    def _one_threshold(self) -> "ModelConfig":
        if self.quantile is not None and self.contamination is not None:
            raise ValueError("set either `quantile` or `contamination`, not both")
        if set(self.holidays) & set(self.workdays):
            both = sorted(set(self.holidays) & set(self.workdays))
            raise ValueError(f"{both[0]} is listed in both `holidays` and `workdays`")
        return self

    @property
    def threshold_quantile(self) -> float:
        if self.contamination is not None:
            return 1.0 - self.contamination
        return self.quantile if self.quantile is not None else DEFAULT_QUANTILE

    def pending_for(self, window: timedelta) -> timedelta:
        """`for:` as the alert lifecycle's pending time: N windows in a row fire at the Nth
        window's end, N-1 windows after the first abnormal one."""
        return window * (self.for_windows - 1)
