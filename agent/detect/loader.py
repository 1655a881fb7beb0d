"""Loading operator rule files: every problem with its file, key path and line, all at once."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Collection, Iterable, Iterator

from pydantic import ValidationError

from agent.detect.base import BuildContext, Detector, RuleConfig, RuleError
from agent.detect.expr import ExprError, suggest
from agent.detect.registry import RULE_TYPES
from agent.ledger.config import LEDGER_SOURCE, LedgerConfig
from agent.yamlfile import FileProblems, Problem, YamlDoc, dotted, read_yaml

RULE_TEST_SUFFIX = ".test.yaml"


def rule_files(globs: Iterable[str]) -> list[str]:
    """The rule files the globs match, in order, each once. Rule test files
    (`*.test.yaml`, for `invoice-agent rules test`) live beside the rules and are skipped."""
    files: list[str] = []
    for pattern in globs:
        for f in sorted(glob.glob(pattern)):
            if f.endswith(RULE_TEST_SUFFIX):
                continue
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
                problems.append(RuleProblem(
                    path, f"rules.{i}.name",
                    f"rule name {rule.name!r} already used in {seen[rule.name]}",
                    doc.line_of(("rules", i, "name")), rule.name))
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


@dataclass(frozen=True, slots=True)
class RuleProblem(Problem):
    """A problem of one rule: shown with the rule's name after its place in the file,
    `rules.1 (upload_latency).when: ...`, so the operator finds it by name. `key` stays the
    plain path (`rules.1.when`)."""

    rule: str = ""

    def __str__(self) -> str:
        if not self.rule:
            return Problem.__str__(self)
        head, _, rest = self.key.partition(".")  # "rules", "1.when"
        index, dot, tail = rest.partition(".")
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {head}.{index} ({self.rule}){dot}{tail}: {self.message}"


def _one_rule(doc: YamlDoc, i: int, item: Any, context: BuildContext
              ) -> tuple[Detector | None, Problem | list[Problem] | None]:
    base = ("rules", i)
    if not isinstance(item, dict):
        return None, Problem(doc.path, dotted(base), "expected a mapping", doc.line_of(base))
    name = item.get("name")
    rule = name[:80] if isinstance(name, str) else ""

    def problem(loc: tuple[Any, ...], message: str) -> RuleProblem:
        return RuleProblem(doc.path, dotted(loc), message, doc.line_of(loc), rule)

    kind = item.get("type")
    if not isinstance(kind, str) or kind not in RULE_TYPES:
        close = suggest(kind, RULE_TYPES) if isinstance(kind, str) else None
        hint = f"; did you mean {close!r}?" if close else ""
        return None, problem(base + ("type",), f"unknown rule type {kind!r}{hint} (expected "
                             f"one of {', '.join(sorted(RULE_TYPES))})")
    config_type = RULE_TYPES[kind]
    try:
        config = config_type.model_validate(item)
    except ValidationError as exc:
        return None, [problem(base + tuple(err["loc"]), _message(err, config_type))
                      for err in exc.errors()]
    sources = context.sources
    for j, src in enumerate(config.source_names()):
        if src not in sources:
            close = suggest(src, sources)
            hint = f"; did you mean {close!r}?" if close else ""
            loc = base + (("sources", j) if "sources" in item else ("source",))
            return None, problem(loc, f"unknown source {src!r}{hint} (configured: "
                                      f"{', '.join(sources) or 'none'})")
    try:
        return config.build(context), None
    except (ExprError, RuleError) as exc:
        return None, problem(base + tuple(exc.key.split(".")) if exc.key else base, str(exc))


def _message(err: Any, config_type: type[RuleConfig]) -> str:
    """One validation error as operators read it; a misspelled option gets the closest one."""
    if err["type"] == "extra_forbidden":
        options = [f.alias or n for n, f in config_type.model_fields.items()]
        close = suggest(str(err["loc"][-1]), options) if len(err["loc"]) == 1 else None
        return f"unknown key; did you mean {close!r}?" if close else "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")
