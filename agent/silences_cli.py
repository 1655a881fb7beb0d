"""`invoice-agent silence add|list|expire`: operators' silences, stored in the agent's SQLite.

    invoice-agent silence add --rule upload_latency --label source=upload --for 2h \\
                              --comment "platform maintenance, ticket 4711"
    invoice-agent silence list [--all] [--json]
    invoice-agent silence expire ID

A running daemon honours a change at its next batch (within about a second): matching alerts
are still tracked, and shown by `status`, but not notified; one still firing when the silence
ends is notified then. Exit codes: 0 ok, 1 nothing to expire, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("silence", parents=[common],
                       help="mute alerts for a while (planned work, a known problem)",
                       description="Silences mute the notifications of matching alerts for a "
                                   "while; they are stored in the agent's state and a running "
                                   "daemon honours a change within a second.")
    ssub = p.add_subparsers(dest="silence_command", required=True, metavar="COMMAND")
    a = ssub.add_parser("add", parents=[common], help="add a silence",
                        description="Mute the alerts whose rule and labels match every "
                                    "matcher given, from now (or --start) for --for.")
    config_arg(a)
    a.add_argument("--rule", help="the rule's name")
    a.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="a label the alert must carry (repeatable): source=upload, host=erp1")
    a.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                   help="how long: 30m, 2h, 1d")
    a.add_argument("--start", metavar="TIME",
                   help="begin later: 2026-12-01 22:00 (config timezone unless an offset is given)")
    a.add_argument("--comment", required=True, help="why: shown beside the muted alerts")
    a.add_argument("--author", default=None, help="who (default: your login name)")
    a.set_defaults(func=cmd_add)
    ls = ssub.add_parser("list", parents=[common], help="silences running now or planned",
                         description="List the silences running now or planned (with --all "
                                     "also the ended ones still stored).")
    config_arg(ls)
    ls.add_argument("--all", action="store_true", help="also the ended ones still stored")
    ls.add_argument("--json", action="store_true", help="one JSON document for scripts")
    ls.set_defaults(func=cmd_list)
    e = ssub.add_parser("expire", parents=[common], help="end a silence now",
                        description="End a silence now: alerts it muted that still fire are "
                                    "notified at their group's next message.")
    config_arg(e)
    e.add_argument("id", help="the silence's id, from `silence list`")
    e.set_defaults(func=cmd_expire)


def _open(config_path: str) -> tuple[Any, ZoneInfo]:
    from agent.config import load_config
    from agent.store import DB_NAME, Store

    loaded = load_config(config_path)
    return Store(loaded.state_dir / DB_NAME), ZoneInfo(loaded.config.timezone)


def _matchers(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    if args.rule:
        out["rule"] = args.rule
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--label {item!r}: expected KEY=VALUE, e.g. source=upload")
        out[key.strip()] = value.strip()
    if not out:
        raise ValueError("give --rule and/or --label: a silence of everything is not allowed")
    return out


def _when(text: str, zone: ZoneInfo) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text!r}: expected a time like 2026-12-01 22:00") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=zone)


def cmd_add(args: argparse.Namespace) -> int:
    from agent.configtypes import parse_duration

    try:
        matchers = _matchers(args)
        length = parse_duration(args.duration)
        if length <= timedelta(0):
            raise ValueError(f"--for {args.duration!r}: expected a positive duration")
    except ValueError as exc:
        print(f"invoice-agent silence add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store, zone = _open(args.config)
    try:
        now = datetime.now(zone)
        start = _when(args.start, zone) if args.start else now
        s = store.silences.add(matchers, start, start + length, args.comment,
                               args.author or getpass.getuser(), now)
    except ValueError as exc:
        print(f"invoice-agent silence add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    print(f"silence {s.id}: {_describe(s.matchers)} until "
          f"{s.ends_at.astimezone(zone):%Y-%m-%d %H:%M %z} ({args.comment})")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    store, zone = _open(args.config)  # a config problem is reported by the CLI (exit 2)
    try:
        now = datetime.now(zone)
        found = store.silences.all() if args.all else store.silences.current(now)
    finally:
        store.close()
    rows = [silence_json(s, now, zone) for s in found]
    if args.json:
        json.dump({"silences": rows}, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return EXIT_OK
    if not rows:
        print("no silence" + ("" if args.all else " running or planned"))
    for r in rows:
        print(f"{r['id']}  {r['state']:<7} {r['starts_at'][:16]} -> {r['ends_at'][:16]}  "
              f"{_describe(r['matchers'])}  by {r['created_by']}: {r['comment']}")
    return EXIT_OK


def cmd_expire(args: argparse.Namespace) -> int:
    store, zone = _open(args.config)
    try:
        s = store.silences.expire(args.id, datetime.now(zone))
    finally:
        store.close()
    if s is None:
        print(f"invoice-agent silence expire: no silence {args.id!r} running or planned "
              f"(see `invoice-agent silence list`)", file=sys.stderr)
        return EXIT_NOTHING
    print(f"silence {s.id} expired: {_describe(s.matchers)}")
    return EXIT_OK


def silence_json(s: Any, now: datetime, zone: ZoneInfo) -> dict[str, Any]:
    """A silence as `silence list --json` and `status` show it."""
    state = "active" if s.active(now) else ("planned" if s.starts_at > now else "ended")
    return {"id": s.id, "state": state, "matchers": dict(s.matchers),
            "starts_at": s.starts_at.astimezone(zone).isoformat(timespec="seconds"),
            "ends_at": s.ends_at.astimezone(zone).isoformat(timespec="seconds"),
            "comment": s.comment, "created_by": s.created_by}


def _describe(matchers: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(matchers.items()))
