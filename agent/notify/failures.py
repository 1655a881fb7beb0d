"""Why a notify target failed: to load (Apprise refused its URL) or to take a message.

Apprise raises for neither: it logs.  These functions read its log lines, the way it wrote
them, and say why in an operator's words, and whether sending the same message to the same
target again can succeed (`is_recoverable`): a wrong key or an unknown mail recipient stays
wrong, so the outbox must not retry it forever; a dead host or a rate limit passes.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from agent.notify import wecom
from agent.notify.redact import scrub, url_secrets

_LEVELS = logging.getLevelNamesMapping()
_MESSAGE_MAX = 200  # one of Apprise's log messages inside a detail

# --- why a delivery failed ------------------------------------------------------------------

# Apprise logs the exception behind a failure at DEBUG as "Socket Exception: ...".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z][\w ]* Exception\b")
_HTTP_STATUS = re.compile(r"\b(?:error|status(?: code)?|http)[=: ]+([1-5]\d\d)\b", re.I)
# smtplib's exceptions as text: (550, b'5.1.1 unknown'), {'to': (550, b'..')}, (553, b'..', 'from')
_SMTP_REPLY = re.compile(r"\((\d{3}), b?(['\"])(.*?)\2")
_WECOM_ERRCODE = re.compile(r"\berrcode (-?\d+)")  # as agent.notify.wecom reports a refusal
# (what an operator reads, how the exception text says it); the first match wins
_CAUSES = (
    ("connection refused", re.compile(r"connection refused|errno 111\b|winerror 10061", re.I)),
    (
        "host name not found",
        re.compile(
            r"name or service not known|nodename nor servname|failed to resolve"
            r"|name resolution|getaddrinfo failed|no address associated",
            re.I,
        ),
    ),
    ("timed out", re.compile(r"timed out|timeout|did not finish within", re.I)),
    (
        "connection reset",
        re.compile(r"connection reset|connection aborted|remote ?disconnected|\bclosed", re.I),
    ),
    ("network unreachable", re.compile(r"network is unreachable|no route to host", re.I)),
    ("TLS error", re.compile(r"\bssl|certificate", re.I)),
    ("authentication failed", re.compile(r"authenticat|\(535\b", re.I)),
)

# WeCom answers the same for the same key and message however often it is asked: a bad or
# removed key (93000 invalid webhook url; 40001/40014/42001, the credential codes of its API)
# or a message it cannot take (40008 message type, 40058 bad parameter, 44004 empty text).
# Anything else (45009 rate limit, -1 system busy, codes not listed) may pass later.
WECOM_PERMANENT = frozenset({93000, 40001, 40014, 42001, 40008, 40058, 44004})
# 4xx means "this request is wrong" except: 408 request timeout, 429 too many requests.
HTTP_RETRYABLE_4XX = frozenset({408, 429})
# A mail server that offers no AUTH will not start to (the URL must change).
_SMTP_NO_AUTH = re.compile(r"SMTP AUTH extension not supported", re.I)


def is_recoverable(text: str) -> bool:
    """Whether the same message to the same target may still get through later.

    `text` is what one failed attempt logged (warnings and exception lines).  Permanent:
    WeCom errcodes in WECOM_PERMANENT; SMTP replies all 5xx (550 unknown recipient, 553
    sender refused, 535 authentication failed) or a server without AUTH; HTTP 4xx other
    than 408/429 (a webhook refusing the request).  Everything else is recoverable:
    refused or reset connections, timeouts, HTTP 5xx/408/429, SMTP 4xx, WeCom 45009, and
    whatever these rules do not know (an alert is better late than lost).
    """
    errcode = _WECOM_ERRCODE.search(text)
    if errcode:
        return int(errcode.group(1)) not in WECOM_PERMANENT
    smtp = [int(m.group(1)) for m in _SMTP_REPLY.finditer(text)]
    if smtp:  # a 4xx recipient among 5xx ones can still take it (Apprise skips the others)
        return any(400 <= code < 500 for code in smtp)
    if _SMTP_NO_AUTH.search(text):
        return False
    status = _HTTP_STATUS.search(text)
    if status:
        code = int(status.group(1))
        return not 400 <= code < 500 or code in HTTP_RETRYABLE_4XX
    return True


def explain_failure(entries: Iterable[Any], status: str) -> tuple[str, bool]:
    """(why one target did not take a message, whether to retry) from the log entries of
    its last attempt; the reason is never empty and may quote secrets: scrub it."""
    entries = list(entries)
    warnings = messages(entries, logging.WARNING)
    exceptions = [e.message for e in entries if _EXCEPTION_LINE.match(e.message or "")]
    # Matched on the whole messages: the errno comes last in a long exception text.
    text = "\n".join(
        [e.message for e in entries if _LEVELS.get(e.level, 0) >= logging.WARNING] + exceptions
    )
    causes = []
    smtp = _SMTP_REPLY.search(text)
    http = _HTTP_STATUS.search(text)
    if smtp:
        causes.append(_clip(f"SMTP {smtp.group(1)} {smtp.group(3)}"))
    elif http:
        causes.append(f"HTTP {http.group(1)}")
    cause = next((label for label, pattern in _CAUSES if pattern.search(text)), None)
    if cause:
        causes.append(cause)
    elif exceptions and not (smtp or http):
        causes.append(_clip(exceptions[-1]))  # unknown to us: the exception is the cause
    if not causes and not warnings:
        causes.append("timed out" if status == "TIMEOUT" else "apprise logged no reason")
    reason = "; ".join(dict.fromkeys(causes + warnings))
    return reason, status == "TIMEOUT" or is_recoverable(text)


def messages(entries: Iterable[Any], level: int) -> list[str]:
    """The distinct messages of Apprise log `entries` at `level` or above, each clipped."""
    out = [
        _clip(entry.message)
        for entry in entries
        if _LEVELS.get(entry.level, logging.NOTSET) >= level and entry.message.strip()
    ]
    return list(dict.fromkeys(out))


def _clip(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 1] + "…"


# --- why a URL could not be loaded ----------------------------------------------------------


class TargetProblems(ValueError):
    """Notify URLs Apprise refused: `problems` holds (index, masked URL, reason), `index`
    being the 0-based position of the URL in the `urls` the sender was given; `others`
    holds problems that belong to no URL entry (the Apprise config file)."""

    def __init__(self, problems: Sequence[tuple[int, str, str]], others: Sequence[str] = ()):
        self.problems = list(problems)
        self.others = list(others)
        parts = [f"notify url #{i + 1} ({url}) could not be loaded: {why}" for i, url, why in
                 self.problems]
        super().__init__("; ".join(parts + self.others))


_WECOM_LIKE = frozenset({"wechat", "wecom", "wecombot", "wxwork", "weixin", "qywx"})
_REFUSAL_LINE = re.compile(r"^(could not load|unparseable|unsupported url)", re.I)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S*")


def load_refusal(url: str, lines: Sequence[tuple[int, str]], schemes: Collection[str]) -> str:
    """Why Apprise refused `url`, from what it logged while loading it (`lines`: level,
    message) and the schemes it knows.  Secret-free: parts of `url` are masked."""
    scheme, sep, _ = url.strip().partition("://")
    scheme = scheme.lower()
    if not url.strip():
        return "the URL is empty"
    if not sep:
        return "not a URL: expected SCHEME://..., e.g. json://HOST/PATH or qywx://KEY"
    if scheme in ("http", "https") and scheme not in schemes:
        return f"unknown scheme {scheme + '://'!r}; a webhook is json://, jsons://, form:// or xml://"
    if scheme not in schemes:
        close = difflib.get_close_matches(scheme, sorted(schemes), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(c + '://' for c in close)}?" if close else ""
        return f"unknown scheme {scheme + '://'!r}{hint}"
    reason = _warnings(lines)
    if not reason:
        errors = [_URL.sub("", m).rstrip(" :") for level, m in lines
                  if level >= logging.ERROR and _REFUSAL_LINE.match(m)]
        reason = "; ".join(dict.fromkeys(errors)) or "Apprise could not load it"
    if scheme in ("mailto", "mailtos") and "from" in reason.lower():
        reason += " (a mail URL needs from=SENDER@DOMAIN and to=RECIPIENT)"
    elif scheme in _WECOM_LIKE and scheme != "qywx":
        reason += " (for a WeCom group bot use qywx://KEY, the key of its webhook)"
    return scrub(reason, url_secrets(url))


def incomplete(url: str, services: Sequence[Any], lines: Sequence[tuple[int, str]]) -> str | None:
    """Why targets Apprise did load from `url` cannot work, or None: a mail target whose
    every recipient was dropped as invalid (Apprise keeps it, then fails every send), a
    qywx:// target without a key or with a bad endpoint."""
    for service in services:
        if wecom.SCHEME in service.schemas():
            problem = wecom.config_problem(getattr(service, "_default_args", {}))
            if problem:
                return scrub(problem, url_secrets(url))
        if {"mailto", "mailtos"} & set(service.schemas()) and not getattr(service, "targets", 1):
            why = _warnings(lines) or "no recipient"
            return scrub(f"no valid recipient: {why} (use to=RECIPIENT@DOMAIN)", url_secrets(url))
    return None


def _warnings(lines: Sequence[tuple[int, str]]) -> str:
    """Apprise's warnings among its load `lines`, without the lines quoting the URL."""
    found = (_clip(m.replace("~", "")).rstrip(" :") for level, m in lines
             if level >= logging.WARNING and not _REFUSAL_LINE.match(m))
    return "; ".join(dict.fromkeys(found))
