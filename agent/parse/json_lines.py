"""JSON lines: one object per line, fields picked by key (dotted keys reach into objects)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from agent.parse.base import Parser

__all__ = ["JsonParser"]

_JSON_TYPES = {
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    Decimal: "number",
    bool: "boolean",
    type(None): "null",
}

# Decimal keeps "amount": 1234.50 as 1234.50 (a float would print 1234.5). It is only called
# for numbers with a fraction or exponent, costing ~0.1 us each (measured); strict=False accepts
# raw tabs and control characters inside strings, which real logs contain.
_DECODER = json.JSONDecoder(parse_float=Decimal, strict=False)
_DECODE = _DECODER.decode
# The C scanner behind decode(), minus decode()'s Python-level whitespace handling (~0.3 us).
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__
# msgspec's decoder, with the same Decimal numbers, reads a line about four times faster. What it
# refuses (raw control characters and lone surrogates in strings, NaN) goes to the decoder
# above, which accepts those and says precisely why it refuses the rest: a record is the same
# whichever decoder read it (tests/test_fuzz_json_decode.py compares them).
_FAST = msgspec.json.Decoder(float_hook=Decimal).decode
_FAST_FAILS = (msgspec.DecodeError, RecursionError, ValueError)


class JsonParser(Parser):
    """Reads lines like ``{"time": "2026-11-02 09:00:03", "fphm": "2431...", "cost": 230}``."""

    float_hook = Decimal  # how numbers with a fraction or exponent are read

    def _record(self, text: str) -> Mapping[str, Any] | str:
        if text[:1] == "{":
            try:
                record = _FAST(text)
            except _FAST_FAILS:
                pass
            else:
                if type(record) is dict:
                    return record
            try:
                record, end = _SCAN(text, 0)
            except (ValueError, StopIteration, RecursionError):
                pass  # decode() below says precisely what is wrong
            else:
                if end == len(text) or text[end:].isspace():
                    return record
        try:
            record = _DECODE(text)
        except json.JSONDecodeError as exc:
            if not text.strip():
                return "not JSON: empty line"
            return f"not JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
        except RecursionError:
            return "not JSON: nested too deeply"
        except ValueError as exc:  # e.g. an integer with more than 4300 digits
            return f"not JSON: {exc}"
        if type(record) is not dict:
            return f"JSON is not an object (got {_JSON_TYPES.get(type(record), 'other')})"
        return record
