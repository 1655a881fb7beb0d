"""Safe rule expressions and message templates: checked at load, run by simpleeval.

Expressions (`failure_rate > 0.3 and count >= 5`) run in simpleeval, which refuses dunders,
imports and huge powers. Names are checked against the known features when the rule loads,
so a misspelled feature is a load error (with the closest known name), not a silent
never-firing rule. A rule over several sources names features by source: `upload.count`, each
source being a namespace of its own features.

simpleeval does not bound everything: `'%999999999s' % x`, f-string widths, `str.ljust` and
`(9**3999999) * (9**3999999)` each cost gigabytes or minutes at every evaluation. What can be
seen in the text is refused at load; integer growth that depends on values is refused at run
time by the operators below. Templates get the same treatment for their field widths.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
import string
from types import SimpleNamespace
from typing import Any, Collection, Iterable, Mapping

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


class Refused(Exception):
    """Raised by the run-time operators; the message says what and why."""


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _too_big(what: str) -> Refused:
    return Refused(f"{what} would exceed {MAX_INT_BITS} bits (refused: it could take "
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
        raise Refused("'%' string formatting is not allowed (a width like %999999999s "
                       "allocates without bound); use % on numbers only")
    return operator.mod(a, b)


def _round(number: Any, ndigits: Any = None) -> Any:
    # round(1, -10**7) computes 10**10**7: minutes of CPU
    if isinstance(ndigits, int) and abs(ndigits) > MAX_EXPONENT:
        raise Refused(f"round() to {ndigits} digits is refused (at most {MAX_EXPONENT})")
    return round(number, ndigits)


FUNCTIONS = {"min": min, "max": max, "abs": abs, "round": _round, "len": len}
OPERATORS = {**DEFAULT_OPERATORS, ast.Mult: _mul, ast.Pow: _pow, ast.LShift: _lshift,
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


MAX_TEXT = 2000  # characters of a condition: a rule, not a program


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
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and any(
            isinstance(side, (ast.List, ast.Tuple, ast.ListComp, ast.Set, ast.Dict))
            for side in (node.left, node.right)):
        return "repeating a list with '*' is not allowed (it builds without bound)"
    if isinstance(node, ast.Attribute) and node.attr not in ALLOWED_METHODS:
        if node.attr.startswith("_"):
            return f"attribute {node.attr!r} is not allowed"
        return (f"method {node.attr!r} is not allowed (allowed: "
                f"{', '.join(sorted(ALLOWED_METHODS))})")
    return None


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a misspelled one, if any is close enough."""
    known = list(known)
    same = [k for k in known if k.lower() == name.lower()]  # ERP for erp
    if same:
        return same[0]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_names(names: Iterable[str], known: Collection[str], shown: str = "{!r}") -> str:
    """"unknown name 'latncy_p95'; did you mean 'latency_p95'?" for each name; the known names
    are listed when one has no close match. `shown` formats a name (templates use braces)."""
    parts, lost = [], False
    for name in names:
        close = suggest(name, known)
        part = f"unknown name {shown.format(name)}"
        if close is not None:
            part += f"; did you mean {shown.format(close)}?"
        else:
            lost = True
        parts.append(part)
    text = "; ".join(parts)
    return f"{text} (known: {', '.join(sorted(known))})" if lost else text


def namespaces(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-source feature mappings as the names an expression with qualified names takes:
    `upload.count` reads the attribute `count` of the namespace `upload`."""
    return {ns: SimpleNamespace(**features) for ns, features in values.items()}


def _qualified(tree: ast.AST, spaces: Mapping[str, Collection[str]]
               ) -> tuple[set[int], list[str], list[str]]:
    """The ids of the `source.feature` nodes, the unknown qualified names, and the namespaces
    used bare (`upload > 1`): a namespace stands only before a dot and a feature name."""
    allowed: set[int] = set()
    unknown: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in spaces:
            allowed.update((id(node), id(node.value)))
            if node.attr not in spaces[node.value.id]:
                unknown.append(f"{node.value.id}.{node.attr}")
    bare = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                   and n.id in spaces and id(n) not in allowed})
    return allowed, unknown, bare


class Expression:
    """A boolean condition over named values, parsed once.

    `spaces` maps a namespace (a source's name) to the names it holds, for qualified names
    (`upload.failure_rate`); evaluate with `namespaces(...)` among the names.
    """

    def __init__(self, text: str, known: Collection[str],
                 spaces: Mapping[str, Collection[str]] | None = None):
        self.text = text
        if len(text) > MAX_TEXT:
            raise ExprError(f"the expression is {len(text)} characters long (at most "
                            f"{MAX_TEXT}): split the rule")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError) as exc:  # ValueError: an int literal over 4300 digits
            raise ExprError(f"invalid expression {text[:200]!r}: "
                            f"{getattr(exc, 'msg', None) or exc}") from None
        except (RecursionError, MemoryError):  # nested deeper than the parser can take
            raise ExprError(f"the expression {text[:60]!r}... is nested too deeply") from None
        spaces = spaces or {}
        qualified, unknown_q, bare = _qualified(tree, spaces)
        if bare:
            raise ExprError(f"{', '.join(repr(b) for b in bare)} is a source: name one of its "
                            f"features, e.g. {bare[0]}.count, in {text!r}")
        unknown = sorted(
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            - set(known) - set(FUNCTIONS) - _CONSTANTS - set(spaces)) + unknown_q
        for name in unknown:
            owners = [ns for ns, names in spaces.items() if name in names]
            if owners:  # a feature of several sources: which one is meant
                raise ExprError(f"{name!r} needs its source: "
                                f"{' or '.join(f'{ns}.{name}' for ns in owners)}")
        if unknown:
            everything = [*known, *(f"{ns}.{n}" for ns, names in spaces.items() for n in names)]
            raise ExprError(unknown_names(unknown, everything))
        for node in ast.walk(tree):
            why = None if id(node) in qualified else _costly(node)
            if why:
                raise ExprError(f"{why}, in {text!r}")
        # the plain names it reads (features, or namespaces for qualified names)
        self.names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                               ) - set(FUNCTIONS) - _CONSTANTS
        # copies: simpleeval adds list/dict/... to the functions mapping it is given
        self._evaluator = EvalWithCompoundTypes(operators=dict(OPERATORS),
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
        # only plain names, looked up whole: "{x.__class__}" or "{x[0]}" could reach into
        # objects. A qualified name ("upload.count") is one key of the values, never an
        # attribute access
        if not _plain(field_name):
            raise KeyError(field_name)
        return kwargs[field_name], field_name


def _plain(name: str) -> bool:
    """A name or a qualified name (`upload.count`): identifiers joined by dots."""
    return all(part.isidentifier() for part in name.split("."))


_FORMATTER = _Formatter()
_BRACED = "{{{}}}"  # a template name as written: {failed}


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
            if not _plain(name):
                raise ExprError(f"template field {{{name}}} in {text!r}: use a plain name")
            if name not in known:
                raise ExprError(unknown_names([name], known, _BRACED))
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
