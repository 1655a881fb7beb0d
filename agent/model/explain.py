"""Why a time slot is abnormal, in words an on-call sysadmin reads on a phone, zh and en.

The few measurements furthest from their hour's normal, each with its value and the range it
kept at this hour in training: "upload latency p95 8.2 s, normally 0.3-0.9 s at this hour" /
"上传延迟 P95 8.2 秒，此时段通常 0.3-0.9 秒". No internal feature names: sources by the names
operators know (configurable), measurements by what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agent.model.calendar import DAY_TYPES

NOTABLE_Z = 3.0  # a deviation worth naming; below it the slot is an unusual *combination*

# Built-in names for the demo's sources; model.names in config adds or overrides
SOURCE_NAMES: dict[str, dict[str, str]] = {
    "upload": {"zh": "上传", "en": "upload"},
    "platform": {"zh": "开票平台", "en": "invoicing platform"},
    "erp": {"zh": "ERP 同步", "en": "ERP sync"},
    "system": {"zh": "系统日志", "en": "system log"},
    "ledger": {"zh": "发票台账", "en": "invoice ledger"},
}

# metric -> (zh words, en words, unit kind)
METRICS: dict[str, tuple[str, str, str]] = {
    "count": ("数量", "events", "count"),
    "failure_rate": ("失败率", "failure rate", "percent"),
    "timeout_rate": ("超时率", "timeout rate", "percent"),
    "latency_p50": ("延迟中位数", "latency median", "ms"),
    "latency_p95": ("延迟 P95", "latency p95", "ms"),
    "distinct_error_codes": ("错误码种类", "distinct error codes", "count"),
    "pending": ("待处理发票", "invoices pending", "count"),
    "overdue": ("超期未完成发票", "overdue invoices", "count"),
    "oldest_pending_minutes": ("最久待处理", "oldest pending invoice", "minutes"),
    "lag_p50_seconds": ("开票到完成耗时中位数", "issue-to-final lag median", "seconds"),
    "lag_p95_seconds": ("开票到完成耗时 P95", "issue-to-final lag p95", "seconds"),
}

_TEXT = {
    "en": {"lead": "unusual for {when}", "combo": "an unusual combination for {when}",
           "normal": "normally {lo}-{hi} at this hour", "sep": "; ", "colon": ": ",
           "score": " (score {s:.1f}x the threshold)",
           "back": "back to normal for {when} (score {s:.1f}x the threshold)",
           "when": "{h:02d}:00 on a {day}"},
    "zh": {"lead": "不符合{when}的常态", "combo": "多项指标组合不符合{when}的常态",
           "normal": "此时段通常 {lo}-{hi}", "sep": "；", "colon": "：",
           "score": "（异常分为阈值的 {s:.1f} 倍）",
           "back": "已回到{when}的常态（异常分为阈值的 {s:.1f} 倍）",
           "when": "{day} {h} 点"},
}


def top_deviations(z: np.ndarray, k: int) -> list[int]:
    """Columns of one row's z-scores, largest first, the notable ones (at least one)."""
    if len(z) == 0:
        return []
    order = np.argsort(-np.abs(z), kind="stable")
    notable = [int(j) for j in order[:k] if abs(z[j]) >= NOTABLE_Z]
    # nothing far out on its own: the forest found the mix unusual; name the two largest
    return notable if notable else [int(j) for j in order[:min(k, 2)]]


def _number(v: float, unit: str, lang: str) -> tuple[str, str]:
    """(number, unit word) in the unit best read at this size."""
    if unit == "percent":
        return f"{v * 100:.0f}" if v >= 0.1 else f"{v * 100:.1f}", "%"
    if unit in ("ms", "seconds", "minutes"):
        seconds = v / 1000 if unit == "ms" else v * 60 if unit == "minutes" else v
        if seconds < 1:
            return f"{seconds * 1000:.0f}", " 毫秒" if lang == "zh" else " ms"
        if seconds < 120:
            return f"{seconds:.1f}", " 秒" if lang == "zh" else " s"
        if seconds < 7200:
            return f"{seconds / 60:.0f}", " 分钟" if lang == "zh" else " min"
        return f"{seconds / 3600:.1f}", " 小时" if lang == "zh" else " h"
    return (f"{v:.0f}" if abs(v - round(v)) < 0.05 or v >= 10 else f"{v:.1f}"), ""


def _same_unit(lo: float, hi: float, v: float, unit: str, lang: str) -> tuple[str, str, str]:
    """Value and range in the unit of the larger of them, so '0.3-0.9 s' reads as one."""
    _, word = _number(max(v, hi), unit, lang)
    scale = {" 毫秒": 1.0, " ms": 1.0, " 秒": 1000.0, " s": 1000.0, " 分钟": 60000.0,
             " min": 60000.0, " 小时": 3600000.0, " h": 3600000.0}
    if unit in ("ms", "seconds", "minutes") and word in scale:
        to_ms = {"ms": 1.0, "seconds": 1000.0, "minutes": 60000.0}[unit]

        def f(x: float) -> str:
            y = x * to_ms / scale[word]
            return f"{y:.1f}" if y < 10 and word not in (" 毫秒", " ms") else f"{y:.0f}"

        return f(v), f(lo), f(hi)
    return _number(v, unit, lang)[0], _number(lo, unit, lang)[0], _number(hi, unit, lang)[0]


def describe(item: Mapping[str, Any], lang: str, names: Mapping[str, Mapping[Any, str]],
             window_minutes: float) -> str:
    """One measurement: '<source> <metric> <value>, normally <lo>-<hi> at this hour'."""
    src, metric = str(item["source"]), str(item["metric"])
    zh, en, unit = METRICS.get(metric, (metric, metric, "count"))
    who = names.get(src, SOURCE_NAMES.get(src, {})).get(lang, src)
    value, lo, hi = float(item["value"]), float(item["low"]), float(item["high"])
    v, a, b = _same_unit(lo, hi, value, unit, lang)
    word = _number(max(value, hi), unit, lang)[1]
    if metric == "count":
        per = (f"（每 {window_minutes:g} 分钟）" if lang == "zh"
               else f" per {window_minutes:g} min")
        v = v + per
    words = zh if lang == "zh" else en
    if src == "ledger":
        head = words
    else:
        head = f"{who}{words}" if lang == "zh" and not who[-1:].isascii() else f"{who} {words}"
    normal = _TEXT[lang]["normal"].format(lo=a, hi=f"{b}{word}")
    comma = "，" if lang == "zh" else ", "
    return f"{head} {v}{word}{comma}{normal}"


def when(values: Mapping[str, Any], lang: str) -> str:
    day = DAY_TYPES.get(int(values.get("day_kind", 1)), DAY_TYPES[1])
    return _TEXT[lang]["when"].format(h=int(values.get("hour", 0)),
                                      day=day[1] if lang == "zh" else day[0])


def summary(values: Mapping[str, Any], names: Mapping[str, Mapping[Any, str]]
            ) -> dict[str, str]:
    """The alert text in both languages from a finding's values."""
    out = {}
    ratio = float(values.get("score", 0)) / max(float(values.get("threshold", 1)), 1e-9)
    for lang, t in _TEXT.items():
        w = when(values, lang)
        if not values.get("abnormal"):
            out[lang] = t["back"].format(when=w, s=ratio)
            continue
        unusual = list(values.get("unusual", ()))
        lead = t["lead"] if any(abs(float(u["z"])) >= NOTABLE_Z for u in unusual) else t["combo"]
        parts = [describe(u, lang, names, float(values.get("window_minutes", 5)))
                 for u in unusual]
        out[lang] = (lead.format(when=w) + t["score"].format(s=ratio) + t["colon"]
                     + t["sep"].join(parts))
    return out
