"""JSON forms of the records the router keeps across a restart (engine state)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent.types import Muted, Transition


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    # engine state is stored as plain JSON: a value JSON cannot hold is kept as its text
    return dict(json.loads(json.dumps(dict(values), ensure_ascii=False, default=str)))


def transition_json(t: Transition) -> dict[str, Any]:
    return {"ts": t.ts.isoformat(), "rule": t.rule, "kind": t.kind, "severity": t.severity,
            "state": t.state, "labels": dict(t.labels), "summary": dict(t.summary),
            "fingerprint": t.fingerprint, "reason": t.reason, "line_no": t.line_no,
            "values": _plain(t.values), "path": t.path,
            "fired_at": t.fired_at.isoformat() if t.fired_at else None}


def transition_from_json(d: Mapping[str, Any]) -> Transition:
    fired = d.get("fired_at")
    return Transition(datetime.fromisoformat(d["ts"]), d["rule"], d["kind"], d["severity"],
                      d["state"], dict(d["labels"]), dict(d["summary"]), d["fingerprint"],
                      d["reason"], d.get("line_no"), dict(d.get("values") or {}), d.get("path"),
                      datetime.fromisoformat(fired) if fired else None)


def muted_json(m: Muted) -> dict[str, Any]:
    return {"ts": m.ts.isoformat(), "rule": m.rule, "labels": dict(m.labels),
            "fingerprint": m.fingerprint, "state": m.state, "why": m.why, "by": m.by}


def muted_from_json(d: Mapping[str, Any]) -> Muted:
    return Muted(datetime.fromisoformat(d["ts"]), d["rule"], dict(d["labels"]),
                 d["fingerprint"], d["state"], d["why"], d["by"])
