"""The sandbox message templates run in: Jinja's immutable sandbox, bounded.

Templates are operator data: they never run as Python, and Jinja's sandbox alone bounds
neither time nor size. Here a rendering gets RENDER_SECONDS (nested loops could take hours),
and no value it builds may pass MAX_TEXT characters (`"x" * 10**9`, `"%999999999s" % 1` or a
`~` doubling in a loop would take gigabytes); numbers given to filters and string methods and
format widths are bounded too. Going past a bound raises TemplateLimit.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import BuiltinFunctionType, FrameType
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_SECONDS = 2.0  # one rendering of one template; the shipped ones take milliseconds
MAX_TEXT = 1_000_000  # characters of any value a template builds, and of what it renders
MAX_ARGUMENT = 10_000  # integers given to a filter or a str method (widths, counts)
MAX_WIDTH = 64  # printf/format widths and precisions, as in rule summaries
MAX_BITS = 10_000  # integers a template computes
_WIDTHS = re.compile(r"\d+")


class TemplateLimit(RuntimeError):
    """A template went past one of the bounds above; the message says which."""


def _room(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise TemplateLimit(f"{what} would be longer than {MAX_TEXT} characters")


def _sized(value: Any, what: str) -> Any:
    _room(len(value) if isinstance(value, (str, list, tuple, dict)) else 0, what)
    return value


def _formats(text: Any) -> None:
    """Refuse a `%` or `{}` format string with a computed (`*`) or huge width/precision."""
    if isinstance(text, str) and ("%" in text or "{" in text) and (
            "%*" in text or ".*" in text
            or max(map(int, _WIDTHS.findall(text)), default=0) > MAX_WIDTH):
        raise TemplateLimit(f"a format width over {MAX_WIDTH} is refused")


def bounded_join(parts: Iterable[Any]) -> str:
    """`environment.concat`: what a template, block, macro or `~` joins, within MAX_TEXT."""
    out, size = [], 0
    for part in parts:
        size += len(part)
        _room(size, "the rendered text")
        out.append(part)
    return "".join(out)


def _check_arguments(args: Iterable[Any], what: str) -> None:
    if any(isinstance(a, int) and abs(a) > MAX_ARGUMENT for a in args):
        raise TemplateLimit(f"{what}: a number over {MAX_ARGUMENT} is refused")


def _grown(value: Any, old: Any, new: Any) -> None:
    """Refuse a replace whose result would pass MAX_TEXT, before it is built."""
    if isinstance(value, str) and isinstance(old, str) and isinstance(new, str):
        count = len(value) + 1 if not old else value.count(old)
        _room(len(value) + count * max(0, len(new) - len(old)), "a replacement")


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if getattr(f, "jinja_pass_arg", None) else 1  # the context, then the value

    @functools.wraps(f)  # keeps jinja_pass_arg
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments([*args[skip:], *kwargs.values()], f"filter {name}")
        value, more = (args[skip - 1] if len(args) >= skip else None), args[skip:]
        if name == "format":
            _formats(value)
        elif name == "replace" and len(more) > 1:
            _grown(value, *more[:2])
        elif name in ("indent", "join") and isinstance(value, (str, list, tuple)):
            by = more[0] if more else kwargs.get("width", 4) if name == "indent" else ""
            times = value.count("\n") + 1 if isinstance(value, str) else len(value)
            _room(len(value) + times * (len(by) if isinstance(by, str) else by
                                       if isinstance(by, int) else 0), f"filter {name}")
        return _sized(f(*args, **kwargs), f"filter {name}")

    return bounded


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequences = (str, list, tuple)
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, sequences) and isinstance(n, int):
                _room(len(seq) * n, "a repetition")
        if isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > MAX_BITS:
            raise TemplateLimit(f"a product over {MAX_BITS} bits is refused")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and left.bit_length() * right > MAX_BITS:
        raise TemplateLimit(f"a power over {MAX_BITS} bits is refused")
    elif operator == "%":
        _formats(left)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        _room(len(left) + len(right), "a sum")


class _Generator(CodeGenerator):
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("concat(map(str, (")  # `a ~ b` by the bounded join, not Jinja's own
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, bounded in the values it builds (see the module doc)."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.concat = bounded_join  # type: ignore[method-assign]
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals.pop("lipsum", None)  # paragraphs of filler text: no use in a message

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _sized(super().call_binop(context, operator, left, right), "a value")

    def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805 - Jinja's names
             **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        if isinstance(method, BuiltinFunctionType):  # str.ljust, str.format, dict.get, ...
            name, owner = method.__name__, getattr(method, "__self__", None)
            if name in ("format", "format_map"):
                _formats(owner)
            else:
                _check_arguments([*args, *kwargs.values()], f"{name}()")
                if name == "replace" and len(args) >= 2:
                    _grown(owner, args[0], args[1])
        return _sized(super().call(__context, __obj, *args, **kwargs), "a value")


@contextmanager
def time_limit(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Raise TemplateLimit inside the block once it has run `seconds`: every Python line run
    meanwhile (the template's and Jinja's) checks the clock. For this thread only."""
    end, previous = time.monotonic() + seconds, sys.gettrace()

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > end:
            raise TemplateLimit(f"rendering took longer than {seconds:g} s")
        return line

    sys.settrace(line)
    try:
        yield
    finally:
        sys.settrace(previous)


def environment(root: Path | None = None) -> ImmutableSandboxedEnvironment:
    """The sandbox every template runs in (files under `root`, if given)."""
    return _BoundedSandbox(
        loader=FileSystemLoader(str(root)) if root is not None else None,
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=False)
