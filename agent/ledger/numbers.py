"""Invoice numbers and taxpayer ids: what a well-formed one looks like.

Pure functions; a malformed value is a finding (`incomplete`), never an exception. Two kinds of
fapiao are numbered differently:
- all-electronic invoices (全电/数电发票): a 20-digit number, unique on its own;
- legacy invoices: an 8-digit number that is unique only with its 10- or 12-digit invoice
  code (发票代码). Their ledger key is `CODE-NUMBER`.
A taxpayer id is the 18-character unified social credit code (统一社会信用代码) whose last
character is a check character computed as GB 32100-2015 specifies.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_ELECTRONIC = re.compile(r"\d{20}", re.ASCII).fullmatch
_LEGACY_NO = re.compile(r"\d{8}", re.ASCII).fullmatch
_LEGACY_CODE = re.compile(r"\d{10}|\d{12}", re.ASCII).fullmatch
# a legacy invoice written as one text: code and number with a separator (without one, 12 + 8
# digits could not be told from an all-electronic number)
_LEGACY_JOINED = re.compile(r"(\d{10}|\d{12})[-:/ _](\d{8})", re.ASCII).fullmatch

# GB 32100-2015: 31 characters (no I, O, S, V, Z); weights 3^(i-1) mod 31
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARS)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def invoice_key(number: str, code: str | None = None, check: bool = True
                ) -> tuple[str | None, str]:
    """(the ledger key, "") for a well-formed invoice number, else (None, why).

    `code` is the legacy invoice code when the log gives it in its own field. With `check`
    False any non-empty number is its own key (for systems with other numbering).
    """
    no = number.strip()
    if not no:
        return None, "no invoice number"
    code = (code or "").strip() or None
    if not check:
        return (f"{code}-{no}" if code else no), ""
    if code is None:
        if _ELECTRONIC(no):
            return no, ""
        joined = _LEGACY_JOINED(no)
        if joined:
            return f"{joined.group(1)}-{joined.group(2)}", ""
        if _LEGACY_NO(no):
            return None, f"invoice number {no!r}: an 8-digit legacy number without its code"
        return None, (f"invoice number {_short(no)}: expected 20 digits (all-electronic) or "
                      f"a legacy code and 8-digit number")
    if not _LEGACY_CODE(code):
        return None, f"invoice code {_short(code)}: expected 10 or 12 digits"
    if not _LEGACY_NO(no):
        return None, f"invoice number {_short(no)} with code {code}: expected 8 digits"
    return f"{code}-{no}", ""


def uscc_check_char(first17: str) -> str:
    """The check character of a unified social credit code's first 17 characters."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


@lru_cache(maxsize=8192)  # a few thousand taxpayers issue most invoices: check each once
def taxpayer_problem(tid: str) -> str:
    """Why `tid` is not a valid unified social credit code; "" when it is."""
    if len(tid) != 18:
        return f"taxpayer id {_short(tid)}: expected 18 characters, got {len(tid)}"
    bad = sorted({c for c in tid if c not in _USCC_VALUE})
    if bad:
        return (f"taxpayer id {tid!r}: character(s) {''.join(bad)!r} cannot occur in a "
                "unified social credit code")
    if not tid[2:8].isdigit():
        return f"taxpayer id {tid!r}: characters 3-8 must be the region's digits"
    want = uscc_check_char(tid[:17])
    if tid[17] != want:
        return f"taxpayer id {tid!r}: check character is {tid[17]!r}, expected {want!r}"
    return ""


def _short(text: str) -> str:
    # a garbage value can be a whole line: findings and alerts show the start of it
    return repr(text if len(text) <= 40 else text[:40] + "…")


def same_value(field: str, a: str, b: str) -> bool:
    """Amounts compare as numbers ("1234.5" is "1234.50"); other fields as written."""
    if field == "amount":
        if a == b and "a" not in a and "A" not in a:  # the same text (not NaN, unequal to
            return True                                # itself as a number): the same amount
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            return a == b
    return a == b
