"""Texts a regular expression cannot match without: a cheap first look before the regex runs.

Most log lines match none of a source's `pattern` rules. `Out of memory: Killed
process|invoked oom-killer` cannot match a message that contains neither of those two texts,
and `text in message` is a C substring search, many times cheaper than running the expression
(in the `regex` package, with its time limit). So each rule's expression is read once for the
literal runs every match must contain (one per alternative of a top-level `|`), and the
expression runs only on messages containing one of them. A message that contains one may still
not match: the filter only skips messages that certainly do not, so decisions are those of the
expression alone (tests/test_pattern_prefilter.py checks both agree on many messages).

The expression is read with Python's own parser (`re._parser`), whose syntax the `regex`
package extends; an expression it cannot read (`\\p{Han}`, `(?V1)`), or with an alternative
without a literal run of MIN_LITERAL characters, gets no filter and runs on every message.
Case-insensitive expressions compare lower-cased ASCII literals with a lower-cased ASCII
message; a message with other characters runs the expression (Unicode case folding has pairs,
such as `ſ` and `s`, that a lower-cased substring test would miss).
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Iterator
from typing import Any, NamedTuple

MIN_LITERAL = 3  # shorter runs ("x", ": ") are in too many messages to skip any

_BREAK = object()


class Literals(NamedTuple):
    """One of `texts` is in every message the expression matches (lower-cased with `folded`)."""

    texts: tuple[str, ...]
    folded: bool

    def may_match(self, text: str) -> bool:
        """False only if the expression certainly does not match `text`."""
        if self.folded:
            if not text.isascii():
                return True
            text = text.lower()
        for literal in self.texts:
            if literal in text:
                return True
        return False


def required_literals(pattern: str) -> Literals | None:
    """The texts one of which every match of `pattern` contains, or None (no filter)."""
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError, TypeError):
        return None
    flags = tree.state.flags
    folded = bool(flags & re.IGNORECASE)
    items = list(tree)
    alternatives = [items]
    if len(items) == 1 and items[0][0] is sre_constants.BRANCH:
        alternatives = list(items[0][1][1])
    texts = []
    for alternative in alternatives:
        best = max(_runs(alternative), key=len, default="")
        if len(best) < MIN_LITERAL or (folded and not best.isascii()):
            return None
        texts.append(best.lower() if folded else best)
    return Literals(tuple(dict.fromkeys(texts)), folded)


def _runs(items: list[Any]) -> Iterator[str]:
    """The runs of consecutive required literal characters of one alternative."""
    run: list[str] = []
    for node in _flat(items):
        if node is _BREAK:
            if run:
                yield "".join(run)
                run = []
        else:
            run.append(node)
    if run:
        yield "".join(run)


def _flat(items: list[Any]) -> Iterator[Any]:
    """Literal characters in order, with groups that change no flag opened in place (a group
    consumes nothing of its own); _BREAK for everything else (a class, a repeat, a branch,
    an assertion: what it matches is not one fixed text)."""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            yield chr(arg)
        elif op is sre_constants.SUBPATTERN and arg[1] == 0 and arg[2] == 0:
            yield from _flat(list(arg[3]))
        else:
            yield _BREAK
