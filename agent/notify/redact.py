"""Keeping secrets out of what operators see: masked target URLs, scrubbed text and logs.

`mask_for_display(url)` is how a notify URL is shown, everywhere.  Every path segment and
query value of a configured URL (from a length on), user names and passwords count as
secrets. Apprise's own logger and the HTTP libraries' loggers, which quote request URLs, get
a filter that scrubs the secrets of every live sender.  Imports only the standard library
(Apprise lazily, when a URL is shown), so the config loader can use it cheaply.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import re
import threading
import urllib.parse
import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)

_MASK = "****"
# Path segments, query values and parts Apprise hides in its privacy URL are secrets from
# this length on: shorter ones (`hook`, `send`, `0.5`) stay readable, and masking them in
# free text would mangle it.
_MIN_SECRET = 6
_MIN_CREDENTIAL = 3  # user names and passwords are scrubbed from this length on

_APPRISE_LOGGER = "apprise"
# Loggers that quote request URLs.  A logger's filters see only records logged to that very
# logger (not its children's), so each is named.
_URL_LOGGERS = (
    _APPRISE_LOGGER,
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.util.retry",
    "requests",
)
# This project's Apprise plugins log their failure reasons under their own module name.
_PLUGIN_LOGGERS = ("agent.notify.wecom", "agent.notify.alertmanager")


def _split_url(url: str) -> tuple[str | None, str, str, str, str]:
    """(scheme or None, user info, host[:port], path, query) of an Apprise URL, leniently:
    Apprise URLs are not always RFC 3986 (tokens, `#channel` paths)."""
    head, sep, rest = url.partition("://")
    scheme: str | None = head
    if not sep:
        scheme, rest = None, url
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, host = netloc.rpartition("@")
    return scheme, userinfo, host, path, query


def mask_url(url: str, secrets: Collection[str] = ()) -> str:
    """`url` with credentials and long (or known secret) path segments masked, no query."""
    scheme, userinfo, host, path, _ = _split_url(url)
    shown = f"{scheme}://" if scheme is not None else ""
    shown += f"{_MASK}@{host}" if userinfo else host
    segments = [_MASK if len(s) >= _MIN_SECRET or s in secrets else s for s in path.split("/")]
    path = "/".join(segments).rstrip("/")
    return f"{shown}/{path}" if path else shown


def mask_for_display(url: str) -> str:
    """A notify URL as every operator-facing place shows it (check, status, logs, errors).

    Scheme, host, port and path segments shorter than 6 characters stay readable; user
    names, passwords, longer path segments and every part Apprise calls secret read ****;
    the query is dropped.  A URL Apprise can load is masked from the privacy URL its plugin
    builds (which knows where each service keeps its tokens); one it cannot load keeps only
    its scheme, a host that is surely a host name or address, a port and short segments.
    Imports Apprise on first use, not on import.
    """
    service = _instantiate(url)
    return display_target(service, url) if service is not None else _mask_unloadable(url)


def display_target(service: Any, url: str) -> str:
    """`mask_for_display(url)` for a target already loaded from `url` (its text as
    configured; for a config-file target, its full URL), without loading it again."""
    secrets = collect_secrets([service], [(url, [service])])
    return mask_url(_safe_private_url(service), secrets)


def _instantiate(url: str) -> Any:
    if "://" not in url:
        return None
    import apprise

    own_apprise_logging()  # what Apprise logs here quotes the URL: mask it whole, keep it in
    loading = LOADING.set(True)
    try:
        return apprise.Apprise.instantiate(url.strip(), suppress_exceptions=True)
    except Exception:  # noqa: BLE001 - display must never fail
        return None
    finally:
        LOADING.reset(loading)


_HOST_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}", re.I)
_NETLOC = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*)(?::(\d{1,5}))?")


def _shown_host(host: str) -> str | None:
    """`host` (with its port) if it is surely a host name or address, else None: what an
    unloadable URL has in the host position may be a key (`wechat://KEY`)."""
    match = _NETLOC.fullmatch(host)
    if not match:
        return None
    name = match.group(1)
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        if name.lower() != "localhost" and not _HOST_NAME.fullmatch(name):
            return None
    return host


def _mask_unloadable(url: str) -> str:
    scheme, userinfo, host, path, _ = _split_url(url.strip())
    if scheme is None:
        return _MASK
    shown = f"{scheme}://{_MASK + '@' if userinfo else ''}{_shown_host(host) or _MASK}"
    return mask_url(f"{shown}/{path}" if path else shown)


def url_secrets(url: str) -> list[str]:
    """Every part of `url` as written that could be a secret, longest first, for scrubbing
    text about a URL Apprise could not load: the URL itself, credentials, path segments,
    query values and a host position `mask_for_display` would hide."""
    scheme, _, host, _, _ = _split_url(url.strip())
    found = _url_secrets(url)
    if url.strip().partition("://")[2 if scheme is not None else 0]:
        found.add(url.strip())  # quoted whole ("Unsupported URL: ...")
    if scheme is not None and host and _shown_host(host) is None:
        found |= _variants(host)
    return sorted((s for s in found if s.strip()), key=len, reverse=True)


_TOKEN_SPLIT = re.compile(r"[/:@?&=,+#\s]+")
_WORDS = re.compile(r"[\s,]+")
# Apprise's options common to every plugin (NotifyBase.template_args): their values
# (`overflow=upstream`, `format=markdown`, `tz=Asia/Shanghai`) are never secrets.
_GENERIC_ARGS = frozenset(
    "cto emojis format optional overflow redirect retry rto store tz verify wait".split()
)


def _variants(token: str) -> set[str]:
    """`token` as written, decoded and encoded: a log line may quote it any of these ways."""
    plain = urllib.parse.unquote(token)
    return {token, plain, urllib.parse.unquote_plus(token), urllib.parse.quote(plain, safe="")}


def _url_secrets(url: str) -> set[str]:
    """User name, password, path segments and query values of one URL."""
    _, userinfo, _, path, query = _split_url(url)
    found: set[str] = set()
    if userinfo:
        for credential in userinfo.split(":", 1):
            if len(credential) >= _MIN_CREDENTIAL:
                found |= _variants(credential)
    values = path.split("/")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if urllib.parse.unquote(key).lower() not in _GENERIC_ARGS:
            values.append(value)
    for value in values:
        for variant in _variants(value):
            # A header value such as "Bearer TOKEN": the token alone is a secret too.
            pieces = [variant, *_WORDS.split(variant)]
            found.update(piece for piece in pieces if len(piece) >= _MIN_SECRET)
    return found


def collect_secrets(services: Sequence[Any], loaded: Sequence[tuple[str, list[Any]]]) -> list[str]:
    """Every part of the configured URLs that could be a secret, longest first.

    From each raw URL string and each target's full URL (the only form of a config file's
    targets): user names, passwords, path segments and query values; and the parts Apprise
    hides in its privacy URL (keys, tokens of every plugin, found without knowing each
    plugin's attribute names), including a host it hides (`wecombot://KEY`).  What the
    targets show as their host is not secret, whatever repeats it (`smtp=HOST`, a user name
    `mail` of `mail.example.com`): masking it would hide where a delivery went.  Passwords
    are secret whatever they look like.
    """
    secrets: set[str] = set()
    passwords: set[str] = set()
    shown_hosts: set[str] = set()
    for service in services:
        try:
            full, private = service.url(privacy=False), service.url(privacy=True)
        except Exception:  # noqa: BLE001 - a plugin that cannot rebuild its URL
            log.debug("cannot list secrets of %s target", type(service).__name__)
            continue
        secrets |= _url_secrets(full)
        shown = set(_TOKEN_SPLIT.split(private))
        for token in _TOKEN_SPLIT.split(full):
            if len(token) >= _MIN_CREDENTIAL and token not in shown:
                secrets |= _variants(token)
        password = getattr(service, "password", None)
        for candidate in (password if isinstance(password, str) else "", _password(full)):
            if len(candidate) >= _MIN_CREDENTIAL:
                passwords |= _variants(candidate)
        shown_hosts.add(_split_url(private)[2].lower())
    for url, made in loaded:
        secrets |= _url_secrets(url)
        if len(_password(url)) >= _MIN_CREDENTIAL:
            passwords |= _variants(_password(url))
        host = _split_url(url)[2].rpartition(":")[0] or _split_url(url)[2]
        privates = [_safe_private_url(service) for service in made]
        if len(host) >= _MIN_CREDENTIAL and not any(host in p for p in privates):
            secrets |= _variants(host)  # a key in the host position, e.g. qywx://KEY
    secrets = {s for s in secrets if s.strip() and not any(s.lower() in h for h in shown_hosts)}
    secrets |= {p for p in passwords if p.strip()}
    # Longest first, so a secret containing another is replaced whole.
    return sorted(secrets, key=len, reverse=True)


def _password(url: str) -> str:
    return _split_url(url)[1].partition(":")[2]


def _safe_private_url(service: Any) -> str:
    try:
        return service.url(privacy=True)
    except Exception:  # noqa: BLE001 - a plugin that cannot rebuild its URL
        return ""


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


# --- logging --------------------------------------------------------------------------------


# True while a sender loads its URLs: Apprise's lines then have every URL masked whole.
LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar("notify_loading", default=False)
_ANY_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://[^\s'\"<>]*")


class _Scrubber(logging.Filter):
    """Rewrites a record with the secrets of every live sender masked (always lets it pass)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._by_owner: dict[int, tuple[str, ...]] = {}
        self._secrets: tuple[str, ...] = ()

    def register(self, owner: object, secrets: Sequence[str]) -> None:
        key = id(owner)
        with self._lock:
            self._by_owner[key] = tuple(secrets)
            self._rebuild()
        weakref.finalize(owner, self._forget, key)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._by_owner.pop(key, None)
            self._rebuild()

    def _rebuild(self) -> None:
        union = {s for secrets in self._by_owner.values() for s in secrets}
        self._secrets = tuple(sorted(union, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets  # one read: a sender may come or go meanwhile
        if not secrets and not LOADING.get():
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format: logging reports it itself
            return True
        clean = scrub(message, secrets)
        if LOADING.get():
            clean = _ANY_URL.sub(lambda m: f"{m.group(1)}://{_MASK}", clean)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
        return True


class _ToAppriseCapture(logging.Handler):
    """Hands our plugins' records to Apprise's logger, whose per-delivery capture keeps
    them as the reason a delivery failed (they also propagate to the log as usual)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(_APPRISE_LOGGER).handle(record)


SCRUBBER = _Scrubber()
_FORWARDER = _ToAppriseCapture()


def own_apprise_logging() -> None:
    """Apprise logs everything into its per-call capture, nothing to the application log.

    Idempotent and cheap: called before every send, since `invoice-agent` silences the
    `apprise` logger (which would leave the capture, and so the detail, empty).
    """
    apprise_log = logging.getLogger(_APPRISE_LOGGER)
    if apprise_log.level != logging.DEBUG:
        apprise_log.setLevel(logging.DEBUG)
    apprise_log.propagate = False  # apprise itself gives it a NullHandler: no last resort
    for name in _URL_LOGGERS:  # logging skips a filter or handler already there
        logging.getLogger(name).addFilter(SCRUBBER)
    for name in _PLUGIN_LOGGERS:
        logging.getLogger(name).addHandler(_FORWARDER)


class _ThreadCapture(logging.Handler):
    """Keeps (level, message) of the records one thread logs."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        super().__init__()
        self._lines = lines
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self._lines.append((record.levelno, record.getMessage()))


@contextlib.contextmanager
def capture_apprise_log() -> Iterator[list[tuple[int, str]]]:
    """Collect what Apprise logs in this thread inside the block, as (level, message), with
    every URL masked whole and live senders' secrets scrubbed (by the logger's filter, which
    runs before any handler): why it refused to load a URL is only in its log."""
    own_apprise_logging()
    lines: list[tuple[int, str]] = []
    handler = _ThreadCapture(lines)
    apprise_log = logging.getLogger(_APPRISE_LOGGER)
    apprise_log.addHandler(handler)
    loading = LOADING.set(True)
    try:
        yield lines
    finally:
        LOADING.reset(loading)
        apprise_log.removeHandler(handler)
