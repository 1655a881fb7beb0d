"""`alertmanager://HOST:PORT` (`alertmanagers://` for https): alerts posted to Alertmanager.

On a fleet, each host's agent decides about its own logs and invoices; Alertmanager groups,
silences and routes them centrally. Each notice becomes one POST to `/api/v2/alerts` holding
its alerts in Alertmanager's v2 schema:

    labels       alertname (the rule), severity, the alert's labels, instance (this host)
    annotations  summary (in the configured language), description (the other language),
                 source (rule | ledger | model); invoices (the numbers an alert names)
    startsAt     when the alert began firing
    endsAt       the resolution time for a resolved alert; for a firing one `HOLD` from now:
                 the agent sends again at least every repeat interval (4 h by default), so an
                 alert of an agent that died ends by itself a day later instead of forever
    generatorURL where it came from: http://HOST/invoice-agent/RULE (informational)

Options: `?rto=SECONDS` read timeout, `?path=/prefix` when Alertmanager sits under a path
prefix, `?instance=NAME` for another instance label than this host's name.
Alertmanager answers 200 when it took the alerts; anything else is a failed delivery that the
outbox retries (4xx for good: the payload would not become valid by waiting).
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from agent.types import Notice, Transition

log = logging.getLogger(__name__)

SCHEMES = ("alertmanager", "alertmanagers")
HOLD = timedelta(hours=24)
_LABEL = str.maketrans({c: "_" for c in " -./:"})


def _label_name(name: str) -> str:
    """A Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)."""
    out = name.translate(_LABEL)
    out = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in out)
    return out if out and not out[0].isdigit() else f"_{out}"


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def alert(tr: Transition, language: str, instance: str, now: datetime) -> dict[str, Any]:
    other = "en" if language == "zh" else "zh"
    labels = {_label_name(k): str(v) for k, v in tr.labels.items()}
    labels.update(alertname=tr.rule, severity=tr.severity)
    labels.setdefault("instance", instance)
    annotations = {"summary": tr.summary.get(language) or tr.rule,
                   "description": tr.summary.get(other) or "", "source": tr.kind}
    invoices = tr.values.get("invoices") if isinstance(tr.values, Mapping) else None
    if invoices:
        annotations["invoices"] = " ".join(str(i) for i in list(invoices)[:100])
    started = tr.fired_at or tr.ts
    ends = tr.ts if tr.state == "resolved" else max(now, tr.ts) + HOLD
    return {"labels": labels, "annotations": annotations, "startsAt": _iso(started),
            "endsAt": _iso(ends),
            "generatorURL": f"http://{urllib.parse.quote(instance)}/invoice-agent/"
                            f"{urllib.parse.quote(tr.rule)}"}


def payload(notice: Notice, language: str, instance: str | None = None,
            now: datetime | None = None) -> str:
    """The JSON body posted for `notice`: its firing and resolved alerts."""
    instance = instance or socket.gethostname()
    now = now or notice.ts
    alerts = [alert(tr, language, instance, now) for tr in (*notice.firing, *notice.resolved)]
    return json.dumps(alerts, ensure_ascii=False)


def post(base: str, body: str, timeout: float = 10.0) -> tuple[bool, bool, str]:
    """POST `body` to `base`/api/v2/alerts: (ok, worth retrying, why not)."""
    req = urllib.request.Request(f"{base.rstrip('/')}/api/v2/alerts", data=body.encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
            resp.read()
            return True, False, ""
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode(errors="replace")
        return False, exc.code >= 500 or exc.code == 429, f"HTTP {exc.code} {detail}".strip()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, True, f"unreachable: {type(reason).__name__}"


def base_url(meta: Mapping[str, Any]) -> str:
    """http(s)://host:port[/prefix] from Apprise's parsed URL `meta`."""
    scheme = "https" if meta.get("schema") == "alertmanagers" else "http"
    host = str(meta.get("host") or "")
    port = meta.get("port")
    prefix = str((meta.get("qsd") or {}).get("path") or "").rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    return f"{scheme}://{host}" + (f":{port}" if port else "") + prefix


def config_problem(meta: Mapping[str, Any]) -> str | None:
    if not meta.get("host"):
        return "alertmanager:// needs Alertmanager's host: alertmanager://127.0.0.1:9093"
    return None


def register() -> None:
    """Make `alertmanager://` and `alertmanagers://` known to Apprise (idempotent)."""
    from apprise.decorators import notify

    if getattr(register, "done", False):
        return
    for scheme in SCHEMES:
        @notify(on=scheme, name="Prometheus Alertmanager (v2 API)")
        def _send(body: str, title: str, notify_type: Any, meta: dict, *args: Any,
                  **kwargs: Any) -> bool:
            problem = config_problem(meta)
            if problem:
                log.warning("%s", problem)
                return False
            qsd = meta.get("qsd") or {}
            try:
                timeout = float(qsd.get("rto", 10))
            except ValueError:
                timeout = 10.0
            ok, _, why = post(base_url(meta), body, timeout)
            if not ok:
                log.warning("alertmanager delivery failed: %s", why)
            return ok
    register.done = True  # type: ignore[attr-defined]
