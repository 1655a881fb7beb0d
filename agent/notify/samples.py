"""A sample notice with every part a message can have, for checking an operator's templates
before an alert depends on them (`template_problems`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.types import Muted, Notice, Transition

_CST = timezone(timedelta(hours=8))


def sample_notice() -> Notice:
    """An outage firing (with invoice numbers and a log line), a latency alert beside it, a
    resolved failure-rate alert and two alerts the outage muted."""
    ts = datetime(2026, 11, 2, 10, 10, tzinfo=_CST)
    outage = Transition(
        ts, "upload_outage", "rule", "critical", "firing", {"source": "upload"},
        {"zh": "上传全部超时", "en": "every upload timing out"}, "fp-outage",
        "first notification", line_no=4127, path="/var/log/invoice/upload.log",
        values={"invoices": ["24110200001", "24110200002"], "count": 2},
        fired_at=ts - timedelta(minutes=5))
    latency = Transition(
        ts, "upload_latency", "rule", "warning", "firing", {"source": "upload"},
        {"zh": "上传 p95 延迟 12 秒", "en": "upload p95 latency 12 s"}, "fp-latency",
        "first notification", fired_at=ts - timedelta(minutes=3))
    failures = Transition(
        ts, "upload_failure_rate", "rule", "warning", "resolved", {"source": "upload"},
        {"zh": "上传失败率 2%", "en": "upload failure rate 2%"}, "fp-failures", "resolved",
        fired_at=ts - timedelta(minutes=35))
    muted = tuple(Muted(ts, rule, {"source": "upload"}, f"fp-{rule}", "firing", "inhibited",
                        "upload_outage") for rule in ("invoice_missing", "model_anomaly"))
    return Notice(ts=ts, key="group-upload", group={"source": "upload"}, severity="critical",
                  firing=(outage, latency), resolved=(failures,),
                  news=frozenset({"fp-outage", "fp-failures"}), muted=muted,
                  reason="first notification")
