"""Deliver rendered alerts through Apprise, one target at a time, routed by severity.

Each configured target has a stable key (`target_keys`), so the outbox can track delivery
per (message, target) and retry only the targets that have not taken a message
(`send_to`): a dead webhook no longer makes a working one get the same alert again.

Apprise never raises on a failed delivery: it returns a status and logs why.  This module
turns that into a `Delivery` (ok, recoverable, detail), taking the detail from the log
entries Apprise captures per call (agent.notify.failures says why, and whether a retry can
help), with every secret of the configured URLs scrubbed out.

Apprise's logger is owned by agent.notify.redact: it logs at DEBUG into Apprise's per-call
capture only (it does not propagate to the application's handlers), so a delivery's story
reaches the log through the sender's scrubbed detail.  The HTTP libraries' loggers, which
quote request paths, get a filter that scrubs the secrets of every live sender.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agent.notify import alertmanager, wecom
from agent.notify.failures import (
    TargetProblems,
    explain_failure,
    incomplete,
    load_refusal,
    messages,
)
from agent.notify.redact import (
    LOADING,
    SCRUBBER,
    capture_apprise_log,
    collect_secrets,
    display_target,
    mask_for_display,
    own_apprise_logging,
    scrub,
)

__all__ = ["AppriseSender", "Delivery", "TargetProblems", "channel_of", "target_key"]

log = logging.getLogger(__name__)

_DETAIL_MAX = 600  # the detail is stored in the outbox row and shown by `status`

# Severity -> Apprise notify type, which some services use for colour or priority.
_NOTIFY_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}

# `notify test`: (title, body) by language; zh is the default, as for alerts.
_TEST_MESSAGE = {
    "zh": ("【测试】invoice-agent test",
           "这是一条测试消息。\nThis is a test message from invoice-agent."),
    "en": ("[TEST] invoice-agent test", "This is a test message from invoice-agent."),
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one send: whether it arrived and, if not, whether to retry."""

    ok: bool
    recoverable: bool  # worth retrying later (network, timeout, rate limit); False: give up
    detail: str  # human-readable, secret-free


def target_key(url: str) -> str:
    """The stable key of the target configured as `url`: "t-" and 12 hex digits of the
    SHA-256 of the URL text (secrets included, so the key tells nothing about them)."""
    return "t-" + hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:12]


def channel_of(url: str) -> str:
    """The message channel a target's URL calls for (agent.notify.templating renders one
    message per channel): `wecom` for our WeCom bot (`qywx://`) unless it asks
    `?format=text`; `email` for `mailto://` and `mailtos://`; `alertmanager` for
    `alertmanager://` (its JSON alerts); `text` for everything else.

    Apprise's own `wecombot://` is `text`: it posts msgtype text, which would show markdown
    as its raw characters.
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == wecom.SCHEME:
        query = dict(urllib.parse.parse_qsl(parts.query))
        return "text" if wecom.is_text_mode(query) else "wecom"
    if scheme in ("mailto", "mailtos"):
        return "email"
    if scheme in alertmanager.SCHEMES:
        return "alertmanager"
    return "text"


@dataclass(frozen=True, slots=True)
class _Target:
    key: str
    service: Any  # the Apprise plugin object: one throttle per target
    shown: str  # mask_for_display of its URL
    single: Any  # an Apprise holding only this target
    channel: str  # wecom | email | text: which rendering this target receives


class AppriseSender:
    """Sends (title, body) to Apprise URLs, choosing targets by severity.

    `urls` entries are Apprise URL strings or `{"url": ..., "tags": [...]}`; `config_path`
    is an Apprise YAML/TEXT config file whose entries carry tags.  `routes` maps a
    severity to the tags that receive it; a severity without a route goes to every target,
    an empty route to none.  `timeout` bounds one send in seconds (a dead target
    otherwise blocks for its connect/read timeouts: set `cto`/`rto` on its URL).
    `throttle`, when set, overrides Apprise's per-target pause between consecutive sends
    (5.5 s for email and WeCom); None keeps it, which respects the services' rate limits.
    URLs Apprise refuses raise TargetProblems (a ValueError: index, masked URL and reason
    per URL); an unreadable config file, or (when there are targets) a route naming a tag
    no target carries, raise ValueError.  Messages are secret-free.  The same URL twice is
    one target (one key), carrying the tags of both entries.
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

        own_apprise_logging()
        wecom.register()  # qywx://KEY: WeCom with errcode checked
        alertmanager.register()  # alertmanager://HOST:PORT: Alertmanager's v2 API
        self._apprise_mod = apprise
        self.timeout = timeout
        self.routes = {sev: list(tags) for sev, tags in (routes or {}).items()}
        self._asset = apprise.AppriseAsset(app_id="invoice-agent", app_desc="invoice-agent")
        self._apprise = apprise.Apprise(asset=self._asset)
        refused: list[tuple[int, str, str]] = []
        loaded: list[tuple[str, list[Any]]] = []  # (raw URL, the services it became)
        for i, entry in enumerate(urls):
            if isinstance(entry, str):
                url, tags = entry, []
            else:
                url, tags = str(entry.get("url", "")), list(entry.get("tags") or [])
            before = len(self._apprise)
            with capture_apprise_log() as lines:  # Apprise says why only in its log
                added = self._apprise.add(url, tag=tags or None)
            made = [self._apprise[n] for n in range(before, len(self._apprise))]
            why = (load_refusal(url, lines, apprise.manager_plugins.NotificationManager().schemas())
                   if not added else incomplete(url, made, lines))
            if why:
                refused.append((i, mask_for_display(url), why))
            else:
                loaded.append((url, made))
        others, from_file = self._load_config(config_path) if config_path else ([], [])
        if refused:
            raise TargetProblems(refused, others)
        if others:
            raise ValueError("; ".join(others))
        self._services = list(self._apprise.find(resolve=False))
        if self._services:  # without targets alerts go to the console: routes do not matter
            problems = self._route_problems()
            if problems:
                raise ValueError("; ".join(problems))
        if throttle is not None:
            for service in self._services:
                service.request_rate_per_sec = throttle
        self._secrets = collect_secrets(self._services, loaded)
        SCRUBBER.register(self, self._secrets)
        self._targets: dict[str, _Target] = {}
        self._key_of: dict[int, str] = {}  # id(service) -> key
        for text, service in self._keyed(loaded, from_file):
            key = self._key_of[id(service)] = target_key(text)
            if key not in self._targets:
                single = apprise.Apprise(asset=self._asset)
                single.add(service)
                self._targets[key] = _Target(key, service, display_target(service, text), single,
                                             channel_of(service.url(privacy=True)))

    @staticmethod
    def _keyed(loaded: list[tuple[str, list[Any]]], from_file: list[Any]) -> list[tuple[str, Any]]:
        """(the text a target's key is made of, its service) for every target: the URL as
        configured, or its full URL for a config-file target or one of several URLs given
        in one string (the text is then the same on every load, for the same Apprise)."""
        out = [(url if len(made) == 1 else service.url(privacy=False), service)
               for url, made in loaded for service in made]
        return out + [(service.url(privacy=False), service) for service in from_file]

    def _load_config(self, path: str) -> tuple[list[str], list[Any]]:
        if not os.path.isfile(path):
            return [f"notify config file {path} does not exist"], []
        config = self._apprise_mod.AppriseConfig(asset=self._asset)
        loading = LOADING.set(True)  # Apprise logs each URL before we know its secrets
        try:
            config.add(path)
            services = config.services()
        finally:
            LOADING.reset(loading)
        if not services:
            return [f"notify config file {path} holds no usable notification URL"], []
        # Adding the plugin objects (not the config) fixes the target set at load time,
        # like the rest of the configuration, and keeps one object (one throttle) per target.
        for service in services:
            self._apprise.add(service)
        return [], list(services)

    @property
    def has_targets(self) -> bool:
        """True when at least one notification target is configured."""
        return bool(self._targets)

    @property
    def targets(self) -> list[str]:
        """Every configured target as a masked URL (for `check` and `status`)."""
        return [target.shown for target in self._targets.values()]

    def _carried_tags(self) -> set[str]:
        return {str(tag) for service in self._services for tag in service.tags}

    def _unknown_tags(self, tags: Iterable[str], carried: set[str]) -> list[str]:
        parse = self._apprise_mod.tag.AppriseTag.parse  # drops "3:" priority, ":2" retries
        match_all = self._apprise_mod.common.MATCH_ALL_TAG
        wanted = dict.fromkeys(str(parse(tag)) for tag in tags)
        return [tag for tag in wanted if tag not in carried and tag != match_all]

    def _route_problems(self) -> list[str]:
        # A typo in a route would make Apprise match no target: the alert would be dropped.
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

    def target_keys(self, severity: str) -> list[str]:
        """The keys of the targets that receive `severity`, in configuration order.

        Matched by Apprise itself on the route's tags (any of them; "all"; a target tagged
        "always" gets everything; "2:tag" only the targets with that tag at priority 2);
        an unrouted severity goes to every target, an empty route to none.  Apprise's
        escalation (higher-priority tag groups tried only when the first fails) is not
        applied: every matched target gets the message.
        """
        tags = self.targets_for(severity)
        if not tags or not self._targets:
            return []
        matched = self._apprise.find(tag=tags, resolve=False)
        return list(dict.fromkeys(self._key_of[id(s)] for s in matched if id(s) in self._key_of))

    def channel(self, key: str) -> str:
        """The channel (`wecom`, `email` or `text`) whose rendering the target of `key`
        receives; `text` for a key no longer configured."""
        target = self._targets.get(key)
        return target.channel if target else "text"

    def describe(self, key: str) -> str:
        """The target of `key` as a masked URL (for logs and `status`); the key if unknown."""
        target = self._targets.get(key)
        return target.shown if target else key

    def send_to(self, key: str, title: str, body: str, severity: str) -> Delivery:
        """Send one message to the one target of `key`, whatever the routes say now.

        Never raises.  Not ok and not recoverable when the key is unknown (the target left
        the configuration since the message was queued) or the target refused it for good.
        """
        target = self._targets.get(key)
        if target is None:
            return Delivery(False, False, "target no longer configured")
        return self._deliver(target, title, body, severity)[1]

    def send(self, title: str, body: str, severity: str) -> Delivery:
        """Send one message to every target routed for `severity`, concurrently.

        Never raises.  Ok when every target took it (or none is routed); else recoverable
        when any failed target may take it later, and a retry repeats the message to the
        targets that did get it: use `target_keys` and `send_to` to avoid that.
        """
        keys = self.target_keys(severity)
        if not keys:
            why = "empty route" if self._targets else "no target configured"
            return Delivery(True, False, f"no target for severity {severity}: {why}")
        with ThreadPoolExecutor(max_workers=len(keys), thread_name_prefix="notify") as pool:
            outcomes = list(pool.map(
                lambda key: self._deliver(self._targets[key], title, body, severity), keys))
        failed = [(status, d) for status, d in outcomes if not d.ok]
        if not failed:
            return Delivery(True, False, f"delivered to {len(keys)} target(s)")
        statuses = {status for status, _ in failed}
        head = ("PARTIAL" if len(failed) < len(keys)
                else "TIMEOUT" if statuses == {"TIMEOUT"} else "FAILURE")
        detail = " | ".join([f"{head} ({len(failed)} of {len(keys)} failed)"]
                            + [d.detail for _, d in failed])
        return Delivery(False, any(d.recoverable for _, d in failed), _cut(detail))

    def test_all(self, language: str = "zh") -> list[tuple[str, Delivery]]:
        """Send a test message to each target on its own; (masked URL, outcome) per target.

        The title and body are in `language` ("zh", the default, or "en").
        """
        if language not in _TEST_MESSAGE:
            raise ValueError(f"unknown language {language!r}, expected one of zh, en")
        title, body = _TEST_MESSAGE[language]
        return [(t.shown, self._deliver(t, title, body, "info")[1])
                for t in self._targets.values()]

    def _deliver(self, target: _Target, title: str, body: str,
                 severity: str) -> tuple[str, Delivery]:
        """(Apprise's status, outcome) of sending to one target; never raises."""
        apprise = self._apprise_mod
        own_apprise_logging()  # something (the CLI) may have silenced it since
        try:
            result = target.single.notify(
                body=body,
                title=title,
                body_format=apprise.NotifyFormat.TEXT,  # email is HTML by default: newlines
                notify_type=_NOTIFY_TYPE.get(severity, "info"),
                tag=apprise.common.MATCH_ALL_TAG,  # routing was done: this target it is
                timeout=self.timeout,
                log_level=logging.DEBUG,  # the socket error says *why* a connection failed
            )
        # apprise is documented not to raise; if a bug makes it, the worker must not die
        except Exception as exc:  # noqa: BLE001
            detail = self.redact(f"{target.shown}: apprise raised {exc!r}")
            return "FAILURE", Delivery(False, True, _cut(detail))
        status = result.status.name
        try:
            if status == "SUCCESS":
                return status, Delivery(True, False, f"delivered to {target.shown}")
            delivery = self._failure(target, result)
        finally:
            result.close()
        log.warning("notification not delivered: %s", delivery.detail)
        return status, delivery

    def _failure(self, target: _Target, result: Any) -> Delivery:
        status = result.status.name
        recoverable = True
        reasons = []
        for service in result:  # one service: this target's
            attempts = service.attempts
            entries = attempts[-1].logs if attempts else service.logs()
            reason, recoverable = explain_failure(entries, service.status.name)
            reasons.append(reason)
        if status == "NOMATCH":  # nothing to send to: it will not change by retrying
            recoverable, reasons = False, ["apprise found nothing to send to"]
        warnings = messages(result.call_logs(), logging.WARNING)
        reason = "; ".join(reasons + warnings) or "apprise reported no reason"
        detail = f"{target.shown} {status}: {self.redact(reason)}"
        if result.timeout_count:
            # Apprise abandons a slow call but its thread keeps going: it may still arrive.
            detail += " (a timed-out message may still arrive)"
        return Delivery(False, recoverable, _cut(detail))

    def redact(self, text: str) -> str:
        """Replace every known secret of the configured targets in `text` with ****."""
        return scrub(text, self._secrets)


def _cut(detail: str) -> str:
    return detail if len(detail) <= _DETAIL_MAX else detail[: _DETAIL_MAX - 1] + "…"
