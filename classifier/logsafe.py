"""Text from outside (object names, message attributes, reasons that quote them) as it may go into a log line.

Object names are chosen by whoever uploads: a newline in one would forge a log line, an ANSI escape would
repaint an operator's terminal. `shown` keeps printable text as it is (accents included) and escapes the rest.
"""

from __future__ import annotations

import re

# Enough to recognise an object in a log; the full name is in BigQuery and the ledger.
MAX_SHOWN = 300
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


def _escape(ch: str) -> str:
    """repr escapes exactly the characters that str.isprintable rejects: \\n, \\x1b, \\u202e..."""
    return "\\\\" if ch == "\\" else repr(ch)[1:-1]


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """`value` with backslashes, control, format and separator characters (except space) escaped, as repr does."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in text)


def redacted_url(url: str) -> str:
    """A URL without its password (redis://:secret@host/0 -> redis://:***@host/0, and ?password=): start-up lines
    name the server, and logs are read by more people than may hold its password."""
    url = _USERINFO_PASSWORD.sub(r"\1***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", url)
