"""`invoice-agent reconcile`: compare two exported invoice lists (the platform's, the ERP's).

Exports come as CSV in UTF-8 (with or without a byte-order mark), GBK/GB18030, or UTF-16
(Excel's "Unicode text"), separated by commas, tabs or semicolons. Columns are found by name:
the defaults know the usual Chinese and pinyin headers, `ledger.columns` in the config and the
command's options add more. Amounts compare as numbers, dates whatever way they are written.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.ledger.numbers import invoice_key, same_value
from agent.parse.values import amount as to_amount
from agent.parse.values import issue_date as to_date

# the headers each field is found by, in order of preference
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "invoice_no": ["invoice_no", "发票号码", "数电票号码", "全电发票号码", "发票号", "fphm"],
    "code": ["code", "invoice_code", "发票代码", "fpdm"],
    "amount": ["amount", "价税合计", "金额", "合计金额", "含税金额", "jshj", "je"],
    "issue_date": ["issue_date", "开票日期", "开票时间", "kprq"],
    "taxpayer_id": ["taxpayer_id", "销方识别号", "销售方纳税人识别号", "纳税人识别号", "nsrsbh"],
}
COMPARABLE = ("amount", "issue_date", "taxpayer_id")
_SCIENTIFIC = re.compile(r"\d(\.\d+)?[eE]\+?\d+").fullmatch
MAX_SIZE = 512 * 1024 * 1024  # an export bigger than this is not an invoice list


class ReconcileError(ValueError):
    """A file that cannot be compared (unreadable, no invoice number column): a usage error."""


@dataclass
class Table:
    path: str
    columns: dict[str, str]  # field -> the header it was read from
    rows: dict[str, dict[str, str | None]] = field(default_factory=dict)  # key -> values
    lines: dict[str, int] = field(default_factory=dict)  # key -> line of its first row
    problems: list[str] = field(default_factory=list)  # rows that could not be read
    duplicates: list[str] = field(default_factory=list)  # keys on more than one row


@dataclass
class Comparison:
    only_a: list[str]
    only_b: list[str]
    differ: list[tuple[str, str, str | None, str | None]]  # (key, field, a, b)

    def clean(self) -> bool:
        return not (self.only_a or self.only_b or self.differ)


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 with its BOM, else GB18030 (a superset of GBK)."""
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def read_table(path: str | Path, names: Mapping[str, Sequence[str]]) -> Table:
    """Read one export; `names` maps each field to the headers to look for."""
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xls"):
        raise ReconcileError(f"{p}: Excel workbooks are not read; save the sheet as CSV "
                             "(UTF-8) in Excel and compare that")
    try:
        if p.stat().st_size > MAX_SIZE:
            raise ReconcileError(f"{p}: larger than {MAX_SIZE >> 20} MiB")
        text = decode(p.read_bytes())
    except OSError as exc:
        raise ReconcileError(f"{p}: {exc.strerror or exc}") from None
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], ",\t;|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
    columns = _columns(header, names)
    if "invoice_no" not in columns:
        raise ReconcileError(
            f"{p}: no invoice number column; expected one of: "
            f"{', '.join(names['invoice_no'])} (the header has: {', '.join(header) or 'nothing'})"
            "; name it with --key COLUMN")
    table = Table(str(p), columns)
    index = {h: i for i, h in enumerate(header)}
    for line, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        values = {f: _text(row, index[col]) for f, col in columns.items()}
        _add(table, values, line)
    return table


def _columns(header: list[str], names: Mapping[str, Sequence[str]]) -> dict[str, str]:
    folded = {h.casefold(): h for h in header}
    out = {}
    for name, candidates in names.items():
        for c in candidates:
            if c.casefold() in folded:
                out[name] = folded[c.casefold()]
                break
    return out


def _text(row: list[str], i: int) -> str | None:
    if i >= len(row):
        return None
    value = row[i].strip()
    if value.startswith('="') and value.endswith('"'):  # Excel's text formula
        value = value[2:-1]
    return value.lstrip("'\t") or None


def _add(table: Table, values: dict[str, str | None], line: int) -> None:
    number = values.pop("invoice_no") or ""
    code = values.pop("code", None)
    if _SCIENTIFIC(number):
        table.problems.append(f"line {line}: invoice number {number!r} was turned into a number "
                              "by Excel (format the column as text before saving)")
        return
    key, why = invoice_key(number, code)
    if key is None:
        table.problems.append(f"line {line}: {why}")
        return
    clean: dict[str, str | None] = {}
    for name, value in values.items():
        clean[name] = _normalize(name, value)
    if key in table.rows:
        table.duplicates.append(key)
        return
    table.rows[key] = clean
    table.lines[key] = line


def _normalize(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if name == "amount":
            return to_amount(value)
        if name == "issue_date":
            return to_date(value.split(" ")[0])  # "2026-11-02 09:15:00": the date part
    except ValueError:
        return value
    return value


def compare(a: Table, b: Table, fields: Sequence[str]) -> Comparison:
    """What is in one list and not the other, and what differs for invoices in both."""
    shared = [f for f in fields if f in a.columns and f in b.columns]
    differ: list[tuple[str, str, str | None, str | None]] = []
    for key, row in a.rows.items():
        other = b.rows.get(key)
        if other is None:
            continue
        for f in shared:
            va, vb = row.get(f), other.get(f)
            if va is not None and vb is not None and not same_value(f, va, vb):
                differ.append((key, f, va, vb))
            elif (va is None) != (vb is None):
                differ.append((key, f, va, vb))
    return Comparison([k for k in a.rows if k not in b.rows],
                      [k for k in b.rows if k not in a.rows], differ)
