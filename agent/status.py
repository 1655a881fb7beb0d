"""`invoice-agent status`: what the agent's state says, read from its SQLite file.

Reading works while the daemon runs (WAL mode allows a second reader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import load_config
from agent.store import DB_NAME, Store


def collect(config_path: str) -> dict[str, Any]:
    loaded = load_config(config_path)
    db_path = loaded.state_dir / DB_NAME
    out: dict[str, Any] = {"config": str(loaded.path), "state": str(db_path), "sources": {},
                           "firing": [], "outbox": {"pending": 0, "sent": 0}}
    names = [s.name for s in loaded.config.sources]
    for n in names:
        out["sources"][n] = {"files": [], "lines": 0, "unparsed": 0, "truncated": 0,
                             "replaced": 0, "late": 0, "samples": []}
    if not Path(db_path).is_file():
        out["note"] = "no state yet: the agent has not run with this config"
        return out
    store = Store(db_path, readonly=True)
    try:
        found = store.summary()
    finally:
        store.close()
    for name, data in found["sources"].items():
        if name in out["sources"]:
            out["sources"][name].update(data)
    out["firing"], out["outbox"] = found["firing"], found["outbox"]
    return out


def format_status(data: dict[str, Any]) -> str:
    lines = [f"config {data['config']}", f"state  {data['state']}"]
    if "note" in data:
        lines.append(data["note"])
    for name, s in data["sources"].items():
        lines.append(f"source {name}: lines {s.get('lines', 0)} unparsed {s.get('unparsed', 0)} "
                     f"truncated {s.get('truncated', 0)} undecodable {s.get('replaced', 0)} "
                     f"late {s.get('late', 0)}")
        for f in s.get("files", []):
            lines.append(f"  {f['path']}  offset {f['offset']}  line {f['lines']}")
        for smp in s.get("samples", []):
            lines.append(f"  unparsed {smp['path']}:{smp['line_no']}: {smp['reason']}")
    lines.append(f"firing alerts: {len(data['firing'])}")
    for a in data["firing"]:
        labels = ",".join(f"{k}={v}" for k, v in a["labels"].items())
        lines.append(f"  {a['severity']:8} {a['rule']} {labels} since {a['fired_at']}")
    ob = data["outbox"]
    lines.append(f"outbox: {ob.get('pending', 0)} waiting, {ob.get('sent', 0)} delivered")
    if ob.get("last_error"):
        lines.append(f"  last delivery error: {ob['last_error']}")
    return "\n".join(lines)
