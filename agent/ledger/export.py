"""Lists of invoices as a terminal table, JSON, or CSV that Excel opens intact.

Excel reads a CSV file in the system's ANSI code page unless it starts with a UTF-8 byte-order
mark: with the mark, 发票号码 and 金额 show as written. Excel also turns a long digit string
into a number (a 20-digit invoice number becomes 2.64424E+19, its last digits lost): such cells
are written as the text formula ="26442421750640306006", which Excel shows as the number
written. JSON output is for scripts and carries plain values.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence
from typing import Any, BinaryIO, TextIO

BOM = "\ufeff"


def to_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]],
           headers: dict[str, str] | None = None) -> bytes:
    """UTF-8 with a byte-order mark, CRLF line ends (what Excel expects)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([(headers or {}).get(c, c) for c in columns])
    for row in rows:
        writer.writerow([_excel(row.get(c)) for c in columns])
    return (BOM + buf.getvalue()).encode("utf-8")


def _excel(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and len(value) >= 12 and value.replace("-", "").isdigit():
        return f'="{value}"'  # Excel would round it to 15 significant digits
    return value


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2)


def width(text: str) -> int:
    """Terminal columns: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(columns: Sequence[str], rows: Sequence[dict[str, Any]], out: TextIO,
          headers: dict[str, str] | None = None, max_cell: int = 60) -> None:
    """An aligned plain-text table."""
    names = [(headers or {}).get(c, c) for c in columns]
    cells = [[_cell(row.get(c), max_cell) for c in columns] for row in rows]
    widths = [max([width(n)] + [width(r[i]) for r in cells]) for i, n in enumerate(names)]
    for line in [names] + cells:
        out.write("  ".join(v + " " * (w - width(v)) for v, w in zip(line, widths, strict=True))
                  .rstrip() + "\n")


def _cell(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def write_bytes(data: bytes, out: BinaryIO) -> None:
    out.write(data)
    out.flush()
