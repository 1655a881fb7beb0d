"""Deliver rendered alerts through Apprise, routed by severity to tagged targets.

Apprise never raises on a failed delivery: it returns a status and logs why.  This module
turns that into a `Delivery` (ok, recoverable, detail) the outbox can act on, taking the
detail from the log entries Apprise captures per call, with every secret of the configured
URLs (passwords, user names, WeCom keys, tokens in URL paths and query strings) scrubbed out.

Apprise's logger is owned by this module: it logs at DEBUG into Apprise's per-call capture
only (it does not propagate to the application's handlers), so a delivery's story reaches
the log through the sender's scrubbed detail.  The HTTP libraries' loggers, which quote
request paths, get a filter that scrubs the secrets of every live sender.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.notify.redact import (
    LOADING,
    SCRUBBER,
    collect_secrets,
    display_url,
    mask_raw_url,
    mask_url,
    own_apprise_logging,
    scrub,
)

log = logging.getLogger(__name__)

_DETAIL_MAX = 600  # the detail is stored in the outbox row and shown by `status`
_MESSAGE_MAX = 200  # one of Apprise's log messages inside a detail

# Severity -> Apprise notify type, which some services use for colour or priority.
_NOTIFY_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one send: whether it arrived and, if not, whether to retry."""

    ok: bool
    recoverable: bool  # worth retrying later (network, timeout, partial delivery)
    detail: str  # human-readable, secret-free


class AppriseSender:
    """Sends (title, body) to Apprise URLs, choosing targets by severity.

    `urls` entries are Apprise URL strings or `{"url": ..., "tags": [...]}`; `config_path`
    is an Apprise YAML/TEXT config file whose entries carry tags.  `routes` maps a
    severity to the tags that receive it; a severity without a route goes to every target,
    an empty route to none.  `timeout` bounds a whole send in seconds (a dead target
    otherwise blocks for its connect/read timeouts: set `cto`/`rto` on its URL).
    `throttle`, when set, overrides Apprise's per-target pause between consecutive sends
    (5.5 s for email and WeCom); None keeps it, which respects the services' rate limits.
    Invalid URLs, an unreadable config file, or (when there are targets) a route naming a
    tag no target carries raise ValueError (secret-free message).
    """

    def __init__(
        self,
        urls: Sequence[str | Mapping[str, Any]],
        config_path: str | None = None,
        routes: Mapping[str, Sequence[str]] | None = None,
        timeout: float = 10.0,
        *,
        throttle: float | None = None,
    ) -> None:
        # Imported here: ~0.12 s that `check`, `replay` and `demo` need not pay.
        import apprise

        from agent.notify import wecom

        own_apprise_logging()
        wecom.register()  # qywx://KEY: WeCom with errcode checked
        self._apprise_mod = apprise
        self.timeout = timeout
        self.routes = {sev: list(tags) for sev, tags in (routes or {}).items()}
        self._asset = apprise.AppriseAsset(app_id="invoice-agent", app_desc="invoice-agent")
        self._apprise = apprise.Apprise(asset=self._asset)
        problems: list[str] = []
        loaded: list[tuple[str, list[Any]]] = []  # (raw URL, the services it became)
        # Apprise logs each URL it loads, before we know their secrets: mask whole URLs.
        loading = LOADING.set(True)
        try:
            for i, entry in enumerate(urls, 1):
                if isinstance(entry, str):
                    url, tags = entry, []
                else:
                    url, tags = str(entry.get("url", "")), list(entry.get("tags") or [])
                before = len(self._apprise)
                if not self._apprise.add(url, tag=tags or None):
                    problems.append(f"notify url #{i} ({mask_raw_url(url)}) could not be loaded")
                    continue
                made = [self._apprise[n] for n in range(before, len(self._apprise))]
                loaded.append((url, made))
            if config_path:
                problems.extend(self._load_config(config_path))
        finally:
            LOADING.reset(loading)
        if problems:
            raise ValueError("; ".join(problems))
        self._services = list(self._apprise.find())
        if self._services:  # without targets alerts go to the console: routes do not matter
            problems = self._route_problems()
            if problems:
                raise ValueError("; ".join(problems))
        if throttle is not None:
            for service in self._services:
                service.request_rate_per_sec = throttle
        self._secrets = collect_secrets(self._services, loaded)
        self._secret_set = frozenset(self._secrets)
        SCRUBBER.register(self, self._secrets)

    def _load_config(self, path: str) -> list[str]:
        if not os.path.isfile(path):
            return [f"notify config file {path} does not exist"]
        config = self._apprise_mod.AppriseConfig(asset=self._asset)
        config.add(path)
        services = config.services()
        if not services:
            return [f"notify config file {path} holds no usable notification URL"]
        # Adding the plugin objects (not the config) fixes the target set at load time,
        # like the rest of the configuration, and keeps one object (one throttle) per target.
        for service in services:
            self._apprise.add(service)
        return []

    @property
    def has_targets(self) -> bool:
        """True when at least one notification target is configured."""
        return bool(self._services)

    @property
    def targets(self) -> list[str]:
        """Every configured target as a masked URL (for `check` and `status`)."""
        return [display_url(service, self._secret_set) for service in self._services]

    def _carried_tags(self) -> set[str]:
        return {str(tag) for service in self._services for tag in service.tags}

    def _unknown_tags(self, tags: Iterable[str], carried: set[str]) -> list[str]:
        parse = self._apprise_mod.tag.AppriseTag.parse  # drops "3:" priority, ":2" retries
        match_all = self._apprise_mod.common.MATCH_ALL_TAG
        wanted = dict.fromkeys(str(parse(tag)) for tag in tags)
        return [tag for tag in wanted if tag not in carried and tag != match_all]

    def _route_problems(self) -> list[str]:
        # A typo in a route would make Apprise match no target: NOMATCH, which `send` must
        # treat as ok (an empty route is a wish), so the alert would be silently dropped.
        carried = self._carried_tags()
        have = ", ".join(sorted(carried)) if carried else "no tags at all"
        problems = []
        for severity, tags in self.routes.items():
            unknown = self._unknown_tags(tags, carried)
            if unknown:
                names = ", ".join(repr(tag) for tag in unknown)
                problems.append(
                    f"notify route for severity {severity!r} names tag {names} that no "
                    f"target carries (the targets carry {have})"
                )
        return problems

    def targets_for(self, severity: str) -> list[str]:
        """The tags that receive `severity`; `["all"]` (every target) when not routed."""
        if severity in self.routes:
            return list(self.routes[severity])
        return [self._apprise_mod.common.MATCH_ALL_TAG]

    def send(self, title: str, body: str, severity: str) -> Delivery:
        """Send one message to the targets routed for `severity`.

        Never raises: NOMATCH (no target carries the tags) is ok, though the constructor's
        route check makes it unreachable; FAILURE, TIMEOUT and PARTIAL are not ok and
        recoverable (a retry also repeats the message to the targets that did get it:
        delivery is at least once).
        """
        tags = self.targets_for(severity)
        if not tags:
            return Delivery(True, False, f"no target for severity {severity}: empty route")
        return self._notify(self._apprise, title, body, severity, tags)

    def test_all(
        self,
        title: str = "【测试】invoice-agent test",
        body: str = "这是一条测试消息。\nThis is a test message from invoice-agent.",
    ) -> list[tuple[str, Delivery]]:
        """Send a test message to each target on its own; (masked URL, outcome) per target."""
        outcomes = []
        for service in self._services:
            single = self._apprise_mod.Apprise(asset=self._asset)
            single.add(service)
            tags = [self._apprise_mod.common.MATCH_ALL_TAG]
            outcome = self._notify(single, title, body, "info", tags)
            outcomes.append((display_url(service, self._secret_set), outcome))
        return outcomes

    def _notify(
        self, target: Any, title: str, body: str, severity: str, tags: list[str]
    ) -> Delivery:
        apprise = self._apprise_mod
        own_apprise_logging()  # something (the CLI) may have silenced it since
        try:
            result = target.notify(
                body=body,
                title=title,
                body_format=apprise.NotifyFormat.TEXT,  # email is HTML by default: newlines
                notify_type=_NOTIFY_TYPE.get(severity, "info"),
                tag=tags,
                timeout=self.timeout,
                log_level=logging.DEBUG,  # the socket error says *why* a connection failed
            )
        # apprise is documented not to raise; if a bug makes it, the worker must not die
        except Exception as exc:  # noqa: BLE001
            return Delivery(False, True, self.redact(f"apprise raised {exc!r}"))
        status = result.status.name
        try:
            if status == "SUCCESS":
                return Delivery(True, False, f"delivered to {result.success_count} target(s)")
            if status == "NOMATCH":
                return Delivery(True, False, f"no target for tags {', '.join(tags)}")
            detail = self._describe_failure(result)
        finally:
            result.close()
        log.warning("notification not delivered: %s", detail)
        return Delivery(False, True, detail)

    def _describe_failure(self, result: Any) -> str:
        head = f"{result.status.name} ({result.failed_count} of {len(result)} failed)"
        if result.timeout_count:
            # Apprise abandons a slow call but its thread keeps going: it may still arrive.
            head += ", a timed-out message may still arrive"
        parts = [head]
        for service in result:
            if service.status.name == "SUCCESS":
                continue
            url = mask_url(service.url, self._secret_set)  # Apprise's privacy URL
            reason = self.redact(_failure_reason(service))
            parts.append(f"{url} {service.status.name}: {reason}")
        warnings = _messages(result.call_logs(), logging.WARNING)
        if warnings:
            parts.append(self.redact("; ".join(warnings)))
        elif len(parts) == 1:  # no service result at all: say so rather than nothing
            parts.append("apprise reported no reason")
        detail = " | ".join(parts)
        return detail if len(detail) <= _DETAIL_MAX else detail[: _DETAIL_MAX - 1] + "…"

    def redact(self, text: str) -> str:
        """Replace every known secret of the configured targets in `text` with ****."""
        return scrub(text, self._secrets)


# --- why a delivery failed ------------------------------------------------------------------

_LEVELS = logging.getLevelNamesMapping()
# Apprise logs the exception behind a failure at DEBUG as "Socket Exception: ...".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z][\w ]* Exception\b")
_HTTP_STATUS = re.compile(r"\b(?:error|status(?: code)?|http)[=: ]+([1-5]\d\d)\b", re.I)
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


def _messages(entries: Iterable[Any], level: int) -> list[str]:
    """The distinct messages of `entries` at `level` or above, each cut to a readable size."""
    out = [
        _clip(entry.message)
        for entry in entries
        if _LEVELS.get(entry.level, logging.NOTSET) >= level and entry.message.strip()
    ]
    return list(dict.fromkeys(out))


def _clip(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 1] + "…"


def _failure_reason(service: Any) -> str:
    """Why one service failed, short cause first: never empty."""
    entries = list(service.logs())
    warnings = _messages(entries, logging.WARNING)
    exceptions = [e.message for e in entries if _EXCEPTION_LINE.match(e.message or "")]
    # Matched on the whole messages: the errno comes last in a long exception text.
    text = "\n".join(
        [e.message for e in entries if _LEVELS.get(e.level, 0) >= logging.WARNING] + exceptions
    )
    causes = []
    status = _HTTP_STATUS.search(text)
    if status:
        causes.append(f"HTTP {status.group(1)}")
    cause = next((label for label, pattern in _CAUSES if pattern.search(text)), None)
    if cause:
        causes.append(cause)
    elif exceptions and not status:
        causes.append(_clip(exceptions[-1]))  # unknown to us: the exception is the cause
    if not causes and not warnings:
        causes.append(
            "timed out" if service.status.name == "TIMEOUT" else "apprise logged no reason"
        )
    return "; ".join(dict.fromkeys(causes + warnings))


# --- masking and scrubbing ------------------------------------------------------------------


