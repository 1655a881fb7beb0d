"""Every rule type by its `type:` name. A new type: its module, one line here, an example in
rules/ and a test file."""

from __future__ import annotations

from agent.detect.absence import AbsenceConfig
from agent.detect.base import RuleConfig
from agent.detect.ledger_checks import DuplicateConfig, IncompleteConfig, MismatchConfig
from agent.detect.ledger_missing import MissingConfig
from agent.detect.ledger_month_end import MonthEndConfig
from agent.detect.ledger_stuck import StuckConfig
from agent.detect.new_term import NewTermConfig
from agent.detect.pattern import PatternConfig
from agent.detect.spike import SpikeConfig
from agent.detect.threshold import ThresholdConfig

RULE_TYPES: dict[str, type[RuleConfig]] = {
    "threshold": ThresholdConfig,
    "absence": AbsenceConfig,
    "pattern": PatternConfig,
    "spike": SpikeConfig,
    "new_term": NewTermConfig,
    # the invoice ledger's (agent/detect/ledger_*.py): they need a `ledger:` config section
    "missing": MissingConfig,
    "mismatch": MismatchConfig,
    "duplicate": DuplicateConfig,
    "stuck": StuckConfig,
    "incomplete": IncompleteConfig,
    "month_end": MonthEndConfig,
}
