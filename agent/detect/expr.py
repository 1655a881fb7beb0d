"""Safe rule expressions and message templates: checked at load, run by simpleeval.

Expressions (`failure_rate > 0.3 and count >= 5`) run in simpleeval, which refuses dunders,
imports and huge powers. Names are checked against the known features when the rule loads,
so a misspelled feature is a load error, not a silent never-firing rule.
"""

from __future__ import annotations

import ast
import string
from typing import Any, Collection, Mapping

from simpleeval import EvalWithCompoundTypes

FUNCTIONS = {"min": min, "max": max, "abs": abs, "round": round, "len": len}
_CONSTANTS = {"True", "False", "None"}


class ExprError(ValueError):
    """An expression or template that cannot be used; the message says why.

    `key` is the rule option it came from (`when`, `summary.zh`), when known.
    """

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


class Expression:
    """A boolean condition over named values, parsed once."""

    def __init__(self, text: str, known: Collection[str]):
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExprError(f"invalid expression {text!r}: {exc.msg}") from None
        unknown = sorted(
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            - set(known) - set(FUNCTIONS) - _CONSTANTS)
        if unknown:
            raise ExprError(f"unknown name(s) {', '.join(unknown)} in {text!r}; known: "
                            f"{', '.join(sorted(known))}")
        private = sorted({n.attr for n in ast.walk(tree)
                          if isinstance(n, ast.Attribute) and n.attr.startswith("_")})
        if private:
            # simpleeval would refuse these at every evaluation; refuse them once, at load
            raise ExprError(f"attribute {private[0]!r} is not allowed in {text!r}")
        self._evaluator = EvalWithCompoundTypes(functions=FUNCTIONS, names={})
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

    def render(self, names: Mapping[str, Any]) -> str:
        try:
            return _FORMATTER.vformat(self.text, (), dict(names))
        except (KeyError, ValueError, TypeError, IndexError):
            # a value of an unexpected type for its format spec, or one the finding lacks:
            # show what there is plainly rather than lose the notification
            plain = _strs(names)
            for name in self._names - plain.keys():
                plain[name] = "?"
            return _FORMATTER.vformat(_strip_specs(self.text), (), plain)


def _strip_specs(text: str) -> str:
    out = []
    for literal, name, _spec, _conv in _FORMATTER.parse(text):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{" + name + "}")
    return "".join(out)


def _strs(names: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in names.items()}
