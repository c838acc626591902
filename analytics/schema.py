"""The one typed schema every CloudFront log format is read into.

Column names are the W3C field names lower-cased with ``-``, ``(`` and ``)`` turned into ``_``
(``cs(User-Agent)`` → ``cs_user_agent``, ``x-edge-location`` → ``x_edge_location``), plus:

- ``timestamp``: UTC, millisecond precision (from ``date`` + ``time``, or the real-time epoch);
- ``pop``: the 3-letter POP code taken from ``x_edge_location`` (``IAD89-C1`` → ``IAD``);
- ``cs_user_agent_raw``: the user agent exactly as logged (before the one URL-decode), because
  2014–2019 logs double-encode it;
- ``c_country``, ``asn``, ``distribution_id``: present in real-time and v2 logs only;
- ``cs_accept``: the viewer's ``Accept`` header (real-time and v2 field ``cs-accept``; standard logs
  do not have it), kept because format negotiation (``f=auto``) keys on it.

Numbers are numbers (``-`` → null); strings are URL-decoded once; result types are kept as given.
Times (``time_taken``, ``time_to_first_byte``) stay in seconds, as CloudFront logs them.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "LEGACY_FIELDS_33",
    "LOG_SCHEMA",
    "NUMERIC_FIELDS",
    "W3C_TO_COLUMN",
    "column_name",
]

#: AWS's standard (legacy) log fields, in order, as of 2019-12-12 (33 fields).
LEGACY_FIELDS_33: tuple[str, ...] = (
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem",
    "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)", "x-edge-result-type",
    "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for",
    "ssl-protocol", "ssl-cipher", "x-edge-response-result-type", "cs-protocol-version", "fle-status",
    "fle-encrypted-fields", "c-port", "time-to-first-byte", "x-edge-detailed-result-type",
    "sc-content-type", "sc-content-len", "sc-range-start", "sc-range-end",
)


def column_name(w3c: str) -> str:
    """``cs(User-Agent)`` → ``cs_user_agent``."""
    name = w3c.strip().lower().replace("(", "_").replace(")", "").replace("-", "_")
    return name


W3C_TO_COLUMN: dict[str, str] = {f: column_name(f) for f in LEGACY_FIELDS_33}

LOG_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("x_edge_location", pa.string()),
        pa.field("pop", pa.string()),
        pa.field("sc_bytes", pa.int64()),
        pa.field("c_ip", pa.string()),
        pa.field("cs_method", pa.string()),
        pa.field("cs_host", pa.string()),
        pa.field("cs_uri_stem", pa.string()),
        pa.field("sc_status", pa.int32()),
        pa.field("cs_referer", pa.string()),
        pa.field("cs_user_agent", pa.string()),
        pa.field("cs_user_agent_raw", pa.string()),
        pa.field("cs_uri_query", pa.string()),
        pa.field("cs_cookie", pa.string()),
        pa.field("x_edge_result_type", pa.string()),
        pa.field("x_edge_request_id", pa.string()),
        pa.field("x_host_header", pa.string()),
        pa.field("cs_protocol", pa.string()),
        pa.field("cs_bytes", pa.int64()),
        pa.field("time_taken", pa.float64()),
        pa.field("x_forwarded_for", pa.string()),
        pa.field("ssl_protocol", pa.string()),
        pa.field("ssl_cipher", pa.string()),
        pa.field("x_edge_response_result_type", pa.string()),
        pa.field("cs_protocol_version", pa.string()),
        pa.field("fle_status", pa.string()),
        pa.field("fle_encrypted_fields", pa.string()),
        pa.field("c_port", pa.int32()),
        pa.field("time_to_first_byte", pa.float64()),
        pa.field("x_edge_detailed_result_type", pa.string()),
        pa.field("sc_content_type", pa.string()),
        pa.field("sc_content_len", pa.int64()),
        pa.field("sc_range_start", pa.int64()),
        pa.field("sc_range_end", pa.int64()),
        pa.field("c_country", pa.string()),
        pa.field("asn", pa.int64()),
        pa.field("distribution_id", pa.string()),
        pa.field("cs_accept", pa.string()),
    ]
)

NUMERIC_FIELDS: frozenset[str] = frozenset(
    f.name for f in LOG_SCHEMA if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
)
