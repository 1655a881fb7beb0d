"""`invoice-agent invoices ...` and `invoice-agent reconcile`: the ledger, for finance.

    invoice-agent invoices missing|late|mismatched|stuck|duplicates|incomplete
                  [--since WHEN] [--json|--csv] [-o FILE]
    invoice-agent invoices show NO
    invoice-agent reconcile --issued A.csv --synced B.csv [--key COLUMN] [--column F=COL]

Lists exit 1 when they list anything (0 when empty), like `replay` with alerts; `reconcile`
exits 1 when the files differ; 2 is a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

LISTS = {
    "missing": ("invoices past a missing rule's deadline, not yet at its `to` stage",
                "Invoices a `missing` rule waits on past its deadline (at stage `from`, not at "
                "`to`), oldest first, with amount, issue date and the stages reached."),
    "late": ("invoices that reached the next stage after the deadline",
             "Invoices that arrived at a `missing` rule's `to` stage after its deadline, with "
             "how late."),
    "mismatched": ("invoices whose amount or date differ between stages",
                   "Invoices whose compared fields (ledger.compare) disagree between two "
                   "stages, with both values."),
    "stuck": ("invoices whose status stays pending too long",
              "Invoices a `stuck` rule found pending (待处理/待更新/未处理) past its deadline."),
    "duplicates": ("invoices that reached a stage twice with other contents",
                   "Invoices that reached a stage again with other amount, date or taxpayer."),
    "incomplete": ("events with missing or malformed invoice fields",
                   "Ledger events without required fields, or with a malformed invoice "
                   "number, taxpayer id, amount or date."),
}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d)\s*$")


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `invoices` and `reconcile` to the command line."""
    p = sub.add_parser("invoices", parents=[common],
                       help="list missing, late, mismatched or stuck invoices; show one",
                       description="The invoice ledger's lists, to hand to finance (CSV that "
                                   "Excel opens with Chinese intact), and one invoice's stages.")
    isub = p.add_subparsers(dest="invoices_command", metavar="LIST", required=True)
    for name, (short, long) in LISTS.items():
        q = isub.add_parser(name, parents=[common], help=short, description=long)
        config_arg(q)
        q.add_argument("--since", metavar="WHEN",
                       help="only those since WHEN: back from now (30m, 2h, 7d) or a date or "
                            "time (2026-11-01, 2026-11-01T08:00), in the config's time zone")
        fmt = q.add_mutually_exclusive_group()
        fmt.add_argument("--json", action="store_true", help="a JSON array (for scripts)")
        fmt.add_argument("--csv", action="store_true",
                         help="CSV for Excel: UTF-8 with a byte-order mark, long numbers kept")
        q.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
        q.add_argument("--language", choices=["zh", "en"],
                       help="CSV and table headers (default: the config's notify.language)")
        q.set_defaults(func=cmd_list, list_kind=name)
    q = isub.add_parser("show", parents=[common], help="every stage of one invoice",
                        description="One invoice from the ledger: each stage with its time and "
                                    "fields, what rules wait for, what was found.")
    config_arg(q)
    q.add_argument("number", metavar="NO",
                   help="the invoice number (20 digits; legacy invoices CODE-NUMBER)")
    q.add_argument("--json", action="store_true", help="a JSON object (for scripts)")
    q.set_defaults(func=cmd_show)

    r = sub.add_parser("reconcile", parents=[common],
                       help="compare a platform export with an ERP export",
                       description="Compare two exported invoice lists (CSV in UTF-8, GBK or "
                                   "UTF-16, any common separator): print what is missing on "
                                   "each side and what differs. Exit 1 when anything does.")
    r.add_argument("--issued", required=True, metavar="FILE",
                   help="the platform's export (invoices issued)")
    r.add_argument("--synced", required=True, metavar="FILE",
                   help="the ERP's export (invoices in the books)")
    r.add_argument("--key", metavar="COLUMN", help="the invoice number column in both files")
    r.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                   help="a column name for a field (code, amount, issue_date, taxpayer_id); "
                        "may be repeated")
    r.add_argument("--compare", metavar="FIELDS",
                   help="fields to compare, comma-separated (default: ledger.compare, else "
                        "amount,issue_date)")
    r.add_argument("-c", "--config", metavar="FILE",
                   help="an agent config whose ledger.columns and ledger.compare apply")
    r.add_argument("--json", action="store_true", help="a JSON object (for scripts)")
    r.set_defaults(func=cmd_reconcile)


# -- invoices ----------------------------------------------------------------------------------
def parse_since(text: str | None, zone: ZoneInfo, now: datetime | None = None) -> float | None:
    """Seconds since the epoch for --since; ValueError when it reads as neither form."""
    if not text:
        return None
    m = _SINCE.match(text)
    if m:
        unit = {"m": 60, "h": 3600, "d": 86400}[m.group(2)]
        now = now or datetime.now(zone)
        return (now - timedelta(seconds=float(m.group(1)) * unit)).timestamp()
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected 30m, 2h, 7d or a date such as "
                         "2026-11-01") from None
    return (when if when.tzinfo else when.replace(tzinfo=zone)).timestamp()


def _open(config: str) -> tuple[Any, Any, ZoneInfo] | int:
    """(loaded config, store or None, zone), or an exit code after saying why."""
    from agent.config import load_config
    from agent.store import DB_NAME, Store

    loaded = load_config(config)
    if loaded.config.ledger is None:
        print(f"invoice-agent: {config} has no `ledger:` section (README: Invoice ledger)",
              file=sys.stderr)
        return EXIT_USAGE
    zone = ZoneInfo(loaded.config.timezone)
    db = loaded.state_dir / DB_NAME
    store = Store(db, readonly=True) if db.is_file() else None
    if store is not None and not store.db.table("ledger_invoices").exists():
        store.close()  # a state from before the ledger: the daemon adds its tables at start
        store = None
    if store is None:
        print(f"no ledger yet: the agent has not run with {config}", file=sys.stderr)
    return loaded, store, zone


def cmd_list(args: argparse.Namespace) -> int:
    from agent.ledger import export
    from agent.ledger.lists import COLUMNS, HEADERS_ZH, Lister

    opened = _open(args.config)
    if isinstance(opened, int):
        return opened
    loaded, store, zone = opened
    try:
        since = parse_since(args.since, zone)
    except ValueError as exc:
        print(f"invoice-agent invoices: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows: list[dict[str, Any]] = []
    if store is not None:
        try:
            rows = Lister(store.invoices, zone, list(loaded.config.ledger.stages)).rows(
                args.list_kind, since)
        finally:
            store.close()
    columns = COLUMNS[args.list_kind]
    language = args.language or loaded.config.notify.language
    headers = HEADERS_ZH if language == "zh" else None
    if args.csv:
        data = export.to_csv(columns, rows, headers)
    elif args.json:
        data = (export.to_json(rows) + "\n").encode("utf-8")
    else:
        data = None
    if args.output:
        if data is None:
            data = export.to_csv(columns, rows, headers)  # a file for finance: Excel's CSV
        Path(args.output).write_bytes(data)
        print(f"{len(rows)} invoice(s) written to {args.output}", file=sys.stderr)
    elif data is not None:
        export.write_bytes(data, sys.stdout.buffer)
    else:
        export.table(columns, rows, sys.stdout, headers)
        print(f"{len(rows)} {args.list_kind}", file=sys.stderr)
    return EXIT_FINDINGS if rows else EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from agent.ledger.lists import Lister
    from agent.ledger.numbers import invoice_key

    opened = _open(args.config)
    if isinstance(opened, int):
        return opened
    loaded, store, zone = opened
    key = invoice_key(args.number)[0] or args.number.strip()
    found = None
    if store is not None:
        try:
            found = Lister(store.invoices, zone, list(loaded.config.ledger.stages)).show(key)
        finally:
            store.close()
    if found is None:
        print(f"invoice {args.number} is not in the ledger", file=sys.stderr)
        return EXIT_FINDINGS
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        _print_invoice(found, sys.stdout)
    return EXIT_OK


def _print_invoice(d: dict[str, Any], out: TextIO) -> None:
    from agent.ledger import export

    out.write(f"invoice {d['invoice_no']}  status {d['status'] or '-'}  first seen "
              f"{d['first_seen']}  complete {d['complete'] or 'not yet'}\n\n")
    export.table(["stage", "time", "amount", "issue_date", "taxpayer_id", "status", "where",
                  "times"], d["stages"], out)
    for w in d["waits"]:
        state = "OVERDUE" if w["overdue"] else "pending"
        out.write(f"\n{w['rule']} ({w['kind']}): {state}, since {w['since']}, due {w['due']}")
    for f in d["findings"]:
        detail = {k: v for k, v in f.items() if k not in ("kind", "rule", "found")}
        out.write(f"\n{f['found']} {f['kind']} {f['rule']} "
                  f"{json.dumps(detail, ensure_ascii=False)}")
    out.write("\n")


# -- reconcile ---------------------------------------------------------------------------------
def cmd_reconcile(args: argparse.Namespace) -> int:
    from agent.ledger.reconcile import (
        COMPARABLE,
        DEFAULT_COLUMNS,
        ReconcileError,
        compare,
        read_table,
    )

    names = {f: list(v) for f, v in DEFAULT_COLUMNS.items()}
    fields: list[str] = ["amount", "issue_date"]
    if args.config:
        from agent.config import load_config

        ledger = load_config(args.config).config.ledger
        if ledger is not None:
            for f, given in ledger.columns.model_dump().items():
                names[f] = list(given) + names[f]
            fields = list(ledger.compare)
    try:
        for spec in ([f"invoice_no={args.key}"] if args.key else []) + list(args.column):
            f, sep, column = spec.partition("=")
            if not sep or f.strip() not in names or not column.strip():
                raise ReconcileError(f"--column {spec!r}: expected FIELD=COLUMN with FIELD one "
                                     f"of {', '.join(names)}")
            names[f.strip()] = [column.strip()]
        if args.compare:
            fields = [f.strip() for f in args.compare.split(",") if f.strip()]
            bad = [f for f in fields if f not in COMPARABLE]
            if bad:
                raise ReconcileError(f"--compare: unknown field(s) {', '.join(bad)}; expected "
                                     f"some of {', '.join(COMPARABLE)}")
        a, b = read_table(args.issued, names), read_table(args.synced, names)
    except ReconcileError as exc:
        print(f"invoice-agent reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = compare(a, b, fields)
    problems = [f"{a.path}: {p}" for p in a.problems] + [f"{b.path}: {p}" for p in b.problems]
    dupes = [f"{a.path}: {k}" for k in a.duplicates] + [f"{b.path}: {k}" for k in b.duplicates]
    if args.json:
        print(json.dumps({"issued": {"file": a.path, "invoices": len(a.rows)},
                          "synced": {"file": b.path, "invoices": len(b.rows)},
                          "only_issued": result.only_a, "only_synced": result.only_b,
                          "differ": [{"invoice_no": k, "field": f, "issued": va, "synced": vb}
                                     for k, f, va, vb in result.differ],
                          "unreadable": problems, "duplicates": dupes},
                         ensure_ascii=False, indent=2))
    else:
        _print_reconcile(a, b, result, problems, dupes, sys.stdout)
    clean = result.clean() and not problems and not dupes
    return EXIT_OK if clean else EXIT_FINDINGS


def _print_reconcile(a: Any, b: Any, result: Any, problems: list[str], dupes: list[str],
                     out: TextIO) -> None:
    for label, t in (("issued", a), ("synced", b)):
        out.write(f"{label}: {t.path}: {len(t.rows)} invoices (columns: "
                  f"{', '.join(f'{k}={v}' for k, v in t.columns.items())})\n")
    sections = [
        (f"issued, not in {Path(b.path).name}", result.only_a),
        (f"in {Path(b.path).name}, not issued ({Path(a.path).name})", result.only_b),
        ("differ", [f"{k}  {f}: issued {va} / synced {vb}" for k, f, va, vb in result.differ]),
        ("unreadable rows", problems), ("on more than one row", dupes)]
    total = 0
    for title, items in sections:
        total += len(items)
        if items:
            out.write(f"\n{title} ({len(items)}):\n")
            out.writelines(f"  {item}\n" for item in items)
    out.write(f"\n{'no difference' if not total else f'{total} difference(s)'}\n")
