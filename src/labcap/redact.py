"""Secrets never leave labcap: the one place that strips them from URLs and text.

Every message, manifest field, report and journal line that may carry a URL or an
error text from outside goes through here: credentials and query strings come off
URLs (IPv6 hosts keep their brackets), known secrets and anything that looks like a
token are replaced, and reasons are capped in length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
REASON_MAX_CHARS = 300

# Long opaque strings (tokens, keys, certificates' base64) never reach a message.
_SECRETISH = re.compile(r"[A-Za-z0-9_\-\.]{32,}")
_TOKEN_FIELD = re.compile(r"(?i)(token|authorization|password)([\"':= ]+)[\w.-]{16,}")


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: no user, password, query or fragment (tokens
    travel there). A string that is not a URL gives ``?``."""
    parts = urlsplit(url or "")
    if not parts.scheme:
        return "?"
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a port that is not a number
        return f"{parts.scheme}://?"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str) -> str:
    """``text`` with every long opaque string (a token, a key) replaced."""
    return _SECRETISH.sub("<redacted>", text)


def redact(text: str, hidden: Iterable[str] = (), max_chars: int = REASON_MAX_CHARS) -> str:
    """``text`` with every known secret in ``hidden`` and every token-looking field value
    replaced, capped at ``max_chars``: safe to journal, print or report."""
    for secret in hidden:
        if secret:
            text = text.replace(secret, REDACTED)
    # tokens we never saw (e.g. echoed back by a server) still look like this
    text = _TOKEN_FIELD.sub(r"\1\2" + REDACTED, text)
    return text[:max_chars]
