"""WeCom markdown: keeping text taken from logs inert, and the content a group bot receives.

WeCom's group-bot markdown (msgtype markdown) knows headings (`#`), bold and italics (`*`),
links (`[text](url)`), inline code (`` ` ``), quotes (`>`), coloured text (`<font ...>`) and
mentions (`<@userid>`), and has no escape character: a backslash is shown, not obeyed. So a
value that came from a log line (a summary quoting an error message, an invoice number, a
label) has each metacharacter replaced by its full-width look-alike, which reads the same to a
person and means nothing to the renderer. URL schemes lose their `://` for the same reason, so
a log line cannot plant a link someone taps.

Only values are escaped (agent.notify.view does it for every value of an alert); the markup a
template writes itself stays markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# WeCom refuses markdown content over 4096 UTF-8 bytes (errcode 40058, in an HTTP 200 reply).
WECOM_MARKDOWN_LIMIT = 4096

_LOOK_ALIKES = str.maketrans({
    "*": "＊",  # bold, italics
    "`": "｀",  # inline code
    "[": "［", "]": "］",  # links, images
    "<": "＜", ">": "＞",  # <font>, <@userid>, quotes
    "@": "＠",  # @all, @userid
    "#": "＃",  # headings
    "&": "＆",  # entities that could decode to any of the above
    "\\": "＼",  # no escape character exists, but do not let one look like it works
})
# "http://x" is linked by WeCom clients even without [text](url) around it
_SCHEME = re.compile(r"(?i)(?<=[a-z0-9+.-])://")
_WWW = re.compile(r"(?i)\bwww\.")


def escape_wecom(text: str) -> str:
    """`text` as inert WeCom markdown: metacharacters replaced by full-width look-alikes,
    links broken, and line breaks turned into spaces (a value must not start a heading or a
    quote on a line of its own)."""
    text = " ".join(text.split()) if ("\n" in text or "\r" in text) else text
    text = text.translate(_LOOK_ALIKES)
    text = _SCHEME.sub("：//", text)
    return _WWW.sub("www．", text)


def escape_value(value: Any, escape: Any) -> Any:
    """`value` with `escape` applied to every string in it, through mappings and sequences;
    numbers, booleans and None are kept so templates can still format and compare them."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {escape(str(k)): escape_value(v, escape) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [escape_value(v, escape) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return escape(str(value))  # dates, decimals, anything else: as text


def wecom_content(title: str, body: str) -> str:
    """What a WeCom group bot in markdown mode receives for (title, body): the title as a bold
    first line (escaped: it is plain text), then the body as the template wrote it."""
    if not title:
        return body
    head = f"**{escape_wecom(title)}**"
    return f"{head}\n{body}" if body else head
