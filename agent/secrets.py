"""Secrets in the config: `${ENV}` in a notify URL, or `password_file:` beside it.

A secret never reaches a message, a log line, `status` or `check` output: problems name the
variable or the file, never its content; URLs are shown masked (agent/notify/redact.py).
"""

from __future__ import annotations

import logging
import stat
import urllib.parse
from pathlib import Path

log = logging.getLogger("invoice_agent")

MAX_SECRET_BYTES = 4096


def read_secret(path: str) -> tuple[str | None, str | None]:
    """(the secret in the file, None) or (None, why not): the first line, stripped. A file
    others may read is used, with a warning logged."""
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            return None, f"{path} is not a file"
        with open(p, "rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or type(exc).__name__}"
    if len(data) > MAX_SECRET_BYTES:
        return None, f"{path} is larger than {MAX_SECRET_BYTES} bytes: not a password file"
    text = data.decode("utf-8", errors="replace").splitlines()
    secret = text[0].strip() if text else ""
    if not secret:
        return None, f"{path} is empty"
    if st.st_mode & stat.S_IROTH:
        log.warning("%s is readable by every user; chmod 0640 (or 0600) it", path)
    return secret, None


def with_password(url: str, password: str) -> tuple[str | None, str | None]:
    """`url` with `password` as the password of its user (mailtos://ops@smtp ->
    mailtos://ops:PASSWORD@smtp), or (None, why not)."""
    parts = urllib.parse.urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    if not at or not user:
        return None, "password_file needs a user in the URL, e.g. mailtos://ops@smtp.example.cn"
    user = user.split(":", 1)[0]
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), None
