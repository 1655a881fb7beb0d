"""`qywx://KEY`: a WeCom (企业微信) group-bot sender that confirms delivery.

Apprise's own `wecombot://` checks only the HTTP status, so a wrong key, rate limiting or an
over-long message (WeCom answers 200 with `errcode` != 0) counts as delivered and the alert is
lost. This sender reads `errcode`, reports anything but 0 as a failure (so the outbox retries),
and cuts the content by UTF-8 bytes to WeCom's limit, never inside a character.

It posts markdown (msgtype markdown, 4096 bytes): the title as a bold first line, then the body
as rendered for the `wecom` channel (agent.notify.templating), whose values are escaped.
`?format=text` makes it post plain text instead (msgtype text, 2048 bytes), rendered for the
`text` channel: for clients or gateways that show markdown as its raw characters.

URL: `qywx://KEY` with the bot's webhook key (企业微信; Apprise already gives `wecom://` to
Pushplus). Options: `?rto=SECONDS` read timeout, `?endpoint=URL` another webhook address (a
proxy, or a local test server), `?format=text` plain text.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from agent.notify.markup import WECOM_MARKDOWN_LIMIT, wecom_content
from agent.notify.render import truncate_utf8

log = logging.getLogger(__name__)

SCHEME = "qywx"
ENDPOINT = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
TEXT_LIMIT = 2048  # bytes of UTF-8, WeCom's limit for msgtype text


def is_text_mode(query: Mapping[str, Any]) -> bool:
    """True when a target's URL options (`?format=text`) ask for plain text, not markdown."""
    return str(query.get("format") or "").strip().lower() == "text"


def post(key: str, content: str, endpoint: str = ENDPOINT, timeout: float = 10.0,
         markdown: bool = False) -> str | None:
    """Send one message (markdown or text); None when WeCom confirmed it, else why not
    (secret-free). The content is cut to the message type's byte limit."""
    url = f"{endpoint}?{urllib.parse.urlencode({'key': key})}"
    kind, limit = ("markdown", WECOM_MARKDOWN_LIMIT) if markdown else ("text", TEXT_LIMIT)
    payload = {"msgtype": kind, kind: {"content": truncate_utf8(content, limit)}}
    req = urllib.request.Request(url, data=json.dumps(payload, ensure_ascii=False).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (https/http only)
            reply = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable: {type(reason).__name__}"
    except ValueError:
        return "reply is not JSON"
    if not isinstance(reply, dict) or reply.get("errcode") != 0:
        code = reply.get("errcode") if isinstance(reply, dict) else None
        msg = str(reply.get("errmsg", ""))[:120] if isinstance(reply, dict) else ""
        return f"WeCom refused the message: errcode {code} {msg}".strip()
    return None


def config_problem(meta: Mapping[str, Any]) -> str | None:
    """What makes a qywx:// target (its parsed URL, Apprise's `meta`) unusable, or None."""
    if not meta.get("host"):
        return "qywx:// needs the bot key: qywx://KEY"
    endpoint = str((meta.get("qsd") or {}).get("endpoint") or ENDPOINT)
    if not endpoint.startswith(("https://", "http://")):
        return "qywx:// endpoint must be an http(s) URL"
    return None


def _plugin_url(self: Any, privacy: bool = False, *args: Any, **kwargs: Any) -> str:
    """The target's URL, key and options (Apprise's decorator plugins rebuild only
    `qywx://`, which would make every WeCom bot one target); privacy hides the key whole."""
    meta = self._default_args
    key = "****" if privacy else urllib.parse.quote(str(meta.get("host") or ""), safe="")
    query = urllib.parse.urlencode(meta.get("qsd") or {})
    return f"{SCHEME}://{key}" + (f"?{query}" if query else "")


def register() -> None:
    """Make `qywx://` known to Apprise (idempotent)."""
    from apprise.decorators import notify
    from apprise.manager_plugins import NotificationManager

    if getattr(register, "done", False):
        return

    @notify(on=SCHEME, name="WeCom group bot (confirmed)")
    def _send(body: str, title: str, notify_type: Any, meta: dict, *args: Any,
              **kwargs: Any) -> bool:
        problem = config_problem(meta)
        if problem:
            log.warning("%s", problem)
            return False
        key = meta.get("host") or ""
        qsd = meta.get("qsd") or {}
        endpoint = qsd.get("endpoint") or ENDPOINT
        try:
            timeout = float(qsd.get("rto", 10))
        except ValueError:
            timeout = 10.0
        markdown = not is_text_mode(qsd)
        if markdown:
            content = wecom_content(title, body)
        else:
            content = f"{title}\n{body}" if title else body
        problem = post(key, content, endpoint, timeout, markdown)
        if problem:
            log.warning("wecom delivery failed: %s", problem)
            return False
        return True

    NotificationManager()[SCHEME].url = _plugin_url
    register.done = True  # type: ignore[attr-defined]
