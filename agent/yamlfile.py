"""Reading operator YAML files with positions, so every error can name file, key and line.

Both the agent config and the rule files go through here: `yaml.safe_load` semantics only,
plus a map from key paths to line numbers for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an operator file."""

    file: str
    key: str  # dotted key path, e.g. "sources.0.format"; "" for the whole file
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class FileProblems(Exception):
    """Raised with every problem found at once."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML file: its data and the node tree used to find line numbers."""

    path: str
    data: Any
    node: yaml.Node | None

    def line_of(self, loc: Iterable[Any]) -> int | None:
        """1-based line of the deepest node on the key path `loc` that exists in this file."""
        node = self.node
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(part):
                        node = value_node
                        line = key_node.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def has(self, loc: Iterable[Any]) -> bool:
        data = self.data
        for part in loc:
            if isinstance(data, dict) and part in data:
                data = data[part]
            elif isinstance(data, list) and isinstance(part, int) and part < len(data):
                data = data[part]
            else:
                return False
        return True


def read_yaml(path: str | Path) -> YamlDoc:
    """Load one YAML file safely; a syntax error becomes a Problem with its line."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileProblems(
            [Problem(path, "", f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise FileProblems([Problem(path, "", f"file is not UTF-8: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise FileProblems([Problem(path, "", f"YAML syntax error: {reason}", line)]) from None
    dupes = list(_duplicate_keys(node, ()))
    if dupes:
        # PyYAML keeps the last silently; the operator meant one of them, we cannot tell which
        raise FileProblems([Problem(path, dotted(loc), f"key given twice (first on line {first})",
                                    line) for loc, first, line in dupes])
    return YamlDoc(path, data, node)


def _duplicate_keys(node: yaml.Node | None, loc: tuple[Any, ...]
                    ) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    """(key path, first line, repeated line) of every key repeated in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key == "<<":
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                yield loc + (key,), seen[key], line
            else:
                seen[key] = line
            yield from _duplicate_keys(value_node, loc + (key,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, loc + (i,))


def dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)
