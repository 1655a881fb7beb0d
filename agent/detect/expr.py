"""Safe rule expressions and message templates: checked at load, run by simpleeval.

Expressions (`failure_rate > 0.3 and count >= 5`) run in simpleeval, which refuses dunders,
imports and huge powers. Names are checked against the known features when the rule loads,
so a misspelled feature is a load error, not a silent never-firing rule.

simpleeval does not bound everything: `'%999999999s' % x`, f-string widths, `str.ljust` and
`(9**3999999) * (9**3999999)` each cost gigabytes or minutes at every evaluation. What can be
seen in the text is refused at load; integer growth that depends on values is refused at run
time by the operators below. Templates get the same treatment for their field widths.
"""

from __future__ import annotations

import ast
import operator
import re
import string
from typing import Any, Collection, Mapping

from simpleeval import DEFAULT_OPERATORS, EvalWithCompoundTypes  # type: ignore[import-untyped]

# Far beyond any count or threshold; below it, a few multiplications stay small.
MAX_INT = 10**15
MAX_EXPONENT = 64
MAX_INT_BITS = 256  # run-time bound for results of *, ** and <<
MAX_FIELD_WIDTH = 64  # template width / precision
MAX_RENDERED = 4000  # characters of one rendered template

_CONSTANTS = {"True", "False", "None"}
# Read-only and linear in their input; the rest (ljust, zfill, format, replace, clear, ...)
# can allocate without bound or change the features other rules see.
ALLOWED_METHODS = frozenset(
    {"get", "keys", "values", "items", "startswith", "endswith", "lower", "upper", "strip"})
_WIDTH = re.compile(r"\d+")


class ExprError(ValueError):
    """An expression or template that cannot be used; the message says why.

    `key` is the rule option it came from (`when`, `summary.zh`), when known.
    """

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


class _Refused(Exception):
    """Raised by the run-time operators; the message says what and why."""


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _too_big(what: str) -> _Refused:
    return _Refused(f"{what} would exceed {MAX_INT_BITS} bits (refused: it could take "
                    f"unbounded memory and time)")


def _mul(a: Any, b: Any) -> Any:
    if _int_bits(a) + _int_bits(b) > MAX_INT_BITS:
        raise _too_big("an integer product")
    return DEFAULT_OPERATORS[ast.Mult](a, b)  # simpleeval's: bounds repeated strings/lists


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and _int_bits(a) * b > MAX_INT_BITS:
        raise _too_big("an integer power")
    return DEFAULT_OPERATORS[ast.Pow](a, b)


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > 0 and _int_bits(a) + b > MAX_INT_BITS:
        raise _too_big("a left shift")
    return DEFAULT_OPERATORS[ast.LShift](a, b)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise _Refused("'%' string formatting is not allowed (a width like %999999999s "
                       "allocates without bound); use % on numbers only")
    return operator.mod(a, b)


def _round(number: Any, ndigits: Any = None) -> Any:
    # round(1, -10**7) computes 10**10**7: minutes of CPU
    if isinstance(ndigits, int) and abs(ndigits) > MAX_EXPONENT:
        raise _Refused(f"round() to {ndigits} digits is refused (at most {MAX_EXPONENT})")
    return round(number, ndigits)


FUNCTIONS = {"min": min, "max": max, "abs": abs, "round": _round, "len": len}
_OPERATORS = {**DEFAULT_OPERATORS, ast.Mult: _mul, ast.Pow: _pow, ast.LShift: _lshift,
              ast.Mod: _mod}


def _number(node: ast.AST) -> int | float | None:
    """The value of a numeric literal, also written with a sign; else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand)
        return None if value is None else -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    return None


def _costly(node: ast.AST) -> str | None:
    """Why `node` is refused at load, or None."""
    if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) > MAX_INT:
        return "an integer literal is too large (at most 10**15)"  # too long to print
    if isinstance(node, ast.JoinedStr):
        return "f-strings are not allowed (their field widths allocate without bound)"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and (
            isinstance(node.left, ast.JoinedStr)
            or isinstance(node.left, ast.Constant) and type(node.left.value) not in (int, float)):
        return ("'%' string formatting is not allowed (a width like %999999999s allocates "
                "without bound); use % on numbers only")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = _number(node.right)
        if exponent is not None and abs(exponent) > MAX_EXPONENT:
            return f"the exponent {exponent} is too large (at most {MAX_EXPONENT})"
    if isinstance(node, ast.Attribute) and node.attr not in ALLOWED_METHODS:
        if node.attr.startswith("_"):
            return f"attribute {node.attr!r} is not allowed"
        return (f"method {node.attr!r} is not allowed (allowed: "
                f"{', '.join(sorted(ALLOWED_METHODS))})")
    return None


class Expression:
    """A boolean condition over named values, parsed once."""

    def __init__(self, text: str, known: Collection[str]):
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError) as exc:  # ValueError: an int literal over 4300 digits
            raise ExprError(f"invalid expression {text!r}: "
                            f"{getattr(exc, 'msg', None) or exc}") from None
        unknown = sorted(
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            - set(known) - set(FUNCTIONS) - _CONSTANTS)
        if unknown:
            raise ExprError(f"unknown name(s) {', '.join(unknown)} in {text!r}; known: "
                            f"{', '.join(sorted(known))}")
        for node in ast.walk(tree):
            why = _costly(node)
            if why:
                raise ExprError(f"{why}, in {text!r}")
        # copies: simpleeval adds list/dict/... to the functions mapping it is given
        self._evaluator = EvalWithCompoundTypes(operators=dict(_OPERATORS),
                                                functions=dict(FUNCTIONS), names={})
        try:
            self._parsed = self._evaluator.parse(text)
        except Exception as exc:  # simpleeval raises its own types for refused syntax
            raise ExprError(f"invalid expression {text!r}: {exc}") from None

    def __call__(self, names: Mapping[str, Any]) -> bool:
        """Evaluate; raises ExprError on a runtime problem (e.g. a comparison of wrong types)."""
        self._evaluator.names = names
        try:
            return bool(self._evaluator.eval(self.text, previously_parsed=self._parsed))
        except Exception as exc:
            raise ExprError(f"{self.text!r} failed: {exc}") from None


class _Formatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        # only plain names: "{x.__class__}" or "{x[0]}" could reach into objects
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return kwargs[field_name], field_name


_FORMATTER = _Formatter()


class Template:
    """A message like "上传失败率 {failure_rate:.0%}" with names checked at load."""

    def __init__(self, text: str, known: Collection[str]):
        self.text = text
        try:
            parts = list(_FORMATTER.parse(text))
        except ValueError as exc:
            raise ExprError(f"invalid template {text!r}: {exc}") from None
        self._names = {name for _, name, _, _ in parts if name is not None}
        for _, name, spec, _conv in parts:
            if name is None:
                continue
            if not name.isidentifier():
                raise ExprError(f"template field {{{name}}} in {text!r}: use a plain name")
            if name not in known:
                raise ExprError(f"unknown name {{{name}}} in {text!r}; known: "
                                f"{', '.join(sorted(known))}")
            if spec and "{" in spec:
                raise ExprError(f"nested fields are not supported in {text!r}")
            # the only digit runs a format spec can hold are its fill, width and precision
            widest = max((int(d) for d in _WIDTH.findall(spec or "")), default=0)
            if widest > MAX_FIELD_WIDTH:
                raise ExprError(f"field width or precision {widest} in {{{name}:{spec}}} is "
                                f"too large (at most {MAX_FIELD_WIDTH}), in {text!r}")

    def render(self, names: Mapping[str, Any]) -> str:
        """The message; never raises, whatever the values (a notification must not be lost)."""
        try:
            text = _FORMATTER.vformat(self.text, (), dict(names))
        except Exception:
            # a value of an unexpected type for its format spec, or one the finding lacks:
            # show what there is plainly rather than lose the notification
            try:
                plain = _strs(names)
                for name in self._names - plain.keys():
                    plain[name] = "?"
                text = _FORMATTER.vformat(_strip_specs(self.text), (), plain)
            except Exception:
                text = self.text
        # a value can be long (every error code of a window): keep messages sendable
        return text if len(text) <= MAX_RENDERED else text[:MAX_RENDERED - 1] + "…"


def _strip_specs(text: str) -> str:
    out = []
    for literal, name, _spec, _conv in _FORMATTER.parse(text):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{" + name + "}")
    return "".join(out)


def _strs(names: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in names.items()}
