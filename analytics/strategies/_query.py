"""Query-string building blocks shared by every strategy (and mirrored, byte for byte, in the JS export).

The decoding is deliberately our own, not :func:`urllib.parse.unquote`: it must be reproducible in a
CloudFront Function. ``+`` is a space; ``%XX`` below ``0x80`` is that ASCII character; ``%XX`` at or
above ``0x80`` becomes U+FFFD (no parameter value we accept is non-ASCII, so nothing is lost); a ``%``
not followed by two hex digits stays as it is.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "pct_decode", "pct_encode", "split_query", "strip_ws", "name_matches"]

REPLACEMENT = "\ufffd"
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
#: exactly the ASCII characters Python's str.strip() removes (the JS template strips the same set)
_WS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _sub(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    return chr(code) if code < 0x80 else REPLACEMENT


def pct_decode(text: str) -> str:
    """Decode ``+`` and ``%XX`` (see the module docstring)."""
    if "%" not in text and "+" not in text:
        return text
    return _PCT.sub(_sub, text.replace("+", " "))


def pct_encode(text: str) -> str:
    """Percent-encode everything but ``A-Z a-z 0-9 - . _ ~`` (UTF-8, upper-case hex)."""
    if all(c in _SAFE for c in text):
        return text
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def strip_ws(text: str) -> str:
    """Trim ASCII whitespace (the same set as ``str.strip()`` for ASCII text)."""
    return text.strip(_WS)


def split_query(query: str) -> list[tuple[str, str]]:
    """A raw query string → ``[(raw_name, raw_value), ...]`` in order; empty segments are skipped.

    A segment without ``=`` has the value ``""`` (CloudFront's event shape does the same).
    """
    if not query:
        return []
    pairs = []
    for segment in query.split("&"):
        if segment:
            name, _, value = segment.partition("=")
            pairs.append((name, value))
    return pairs


def name_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """``name`` equals a pattern, or starts with a pattern's prefix when the pattern ends in ``*``."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False
