"""What rules over window features share: the features a source's windows carry, the names an
expression sees, what an event changes of them, and compiling `when:` with a trial on a window
without events."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from simpleeval import (  # type: ignore[import-untyped]
    DISALLOW_FUNCTIONS,
    DISALLOW_METHODS,
    AttributeDoesNotExist,
    NameNotDefined,
)

from agent.detect.expr import OPERATORS, ExprError, Expression, Refused, namespaces
from agent.features import ERROR_LEVELS, FAIL_STATUSES, FEATURES, OpenFeatures, empty_features
from agent.ledger.config import LEDGER_SOURCE
from agent.ledger.features import LEDGER_FEATURES, empty_ledger_features
from agent.types import Event


def features_of(source: str) -> dict[str, str]:
    """The features of the source's windows: the derived `ledger` source has its own."""
    return LEDGER_FEATURES if source == LEDGER_SOURCE else FEATURES


def empty_of(source: str) -> dict[str, Any]:
    """The features of one of the source's windows without events."""
    return empty_ledger_features() if source == LEDGER_SOURCE else empty_features()


def numeric_features(source: str) -> list[str]:
    """The features that are numbers (what a baseline can be kept of)."""
    return [k for k, v in empty_of(source).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


def window_names(features: Mapping[str, Any]) -> Mapping[str, Any]:
    """The names an expression sees for one window's features."""
    if isinstance(features, OpenFeatures):  # an open window's, computed as they are read
        return features.names()
    # a read-only view of the error-code counts: no `.clear()` on them
    if "error_codes" not in features:  # the ledger's windows have none
        return dict(features)
    return dict(features, error_codes=MappingProxyType(features["error_codes"]))


def sources_names(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The names an expression over several sources sees: one namespace per source."""
    return namespaces({s: window_names(f) for s, f in features.items()})


# What one event can change in its window (agent/features.py `_Acc.add`), as bits: a rule judged
# at each line need not be judged again while none of the features it reads changed.
COUNT, OK, FAILED, TIMEOUT, PENDING, ERRORS, LATENCY, CODES = (1 << i for i in range(8))
# a status as `_Acc.add` counts it (every word of FAIL_STATUSES is a failure)
_STATUS_BITS = {"ok": OK, "timeout": TIMEOUT, "pending": PENDING,
                **{s: FAILED for s in FAIL_STATUSES}}
DEPENDS: dict[str, int] = {
    "count": COUNT, "ok": OK, "failed": FAILED, "timeout": TIMEOUT, "pending": PENDING,
    "failure_rate": COUNT | FAILED | TIMEOUT, "timeout_rate": COUNT | TIMEOUT,
    "errors": ERRORS, "window_minutes": 0,
    **{f: LATENCY for f in FEATURES if f.startswith("latency_")},
    **{f: CODES for f in FEATURES if "error_code" in f or f == "error_count"},
}


def reads(names: Iterable[str]) -> int:
    """The bits of the features among `names`; a name of no source window's feature (a
    ledger window's) reads every bit, so a rule naming it is judged at every line."""
    bits = 0
    for n in names:
        bits |= DEPENDS.get(n, ~0)
    return bits


def changes(ev: Event) -> int:
    """The bits of the features that counting `ev` into its window changes (`_Acc.add`)."""
    return changes_of(ev.status, ev.error_code, ev.level, ev.latency_ms)


def changes_of(status: str | None, code: str | None, level: str | None,
               latency: float | None) -> int:
    """changes() of an event with this status, error code, level and latency."""
    if status is not None:
        bits = _STATUS_BITS.get(status, 0) | COUNT
    else:  # an error code without a status counts as failed
        bits = FAILED | COUNT if code else COUNT
    if code:
        bits |= CODES
    if latency is not None:
        bits |= LATENCY
    if level is not None and level.lower() in ERROR_LEVELS:
        bits |= ERRORS
    return bits


def leading_bound(when: When) -> tuple[str, float, bool] | None:
    """(feature, number, strict) when `when` is `feature >= number` (strict: `>`), or begins
    with one in an `and` (evaluated first, so while it is false nothing else is evaluated);
    `number <= feature` too. `error_codes.get('1001', 0)` is the feature `error_codes:1001`.
    None for anything else."""
    node = when.parsed_body
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        node = node.values[0]
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if isinstance(left, ast.Constant) and isinstance(right, ast.Name):
        flipped = {ast.LtE: ast.GtE, ast.Lt: ast.Gt}.get(type(op))
        if flipped is None:
            return None
        left, op, right = right, flipped(), left
    name = _code_count(left) if isinstance(left, ast.Call) else \
        left.id if isinstance(left, ast.Name) else None
    if name is None or not (isinstance(right, ast.Constant) and isinstance(op, (ast.GtE, ast.Gt))):
        return None
    number = right.value
    if type(number) is int:
        number = float(number) if abs(number) < 2**53 else math.inf  # exactly, or not at all
    if type(number) is not float or not math.isfinite(number):
        return None
    return name, number, isinstance(op, ast.Gt)


def _code_count(call: ast.Call) -> str | None:
    """`error_codes:CODE` for `error_codes.get('CODE', 0)`: 0 until the code is seen, then its
    count (a default other than 0 would fall when the code first comes)."""
    f, args = call.func, call.args
    if not (isinstance(f, ast.Attribute) and f.attr == "get" and isinstance(f.value, ast.Name)
            and f.value.id == "error_codes" and len(args) == 2 and not call.keywords
            and all(isinstance(a, ast.Constant) for a in args)):
        return None
    code, default = args[0].value, args[1].value  # type: ignore[attr-defined]
    if type(code) is not str or type(default) is not int or default != 0:
        return None
    return "error_codes:" + code


def compile_when(text: str, sources: Collection[str], qualified: bool = False) -> When:
    """`when:` checked against the features of `sources` (qualified: `upload.count`, for a
    rule over several sources) and tried on windows without events: a type error ('' > 1000)
    or a division by a zero count would otherwise fail in every quiet window at run time."""
    try:
        if qualified:
            when = When(text, (), {s: features_of(s) for s in sources})
            when(sources_names({s: empty_of(s) for s in sources}))
        else:
            (source,) = sources
            when = When(text, features_of(source))
            when(window_names(empty_of(source)))
    except ExprError as exc:
        count = f"{next(iter(sources))}.count" if qualified else "count"
        raise ExprError(f"{exc} (tried on a window without events; guard with "
                        f"`{count} > 0 and ...` if needed)"
                        if "failed:" in str(exc) else str(exc), key="when") from None
    return when


_Fn = Callable[[Mapping[str, Any]], Any]
_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is,
            ast.IsNot)


class When(Expression):
    """A `when:` condition, its tree turned into nested Python closures once at load, so a
    rule judged at every line (or a thousand rules at every window) costs a few calls rather
    than a walk of simpleeval's tree. Its names and refusals are Expression's; evaluating gives
    the same verdicts and error messages (tests/test_rules_incremental.py compares them)."""

    def __init__(self, text: str, known: Collection[str],
                 spaces: Mapping[str, Collection[str]] | None = None):
        super().__init__(text, known, spaces)
        fn = _Compiler(text, self._evaluator.functions).compile(self._parsed.value)
        # the condition's value (truthy or not), raising what simpleeval would: for callers
        # that judge many times and turn errors into `failure(exc)` themselves
        self.test: _Fn = fn if fn is not None else self._simpleeval

    @property
    def parsed_body(self) -> ast.AST:
        """The condition's syntax tree."""
        return self._parsed.value

    def _simpleeval(self, names: Mapping[str, Any]) -> Any:
        """A tree the compiler leaves to simpleeval."""
        self._evaluator.names = names
        return self._evaluator.eval(self.text, previously_parsed=self._parsed)

    def __call__(self, names: Mapping[str, Any]) -> bool:
        try:
            return bool(self.test(names))
        except Exception as exc:
            raise self.failure(exc) from None

    def failure(self, exc: Exception) -> ExprError:
        """The error of an evaluation that raised `exc`, as Expression words it."""
        return ExprError(f"{self.text!r} failed: {exc}")


class _Compiler:
    """Closures that follow simpleeval's `_eval_*` node by node: the same operators (the
    bounded ones of expr.py), functions, name and attribute lookups and error messages. A tree
    with any other node (a list or dict literal, a comprehension) is left to simpleeval."""

    def __init__(self, text: str, functions: Mapping[str, Any]):
        self.text = text
        self.functions = functions

    def compile(self, node: ast.AST) -> _Fn | None:
        try:
            return self._node(node)
        except (_Unsupported, RecursionError):  # a tree too deep to nest closures for
            return None

    def _node(self, node: ast.AST) -> _Fn:
        kind = type(node).__name__
        make = getattr(self, "_" + kind.lower(), None)
        if make is None:
            raise _Unsupported(kind)
        return make(node)

    def _constant(self, node: ast.Constant) -> _Fn:
        value = node.value
        if not isinstance(value, (int, float, str)) and value is not None:
            raise _Unsupported("constant")  # bytes, complex, Ellipsis: as simpleeval would
        if isinstance(value, str) and len(value) > 100_000:
            raise _Unsupported("long literal")  # simpleeval refuses it at each call
        return lambda names: value

    def _name(self, node: ast.Name) -> _Fn:
        key, missing = node.id, self._missing

        def name(names: Mapping[str, Any]) -> Any:
            try:
                return names[key]
            except (TypeError, KeyError):
                return missing(key)
        return name

    def _missing(self, key: str) -> Any:
        """A name the names lack: a function's own name, else simpleeval's error."""
        if key in self.functions:
            return self.functions[key]
        raise NameNotDefined(key, self.text)

    def _name_to_constant(self, key: str, op: Callable[[Any, Any], Any], constant: Any) -> _Fn:
        """`failed >= 3` in one call."""
        missing = self._missing

        def compare(names: Mapping[str, Any]) -> Any:
            try:
                value = names[key]
            except (TypeError, KeyError):
                value = missing(key)
            return op(value, constant)
        return compare

    def _op(self, op: ast.AST) -> Callable[..., Any]:
        if type(op) not in OPERATORS:
            raise _Unsupported(type(op).__name__)
        return OPERATORS[type(op)]

    def _unaryop(self, node: ast.UnaryOp) -> _Fn:
        op, operand = self._op(node.op), self._node(node.operand)
        return lambda names: op(operand(names))

    def _binop(self, node: ast.BinOp) -> _Fn:
        op, left, right = self._op(node.op), self._node(node.left), self._node(node.right)
        return lambda names: op(left(names), right(names))

    def _boolop(self, node: ast.BoolOp) -> _Fn:
        values, stop = [self._node(v) for v in node.values], isinstance(node.op, ast.Or)

        def boolop(names: Mapping[str, Any]) -> Any:
            result: Any = False
            for value in values:
                result = value(names)
                if bool(result) is stop:
                    break
            return result
        return boolop

    def _compare(self, node: ast.Compare) -> _Fn:
        if not all(isinstance(o, _COMPARE) for o in node.ops):
            raise _Unsupported("comparison")
        first, ops = self._node(node.left), [self._op(o) for o in node.ops]
        rights = [self._node(c) for c in node.comparators]
        if len(ops) == 1:
            op, right = ops[0], rights[0]
            if isinstance(node.comparators[0], ast.Constant):  # `failed >= 3`: the usual
                constant = node.comparators[0].value
                if isinstance(node.left, ast.Name):
                    return self._name_to_constant(node.left.id, op, constant)
                return lambda names: op(first(names), constant)
            return lambda names: op(first(names), right(names))
        pairs = list(zip(ops, rights, strict=True))

        def compare(names: Mapping[str, Any]) -> Any:
            right, result = first(names), True
            for op, comp in pairs:
                if not result:
                    break
                left, right = right, comp(names)
                result = op(left, right)
            return result
        return compare

    def _ifexp(self, node: ast.IfExp) -> _Fn:
        test, body, orelse = self._node(node.test), self._node(node.body), self._node(node.orelse)
        return lambda names: body(names) if test(names) else orelse(names)

    def _call(self, node: ast.Call) -> _Fn:
        if any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            raise _Unsupported("unpacking")
        args = [self._node(a) for a in node.args]
        keywords = [(str(k.arg), self._node(k.value)) for k in node.keywords]
        if isinstance(node.func, ast.Attribute):
            func = self._node(node.func)
        elif isinstance(node.func, ast.Name) and node.func.id in self.functions \
                and self.functions[node.func.id] not in DISALLOW_FUNCTIONS:
            fixed = self.functions[node.func.id]
            func = lambda names: fixed  # noqa: E731
        else:
            raise _Unsupported("call")  # simpleeval names the problem at each call
        return lambda names: func(names)(*[a(names) for a in args],
                                         **{k: v(names) for k, v in keywords})

    def _attribute(self, node: ast.Attribute) -> _Fn:
        attr, text, value = node.attr, self.text, self._node(node.value)
        if attr.startswith(("_", "func_")) or attr in DISALLOW_METHODS:
            raise _Unsupported("attribute")  # refused at load; simpleeval refuses it too

        def attribute(names: Mapping[str, Any]) -> Any:
            obj = value(names)
            try:
                item = getattr(obj, attr)
            except (AttributeError, TypeError):
                try:
                    item = obj[attr]
                except (KeyError, TypeError):
                    raise AttributeDoesNotExist(attr, text) from None
            if callable(item) and item in DISALLOW_FUNCTIONS:
                raise Refused("This function is forbidden")
            return item
        return attribute

    def _subscript(self, node: ast.Subscript) -> _Fn:
        container, key = self._node(node.value), self._node(node.slice)
        return lambda names: container(names)[key(names)]

    def _slice(self, node: ast.Slice) -> _Fn:
        parts = [None if p is None else self._node(p) for p in (node.lower, node.upper,
                                                                   node.step)]
        return lambda names: slice(*[None if p is None else p(names) for p in parts])


class _Unsupported(Exception):
    """A node the compiler leaves to simpleeval."""
