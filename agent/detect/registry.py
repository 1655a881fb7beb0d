"""Every rule type by its `type:` name. A new type: its module, one line here, an example in
rules/ and a test file."""

from __future__ import annotations

from agent.detect.absence import AbsenceConfig
from agent.detect.base import RuleConfig
from agent.detect.threshold import ThresholdConfig

RULE_TYPES: dict[str, type[RuleConfig]] = {
    "threshold": ThresholdConfig,
    "absence": AbsenceConfig,
}
