"""Reading operator YAML files with positions, so every error can name file, key and line.

Both the agent config and the rule files go through here: `yaml.safe_load` semantics only,
plus a map from key paths to line numbers for error messages.

Aliases are bounded: each `*ref` stands for a whole copy of its anchor once loaded, so nine
lines of nested aliases ("billion laughs") expand to a billion nodes and stall the loader and
every walk over the data. The size after expansion is counted while composing, before
anything is built, and such a document is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml

# An operator file has hundreds of nodes; these leave room for generous use of anchors.
MAX_NODES = 100_000  # after expanding aliases
MAX_ALIASES = 1_000


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
        node = _load(text, construct=False)
        dupes = list(_duplicate_keys(node, ()))
        if dupes:
            # PyYAML keeps the last silently; the operator meant one of them, we cannot tell
            raise FileProblems([Problem(path, dotted(loc),
                                        f"key given twice (first on line {first})", line)
                                for loc, first, line in dupes])
        data = _load(text, construct=True)
    except _TooLarge as exc:
        raise FileProblems([Problem(path, "", str(exc), exc.line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise FileProblems([Problem(path, "", f"YAML syntax error: {reason}", line)]) from None
    except RecursionError:
        raise FileProblems([Problem(path, "", "YAML nested too deeply")]) from None
    return YamlDoc(path, data, node)


def _load(text: str, construct: bool) -> Any:
    """The node tree, or the data. Two passes, as `<<` merging rewrites the node tree, which
    must stay as written for line numbers and the duplicate-key check."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data() if construct else loader.get_single_node()
    finally:
        loader.dispose()


class _TooLarge(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts what the document expands to as it composes it."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._expanded = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size, each node sized once
        self._finished: set[str] = set()  # anchors whose node is complete

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooLarge(f"more than {MAX_ALIASES} aliases (*name): refused", line)
            anchor = event.anchor
            if anchor in self.anchors and anchor not in self._finished:
                # a structure containing itself never ends once expanded
                raise _TooLarge(f"alias *{anchor} refers to a node that contains it", line)
            target = self.anchors.get(anchor)
            self._expanded += _size(target, self._sizes) - 1 if target is not None else 0
        node = super().compose_node(parent, index)
        self._expanded += 1
        if self._expanded > MAX_NODES:
            raise _TooLarge(f"the document expands to more than {MAX_NODES} values (aliases "
                            "repeating aliases): refused", line)
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            self._finished.add(anchor)
        return node


def _size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes in `node` with every alias expanded; `sizes` memoises by node identity."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_size(k, sizes) + _size(v, sizes) for k, v in node.value)
    sizes[id(node)] = total
    return total


def _duplicate_keys(node: yaml.Node | None, loc: tuple[Any, ...],
                    seen_nodes: set[int] | None = None
                    ) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    """(key path, first line, repeated line) of every key repeated in one mapping.

    A node reached again through an alias is not walked again: it was checked the first time.
    """
    if seen_nodes is None:
        seen_nodes = set()
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
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
            yield from _duplicate_keys(value_node, loc + (key,), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, loc + (i,), seen_nodes)


def dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)
