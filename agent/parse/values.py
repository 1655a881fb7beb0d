"""Convert raw log values to the canonical Event field types.

Each converter takes what the log held (a string, or a JSON number/bool/object) and returns
the canonical value, None for "absent", or raises ValueError when the value is unreadable; the
parser then keeps the raw value in ``extra`` rather than dropping the whole line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["CONVERTERS", "amount", "issue_date", "latency_ms", "level", "plain", "status", "text"]

# Money is compared exactly downstream: plain decimal text is kept byte for byte ("1234.50").
_PLAIN_AMOUNT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII).fullmatch
# Written around amounts by Chinese business systems; none of it changes the value.
_AMOUNT_NOISE = str.maketrans("", "", ",，¥￥$元 \u3000")
# A year: anything longer is a wrong unit or garbage, and values near the float limit would
# make a window's sum (and so its average) infinite.
MAX_LATENCY_MS = 365 * 86400 * 1000.0
_LATENCY = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s]*)").fullmatch
_LATENCY_UNITS = {
    "": 1.0,
    "ms": 1.0,
    "毫秒": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "秒": 1000.0,
    "us": 0.001,
    "µs": 0.001,
    "μs": 0.001,
    "ns": 0.000001,
    "min": 60000.0,
    "mins": 60000.0,
    "minute": 60000.0,
    "minutes": 60000.0,
    "分钟": 60000.0,
}
# One spelling per level, so rules can say `level == "error"` for every source.
_LEVEL_ALIASES = {
    "warn": "warning",
    "err": "error",
    "crit": "critical",
    "fatal": "critical",
    "emerg": "emergency",
    "panic": "emergency",
    "information": "info",
}
_DATE_ONLY = re.compile(
    r"(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d\d)(\d\d))", re.ASCII
).fullmatch


def plain(value: Any) -> Any:
    """Make a decoded JSON value safe to serialise again (Decimal -> int or float)."""
    kind = type(value)
    if kind is Decimal:
        return float(value)
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    return value


def word(value: Any) -> str:
    """The text form of a value, as used for value-word lookup (JSON true -> "true")."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is dict or kind is list:
        return json.dumps(plain(value), ensure_ascii=False, sort_keys=True)
    return str(value)


def text(value: Any) -> str | None:
    """Free text (invoice number, taxpayer id, error code, host, message, event)."""
    result = (value if type(value) is str else word(value)).strip()
    return result or None


def status(value: Any) -> str | None:
    """Status words are lower-cased so ``OK`` and ``ok`` count as one status."""
    return (value if type(value) is str else word(value)).strip().lower() or None


def level(value: Any) -> str | None:
    """Lower-cased, with syslog and logging spellings folded (``WARN``, ``err`` -> ...)."""
    result = (value if type(value) is str else word(value)).strip().lower()
    return _LEVEL_ALIASES.get(result, result) or None


def amount(value: Any) -> str | None:
    """Decimal text, never a float: ``"1234.50"`` stays ``"1234.50"``; ``"¥1,234.50"`` too."""
    kind = type(value)
    if kind is str:
        stripped = value.strip()
        # Cheaper than the regex for the usual "1234.50"; both refuse non-ASCII digits.
        if stripped.replace(".", "", 1).isdigit() and stripped.isascii():
            return stripped
        if _PLAIN_AMOUNT(stripped):
            return stripped
        if not stripped:
            return None
        cleaned = stripped.translate(_AMOUNT_NOISE).removeprefix("CNY").removeprefix("RMB")
        if _PLAIN_AMOUNT(cleaned):
            return cleaned
        try:
            number = Decimal(cleaned)  # accepts full-width digits and exponents
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
    elif kind is int:
        return str(value)
    elif kind is Decimal or kind is float:
        number = Decimal(value) if kind is Decimal else Decimal(repr(value))
    else:
        raise ValueError(f"not an amount: {value!r}")
    if not number.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return str(number)


def latency_ms(value: Any) -> float | None:
    """Milliseconds; strings may carry a unit (``"120ms"``, ``"1.2s"``, ``"3秒"``)."""
    kind = type(value)
    if kind is int or kind is float or kind is Decimal:
        try:
            result = float(value)
        except OverflowError:  # an int beyond the float range (too long to repr, too)
            raise ValueError("not a duration: a number beyond the float range") from None
    elif kind is str:
        stripped = value.strip()
        if not stripped:
            return None
        result = _duration(stripped)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not 0 <= result <= MAX_LATENCY_MS:  # also false for nan
        reason = "more than a year" if result > MAX_LATENCY_MS else "not a duration"
        raise ValueError(f"{reason}: {value!r}")
    return result


def _duration(text: str) -> float:
    number, scale = text, 1.0
    # Bare numbers and "120ms" are nearly all real logs write: skip the regex for them.
    if text[-2:] == "ms":
        number = text[:-2]
    elif not text[-1].isdigit():
        match = _LATENCY(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r}")
        number, unit = match.groups()
        found = _LATENCY_UNITS.get(unit) or _LATENCY_UNITS.get(unit.lower())
        if found is None:
            raise ValueError(f"unknown duration unit in {text!r}")
        scale = found
    return float(number) * scale


def issue_date(value: Any) -> str | None:
    """Dates are written ``YYYY-MM-DD`` whatever the source wrote (``2026/11/2``,
    ``20261102``, ``2026年11月2日``) so stages can be compared; anything else is kept as written."""
    result = text(value)
    if result is None:
        return None
    match = _DATE_ONLY(result)
    if match is None:
        return result
    year, month, day, month8, day8 = match.groups()
    try:
        return date(int(year), int(month or month8), int(day or day8)).isoformat()
    except ValueError:
        return result


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "event": text,
    "invoice_no": text,
    "amount": amount,
    "issue_date": issue_date,
    "taxpayer_id": text,
    "status": status,
    "latency_ms": latency_ms,
    "error_code": text,
    "level": level,
    "host": text,
    "message": text,
}
