"""Optional HMAC-signed URLs, with several keys for rotation.

When the origin runs with one or more ``--signing-key``, every image request must carry
``?sig=HEX``: the lower-case hex HMAC-SHA256, under any one of the keys, of the request's
*signed message*:

- canonical form: the canonical request path, e.g. ``/images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp``
  (the path as the origin re-spells it, so op order and aliases do not matter);
- friendly form: the canonical path of the variant the query asks for, with ``f=auto`` in place of
  the format when the format is negotiated from ``Accept`` (so one signature serves every browser).

Rotation: start the origin with both the new and the old key (``--signing-key NEW --signing-key
OLD``), re-sign URLs with the new key, then drop the old one. ``edgeproof origin sign --key K URL``
prints a signed URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from edgeproof.canonical import PARAM_ALIASES, Variant, split_canonical
from edgeproof.errors import Forbidden

__all__ = ["format_negotiated", "signed_message", "sign", "verify"]


def format_negotiated(path: str, params: Mapping[str, str]) -> bool:
    """Whether the format of this request comes from ``Accept``: the friendly form without a format
    parameter or with ``format=auto`` (such responses also carry ``Vary: Accept``)."""
    if split_canonical(path) is not None:
        return False
    for name, value in params.items():
        if PARAM_ALIASES.get(name.strip().lower()) == "f" and value.strip().lower() not in ("", "auto"):
            return False
    return True


def signed_message(source_key: str, variant: Variant, *, negotiated: bool = False) -> str:
    """The message a signature covers (see the module docstring)."""
    path = variant.path(source_key)
    if negotiated:
        head, _, _fmt = path.rpartition(",f=")
        path = f"{head},f=auto"
    return path


def sign(message: str, key: str) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``."""
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify(message: str, signature: str | None, keys: Sequence[str]) -> None:
    """Raise Forbidden (403) unless ``signature`` is valid under one of ``keys``."""
    if not keys:
        return
    if not signature:
        raise Forbidden("missing signature", detail="signed URLs are required: add ?sig=HMAC-SHA256 hex")
    sig = signature.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sig):  # also keeps non-ASCII out of compare_digest
        raise Forbidden("bad signature", detail="sig must be 64 hex digits (HMAC-SHA256)")
    if not any(hmac.compare_digest(sign(message, key), sig) for key in keys):
        raise Forbidden("bad signature", detail="the signature does not match this request under any key")
