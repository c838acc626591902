"""Write CloudFront standard (legacy, W3C) log lines, exactly as CloudFront does.

Used by the edge emulator (``origin/edge``), the synthetic log generator and the tests. A row is a
mapping keyed by :data:`analytics.schema.LOG_SCHEMA` column names (``cs_uri_stem``,
``x_edge_result_type``, ``time_taken`` in seconds …) plus ``timestamp`` (an aware or naive-UTC
``datetime``, or epoch milliseconds). AWS's rules:

- fields are separated by one tab; a missing or empty value is ``-``;
- strings are URL-encoded (RFC 1738 unsafe bytes: controls, space, bytes ≥ 0x7f and
  ``" # % < > [ \\ ] ^ ` { | } ~``), so a value the client already percent-encoded appears
  double-encoded (``%2C`` → ``%252C``);
- ``date`` and ``time`` are UTC (``2019-12-04`` / ``21:02:31``);
- ``time-taken`` and ``time-to-first-byte`` are seconds with millisecond precision (``0.001``).

``cs_user_agent_raw``, when given, is written verbatim (it is already in logged form).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from analytics.schema import LEGACY_FIELDS_33, column_name

__all__ = ["encode_columns", "encode_line", "encode_value", "w3c_header"]

_UNSAFE = frozenset(b'"#%<>[\\]^`{|}~ ') | frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0x100))
_ENCODE_TABLE = [f"%{b:02X}" if b in _UNSAFE else chr(b) for b in range(256)]
_SECONDS_FIELDS = frozenset({"time-taken", "time-to-first-byte"})


def w3c_header(fields: Sequence[str] = LEGACY_FIELDS_33) -> str:
    """The two header lines CloudFront puts at the top of every standard log file."""
    return "#Version: 1.0\n#Fields: " + " ".join(fields) + "\n"


def encode_value(value: str) -> str:
    """URL-encode one string value the way CloudFront logs it (``''`` → ``-``)."""
    if not value:
        return "-"
    if value.isascii() and value.isprintable() and not any(c in value for c in '"#%<>[\\]^`{|}~ '):
        return value
    return "".join(_ENCODE_TABLE[b] for b in value.encode("utf-8"))


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return _timestamp(value.to_pydatetime())
    return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)


def _number(value: Any, seconds: bool) -> str:
    if seconds:
        return f"{float(value):.3f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode_line(row: Mapping[str, Any], fields: Sequence[str] = LEGACY_FIELDS_33) -> str:
    """One log line (no trailing newline) for ``row``, in the order of ``fields``.

    ``row`` is keyed by schema column names; ``date``/``time`` come from ``row["timestamp"]``
    unless given as strings. Unknown keys are ignored; missing fields are written as ``-``.
    """
    ts = row.get("timestamp")
    when = _timestamp(ts) if ts is not None else None
    out: list[str] = []
    for field in fields:
        if field == "date" and row.get("date") is None:
            out.append(when.strftime("%Y-%m-%d") if when else "-")
            continue
        if field == "time" and row.get("time") is None:
            out.append(when.strftime("%H:%M:%S") if when else "-")
            continue
        col = column_name(field)
        if col == "cs_user_agent" and row.get("cs_user_agent_raw") not in (None, ""):
            out.append(str(row["cs_user_agent_raw"]))
            continue
        value = row.get(col)
        if value is None or value == "":
            out.append("-")
        elif isinstance(value, bool):
            out.append(encode_value(str(value).lower()))
        elif isinstance(value, int | float):
            out.append(_number(value, field in _SECONDS_FIELDS))
        else:
            out.append(encode_value(str(value)))
    return "\t".join(out)


def _encode_column(field: str, values: Sequence[Any]) -> list[str]:
    cache: dict[Any, str] = {}
    seconds = field in _SECONDS_FIELDS
    out: list[str] = []
    for v in values:
        if v is None or v == "":
            out.append("-")
            continue
        if isinstance(v, float) and v != v:  # NaN
            out.append("-")
            continue
        if seconds:
            out.append(f"{float(v):.3f}")
            continue
        got = cache.get(v)
        if got is None:
            if isinstance(v, bool):
                got = encode_value(str(v).lower())
            elif isinstance(v, int | float | np.integer | np.floating):
                got = _number(v.item() if isinstance(v, np.generic) else v, False)
            else:
                got = encode_value(str(v))
            if len(cache) < 100_000:
                cache[v] = got
        out.append(got)
    return out


def encode_columns(
    columns: Mapping[str, Sequence[Any]], n: int, fields: Sequence[str] = LEGACY_FIELDS_33
) -> Iterator[str]:
    """Many log lines at once from columns (schema names → ``n`` values each); the same rules as
    :func:`encode_line`, faster for bulk writers. ``timestamp`` is epoch milliseconds (ints)."""
    encoded: list[Sequence[str]] = []
    ts = columns.get("timestamp")
    stamps = None
    if ts is not None:
        dt64 = np.asarray(ts, dtype="int64").astype("datetime64[ms]").astype("datetime64[s]").astype(str)
        stamps = [(s[:10], s[11:19]) for s in dt64]
    for field in fields:
        if field in ("date", "time") and stamps is not None and columns.get(field) is None:
            k = 0 if field == "date" else 1
            encoded.append([s[k] for s in stamps])
            continue
        col = column_name(field)
        if col == "cs_user_agent" and columns.get("cs_user_agent_raw") is not None:
            encoded.append([v if v else "-" for v in columns["cs_user_agent_raw"]])
            continue
        values = columns.get(col)
        encoded.append(["-"] * n if values is None else _encode_column(field, values))
    for parts in zip(*encoded, strict=True):
        yield "\t".join(parts)
