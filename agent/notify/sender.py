"""Deliver rendered alerts through Apprise, routed by severity to tagged targets.

Apprise never raises on a failed delivery: it returns a status and logs why.  This module
turns that into a `Delivery` (ok, recoverable, detail) the outbox can act on, taking the
detail from the log entries Apprise captures per call, with every secret of the configured
URLs (passwords, WeCom keys, tokens) scrubbed out first.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_DETAIL_MAX = 600  # the detail is stored in the outbox row and shown by `status`

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
    Invalid URLs or an unreadable config file raise ValueError (secret-free message).
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

        wecom.register()  # qywx://KEY: WeCom with errcode checked
        self._apprise_mod = apprise
        self.timeout = timeout
        self.routes = {sev: list(tags) for sev, tags in (routes or {}).items()}
        self._asset = apprise.AppriseAsset(app_id="invoice-agent", app_desc="invoice-agent")
        self._apprise = apprise.Apprise(asset=self._asset)
        problems: list[str] = []
        for i, entry in enumerate(urls, 1):
            if isinstance(entry, str):
                url, tags = entry, []
            else:
                url, tags = str(entry.get("url", "")), list(entry.get("tags") or [])
            if not self._apprise.add(url, tag=tags or None):
                problems.append(f"notify url #{i} ({mask_raw_url(url)}) could not be loaded")
        if config_path:
            problems.extend(self._load_config(config_path))
        if problems:
            raise ValueError("; ".join(problems))
        self._services = list(self._apprise.find())
        if throttle is not None:
            for service in self._services:
                service.request_rate_per_sec = throttle
        self._secrets = _collect_secrets(self._services)

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
        """Every configured target as a privacy-masked URL (for `check` and `status`)."""
        return [display_url(service) for service in self._services]

    def unknown_route_tags(self) -> set[str]:
        """Tags named in routes that no target carries: likely typos, for `check` to report."""
        parse = self._apprise_mod.tag.AppriseTag.parse  # drops "3:" priority, ":2" retries
        carried = {str(tag) for service in self._services for tag in service.tags}
        wanted = {str(parse(tag)) for tags in self.routes.values() for tag in tags}
        return wanted - carried - {self._apprise_mod.common.MATCH_ALL_TAG}

    def targets_for(self, severity: str) -> list[str]:
        """The tags that receive `severity`; `["all"]` (every target) when not routed."""
        if severity in self.routes:
            return list(self.routes[severity])
        return [self._apprise_mod.common.MATCH_ALL_TAG]

    def send(self, title: str, body: str, severity: str) -> Delivery:
        """Send one message to the targets routed for `severity`.

        Never raises: NOMATCH (no target carries the tags) is ok; FAILURE, TIMEOUT and
        PARTIAL are not ok and recoverable (a retry also repeats the message to the
        targets that did get it: delivery is at least once).
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
            outcomes.append((display_url(service), self._notify(single, title, body, "info", tags)))
        return outcomes

    def _notify(
        self, target: Any, title: str, body: str, severity: str, tags: list[str]
    ) -> Delivery:
        apprise = self._apprise_mod
        try:
            result = target.notify(
                body=body,
                title=title,
                body_format=apprise.NotifyFormat.TEXT,  # email is HTML by default: newlines
                notify_type=_NOTIFY_TYPE.get(severity, "info"),
                tag=tags,
                timeout=self.timeout,
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
        parts = [f"{result.status.name} ({result.failed_count} of {len(result)} failed)"]
        if result.timeout_count:
            # Apprise abandons a slow call but its thread keeps going: it may still arrive.
            parts[0] += ", a timed-out message may still arrive"
        for service in result:
            if service.status.name == "SUCCESS":
                continue
            messages = "; ".join(entry.message for entry in service.logs())
            parts.append(f"{_strip_query(service.url)} {service.status.name}: {messages}")
        call_messages = "; ".join(entry.message for entry in result.call_logs())
        if call_messages:
            parts.append(call_messages)
        detail = self.redact(" | ".join(parts))
        return detail if len(detail) <= _DETAIL_MAX else detail[: _DETAIL_MAX - 1] + "…"

    def redact(self, text: str) -> str:
        """Replace every known secret of the configured targets in `text` with ****."""
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text


def display_url(service: Any) -> str:
    """A target as an operator recognises it: Apprise's privacy URL without the query."""
    return _strip_query(service.url(privacy=True))


def _strip_query(url: str) -> str:
    # The query holds Apprise's defaults (overflow=, retry=, ...): noise on a phone screen.
    return url.split("?", 1)[0].rstrip("/")


def mask_raw_url(url: str) -> str:
    """Mask a URL Apprise could not parse: keep only the scheme, since we cannot tell
    which parts are secret (apprise's cwe312 heuristics leave e.g. WeCom keys readable)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://****" if sep else "****"


_TOKEN_SPLIT = re.compile(r"[/:@?&=,+#\s]+")


def _collect_secrets(services: Sequence[Any]) -> list[str]:
    """Secrets are the URL parts Apprise hides in its privacy URL.

    Comparing each target's full URL with its privacy URL finds passwords, keys and
    tokens for every plugin without knowing each plugin's attribute names.
    """
    secrets: set[str] = set()
    for service in services:
        try:
            full, private = service.url(privacy=False), service.url(privacy=True)
        except Exception:  # noqa: BLE001 - a plugin that cannot rebuild its URL
            log.debug("cannot list secrets of %s target", type(service).__name__)
            continue
        shown = set(_TOKEN_SPLIT.split(private))
        for token in _TOKEN_SPLIT.split(full):
            if len(token) >= 3 and token not in shown:
                secrets.add(token)
                secrets.add(urllib.parse.unquote(token))
        password = getattr(service, "password", None)
        if isinstance(password, str) and len(password) >= 3:
            secrets.add(password)
    # Longest first, so a secret containing another is replaced whole.
    return sorted((s for s in secrets if s), key=len, reverse=True)
