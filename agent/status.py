"""`invoice-agent status`: what the agent's state says, read from its SQLite file.

Reading works while the daemon runs (WAL mode allows a second reader).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import load_config
from agent.store import DB_NAME, Store

_COUNTERS = ("lines", "unparsed", "truncated", "replaced", "late")


def collect(config_path: str) -> dict[str, Any]:
    loaded = load_config(config_path)
    db_path = loaded.state_dir / DB_NAME
    out: dict[str, Any] = {"config": str(loaded.path), "state": str(db_path), "sources": {},
                           "firing": [], "outbox": {"pending": 0, "sent": 0, "failed": 0},
                           "daemon": {"running": False}}
    for s in loaded.config.sources:
        out["sources"][s.name] = {"files": [], "samples": [], **{c: 0 for c in _COUNTERS}}
    out["maintenance"] = maintenance(loaded.config)
    live = ask_daemon(loaded.config.http) if loaded.config.http is not None else None
    if not Path(db_path).is_file():
        out["note"] = "no state yet: the agent has not run with this config"
        return out
    try:
        store = Store(db_path, readonly=True)
        _read_state(store, loaded, out)
    except sqlite3.DatabaseError as exc:
        # a damaged database: say so (the daemon moves it aside at its next start)
        out["note"] = (f"the state database cannot be read ({exc}); `invoice-agent run` "
                       f"moves it aside and starts a fresh one")
    if live is not None:  # the running daemon's own word (its counters count since it started;
        live.pop("counters", None)  # the state's count since the first start)
        out["daemon"] = live
    return out


def ask_daemon(http: Any, timeout: float = 2.0) -> dict[str, Any] | None:
    """The running daemon's /status (config `http:`), or None when it does not answer."""
    import json
    import urllib.request

    host, port = http.address()
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback http)
            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    started = data.get("started")
    if isinstance(started, (int, float)):
        data["started"] = datetime.fromtimestamp(started).astimezone().isoformat(
            timespec="seconds")
    data["via"] = url
    return data


def _read_state(store: Store, loaded: Any, out: dict[str, Any]) -> None:
    try:
        for name, counts in store.counters.all().items():
            out["sources"].setdefault(name, {"files": [], "samples": []}).update(counts)
        for name in list(out["sources"]):
            out["sources"][name]["files"] = [
                {"path": o.path, "offset": o.offset, "lines": o.line_no, "updated": o.updated}
                for o in store.offsets.of(name)]
        for name, samples in store.counters.samples().items():
            if name in out["sources"]:
                out["sources"][name]["samples"] = [
                    {"path": f.path, "line_no": f.line_no, "reason": f.reason, "text": f.text}
                    for f in samples]
        out["firing"] = [{"rule": a.rule, "severity": a.severity, "labels": dict(a.labels),
                          "fired_at": a.fired_at.isoformat() if a.fired_at else None,
                          "file": a.path, "line": a.line_no}
                         for a in store.alerts.states("firing")]
        out["outbox"] = store.outbox.summary()
        out["silences"] = _silences(store, loaded.config.timezone)
        if loaded.config.ledger is not None:
            out["ledger"] = _ledger(store)
        state = store.engine_state()
        router = (state.get("engine") or {}).get("router") or {}
        out["muted"] = list(router.get("muted") or [])  # what is held back now, and why
        out["messages"] = list(router.get("recent") or [])[-10:]  # the latest sent
        out["daemon"] = _daemon(state.get("daemon"))
        for name, extra in (state.get("sources") or {}).items():
            if name in out["sources"] and isinstance(extra, dict):
                out["sources"][name].update(extra)
    finally:
        store.close()


def _daemon(info: Any) -> dict[str, Any]:
    """Whether the daemon that last wrote this state is running, and since when."""
    if not isinstance(info, dict):
        return {"running": False}
    pid = info.get("pid")
    running = not info.get("stopped") and isinstance(pid, int) and _alive(pid)
    return {"running": running, "pid": pid, "started": info.get("started"),
            "stopped": info.get("stopped"), "config": info.get("config"),
            "rules": info.get("rules"), "reload_error": info.get("reload_error")}


def _ledger(store: Store) -> dict[str, Any]:
    try:
        return store.invoices.counts()
    except sqlite3.OperationalError:  # a state written before the ledger existed
        return {}


def maintenance(config: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each maintenance window: muting now (until when, grace included), or its next start
    within a week."""
    from agent.routing.mutes import Maintenance

    zone = ZoneInfo(config.timezone)
    now = now or datetime.now(zone)
    m = Maintenance(config.maintenance, config.timezone)
    active = dict(m.active(now))
    out = []
    for w, schedule in m.windows:
        item: dict[str, Any] = {"name": w.name, "active": w.name in active}
        if w.name in active:
            item["until"] = active[w.name].astimezone(zone).isoformat(timespec="minutes")
        else:
            t = now.replace(second=0, microsecond=0)
            for _ in range(7 * 24 * 12):  # 5-minute steps over a week
                t += timedelta(minutes=5)
                if schedule.contains(t):
                    item["next"] = t.astimezone(zone).isoformat(timespec="minutes")
                    break
        out.append(item)
    return out


def _silences(store: Store, timezone: str) -> list[dict[str, Any]]:
    """Silences running now or planned."""
    from agent.silences_cli import silence_json

    zone = ZoneInfo(timezone)
    now = datetime.now(zone)
    try:
        return [silence_json(s, now, zone) for s in store.silences.current(now)]
    except sqlite3.OperationalError:  # a state written before silences existed
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def format_status(data: dict[str, Any]) -> str:
    lines = [f"config {data['config']}", f"state  {data['state']}"]
    d = data.get("daemon", {})
    if d.get("running"):
        lines.append(f"daemon running (pid {d['pid']}) since {d['started']}, "
                     f"{d.get('rules')} rules from {d.get('config')}")
        if d.get("via"):
            lines.append(f"  (asked the daemon at {d['via']})")
        if d.get("reload_error"):
            lines.append(f"  an edit was refused, the previous config runs: {d['reload_error']}")
    elif d.get("stopped"):
        lines.append(f"daemon not running (stopped {d['stopped']})")
    else:
        lines.append("daemon not running")
    if "note" in data:
        lines.append(data["note"])
    for name, s in data["sources"].items():
        lines.append(f"source {name}: lines {s.get('lines', 0)} unparsed {s.get('unparsed', 0)} "
                     f"truncated {s.get('truncated', 0)} undecodable {s.get('replaced', 0)} "
                     f"late {s.get('late', 0)}")
        for f in s.get("files", []):
            lines.append(f"  {f['path']}  offset {f['offset']}  line {f['lines']}")
        for d in s.get("missing_dirs") or []:
            lines.append(f"  folder {d} does not exist (yet): watched for")
        if s.get("encoding_hint"):
            lines.append(f"  most lines do not decode; they decode as {s['encoding_hint']} "
                         f"(set `encoding: {s['encoding_hint']}`)")
        for smp in s.get("samples", []):
            lines.append(f"  unparsed {smp['path']}:{smp['line_no']}: {smp['reason']}")
    lines.append(f"firing alerts: {len(data['firing'])}")
    for a in data["firing"]:
        labels = ",".join(f"{k}={v}" for k, v in a["labels"].items())
        where = f" at {a['file']}:{a['line']}" if a.get("line") else ""
        lines.append(f"  {a['severity']:8} {a['rule']} {labels} since {a['fired_at']}{where}")
    led = data.get("ledger")
    if led:
        no_key = sum(s.get("ledger_no_key", 0) + s.get("ledger_malformed", 0)
                     for s in data["sources"].values())
        lines.append(f"ledger: {led['invoices']} invoices, {led['open']} pending, "
                     f"{led['overdue']} overdue (invoice-agent invoices missing), {no_key} "
                     "events without a usable invoice number")
    silences = data.get("silences") or []
    if silences:
        lines.append(f"silences: {len(silences)}")
    for sl in silences:
        matchers = " ".join(f"{k}={v}" for k, v in sorted(sl["matchers"].items()))
        lines.append(f"  {sl['id']} {sl['state']} until {sl['ends_at']}: {matchers} "
                     f"({sl['created_by']}: {sl['comment']})")
    for w in data.get("maintenance") or []:
        when = (f"muting now, until {w['until']}" if w["active"]
                else f"next {w['next']}" if w.get("next") else "not within a week")
        lines.append(f"maintenance {w['name']}: {when}")
    muted = data.get("muted") or []
    if muted:
        lines.append(f"muted alerts: {len(muted)}")
    for m in muted:
        labels = ",".join(f"{k}={v}" for k, v in sorted(m["labels"].items()))
        until = f" until {m['until']}" if m.get("until") else ""
        lines.append(f"  {m['rule']} {labels} {m['state']}: {m['why']} by {m['by']}{until}")
    msgs = data.get("messages") or []
    if msgs:
        last = msgs[-1]
        lines.append(f"messages: last at {last['ts']} ({last['reason']}: "
                     f"{', '.join(last['firing'] + last['resolved'])})")
    ob = data["outbox"]
    lines.append(f"outbox: {ob.get('pending', 0)} waiting, {ob.get('sent', 0)} delivered, "
                 f"{ob.get('failed', 0)} refused")
    if ob.get("last_error"):
        lines.append(f"  last delivery error: {ob['last_error']}")
    for r in ob.get("refused", []):
        lines.append(f"  refused for good ({r['target']}): {r['title']}: {r['error']}")
    return "\n".join(lines)
