"""Shared by the model tests (no test here): a model trained once per test run on two weeks
of synthetic window-level traffic, and the detector around it."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from agent.detect.base import BuildContext
from agent.detect.model import ModelDetector
from agent.model import synthetic
from agent.model.config import ModelConfig
from agent.model.core import Model
from agent.model.features import FeatureSpec, Slot, slots_from_windows
from agent.model.train import TrainReport, fit_model

SOURCES = synthetic.SOURCES
WINDOW = timedelta(minutes=5)
ZONE = "Asia/Shanghai"
SPEC = FeatureSpec.for_sources(SOURCES)
TRAIN_START = date(2026, 9, 7)  # a Monday; two weeks without a holiday
TEST_DAY = date(2026, 9, 22)  # the Tuesday after


def config(**options: object) -> ModelConfig:
    return ModelConfig.model_validate(options)


@lru_cache(maxsize=1)
def trained() -> tuple[Model, TrainReport, tuple[Slot, ...]]:
    slots = slots_from_windows(synthetic.generate(TRAIN_START, 14, seed=5), SPEC)
    model, report = fit_model(slots, SPEC, config(), WINDOW, ZONE)
    return model, report, tuple(slots)


def context(batch: bool = False, sources: tuple[str, ...] = SOURCES) -> BuildContext:
    return BuildContext(sources, WINDOW, batch=batch, timezone=ZONE)


def detector(batch: bool = False, **options: object) -> ModelDetector:
    return ModelDetector(config(**options), trained()[0], context(batch), ZoneInfo(ZONE))
