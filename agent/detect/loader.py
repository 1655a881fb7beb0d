"""Loading operator rule files: every problem with its file, key path and line, all at once."""

from __future__ import annotations

import glob
from datetime import timedelta
from typing import Any, Collection, Iterable, Iterator

from pydantic import ValidationError

from agent.detect.base import BuildContext, Detector, RuleError
from agent.detect.expr import ExprError
from agent.detect.registry import RULE_TYPES
from agent.ledger.config import LEDGER_SOURCE, LedgerConfig
from agent.yamlfile import FileProblems, Problem, YamlDoc, dotted, read_yaml


def rule_files(globs: Iterable[str]) -> list[str]:
    files: list[str] = []
    for pattern in globs:
        for f in sorted(glob.glob(pattern)):
            if f not in files:
                files.append(f)
    return files


DEFAULT_WINDOW = timedelta(minutes=5)

_Found = tuple[int, Detector | None, "Problem | list[Problem] | None"]


def load_rules(globs: Iterable[str], sources: Collection[str],
               window: timedelta = DEFAULT_WINDOW, batch: bool = False,
               ledger: LedgerConfig | None = None, timezone: str = "Asia/Shanghai"
               ) -> list[Detector]:
    """Read, validate and build every rule; raise FileProblems listing all problems. With a
    `ledger`, rules may also watch its derived source."""
    problems: list[Problem] = []
    rules: list[Detector] = []
    if ledger is not None:
        sources = [*sources, LEDGER_SOURCE]
    context = BuildContext(tuple(sources), window, batch, ledger, timezone)
    seen: dict[str, str] = {}
    for path in rule_files(globs):
        try:
            doc = read_yaml(path)
        except FileProblems as exc:
            problems += exc.problems
            continue
        for i, rule, found in _rules_in(doc, context):
            if found:
                problems += found if isinstance(found, list) else [found]
                continue
            assert rule is not None
            if rule.name in seen:
                problems.append(Problem(
                    path, f"rules.{i}.name",
                    f"rule name {rule.name!r} already used in {seen[rule.name]}",
                    doc.line_of(("rules", i, "name"))))
                continue
            seen[rule.name] = path
            rules.append(rule)
    if problems:
        raise FileProblems(problems)
    return rules


def _rules_in(doc: YamlDoc, context: BuildContext) -> Iterator[_Found]:
    data = doc.data
    if data is None:
        return
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        yield 0, None, Problem(doc.path, "rules", "expected a top-level `rules:` list",
                               doc.line_of(()))
        return
    extra = sorted(set(data) - {"rules"})
    if extra:
        yield 0, None, Problem(doc.path, extra[0], "unknown key (expected only `rules:`)",
                               doc.line_of((extra[0],)))
    for i, item in enumerate(data["rules"]):
        rule, found = _one_rule(doc, i, item, context)
        yield i, rule, found


def _one_rule(doc: YamlDoc, i: int, item: Any, context: BuildContext
              ) -> tuple[Detector | None, Problem | list[Problem] | None]:
    base = ("rules", i)
    if not isinstance(item, dict):
        return None, Problem(doc.path, dotted(base), "expected a mapping", doc.line_of(base))
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in RULE_TYPES:
        return None, Problem(doc.path, dotted(base + ("type",)),
                             f"unknown rule type {kind!r}; expected one of "
                             f"{', '.join(sorted(RULE_TYPES))}", doc.line_of(base + ("type",)))
    try:
        config = RULE_TYPES[kind].model_validate(item)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = base + tuple(err["loc"])
            msg = {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
                err["type"], err["msg"].removeprefix("Value error, "))
            found.append(Problem(doc.path, dotted(loc), msg, doc.line_of(loc)))
        return None, found
    sources = context.sources
    for src in config.source_names():
        if src not in sources:
            loc = base + ("source",)
            return None, Problem(doc.path, dotted(loc),
                                 f"unknown source {src!r}; configured: "
                                 f"{', '.join(sources) or 'none'}", doc.line_of(loc))
    try:
        return config.build(context), None
    except (ExprError, RuleError) as exc:
        loc = base + tuple(exc.key.split(".")) if exc.key else base
        return None, Problem(doc.path, dotted(loc), str(exc), doc.line_of(loc))
