"""Raw string columns (as logged) → typed columns of :data:`edgeproof.analytics.schema.LOG_SCHEMA`.

Every reader (W3C, real-time, v2 JSON/Parquet) ends here, so the typing rules live in one place:

- ``-`` (already null when it reaches this module) stays null; numbers are cast, and a value that is
  not a number makes its row *bad* (reported with the reason, never silently dropped);
- ``date`` + ``time`` (UTC) or an epoch in seconds (real-time, v2 ``timestamp``) or milliseconds
  (v2 ``timestamp(ms)``) → ``timestamp``; a missing or unparsable one makes the row bad;
- strings are URL-decoded once; ``cs_user_agent_raw`` keeps the user agent as logged;
- ``pop`` is the first three letters of ``x_edge_location``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics._arrow import scalar, to_numpy
from edgeproof.analytics.schema import LOG_SCHEMA, column_name

__all__ = ["Converted", "columns_needed", "convert", "field_column"]

_TS = pa.timestamp("ms", tz="UTC")
_SPECIAL = {
    "timestamp": "timestamp",  # epoch seconds (real-time logs, v2)
    "timestamp(ms)": "timestamp_ms",  # epoch milliseconds (v2)
    "distributionid": "distribution_id",
    "distribution-id": "distribution_id",
    "primary-distribution-id": "distribution_id",
    "cs-user-agent": "cs_user_agent",
    "c-country": "c_country",
}
_SCHEMA_NAMES = frozenset(LOG_SCHEMA.names)
_DERIVED = {"timestamp", "pop", "cs_user_agent_raw"}
_NO_DECODE = frozenset({"x_edge_request_id"})
_MAX_REASONS = 20
_FALSE = scalar(False, pa.bool_())
_TRUE = scalar(True, pa.bool_())
_EPOCH_DAY = scalar("1970-01-01T", pa.string())
_NO_SEP = scalar("", pa.string())


def field_column(name: str) -> str | None:
    """The schema column a logged field fills (``cs(Host)``/``cs-host`` → ``cs_host``), or None.

    ``date``/``time`` map to themselves and ``timestamp``/``timestamp_ms`` are epochs; the caller
    combines them into the ``timestamp`` column.
    """
    key = name.strip().lower()
    if key in _SPECIAL:
        return _SPECIAL[key]
    if key in ("date", "time"):
        return key
    col = column_name(key)
    return col if col in _SCHEMA_NAMES and col not in _DERIVED else None


def columns_needed(fields: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The logged fields to read so that ``columns`` can be filled (in ``fields`` order)."""
    want = set(columns)
    if "timestamp" in want:
        want |= {"date", "time", "timestamp", "timestamp_ms"}
    if "pop" in want:
        want.add("x_edge_location")
    if "cs_user_agent_raw" in want:
        want.add("cs_user_agent")
    return [f for f in fields if field_column(f) in want]


@dataclass
class Converted:
    """A typed batch plus the rows that were bad (indices into the raw input) and why."""

    batch: pa.RecordBatch
    bad_rows: np.ndarray  # int64 indices into the input rows
    reasons: dict[int, str] = field(default_factory=dict)  # for the first few bad rows


def _decode(arr: pa.Array) -> pa.Array:
    """URL-decode once, only the values that contain ``%`` (each distinct value decoded once)."""
    if arr.null_count == len(arr):
        return arr
    data = arr.buffers()[2] if isinstance(arr, pa.Array) and pa.types.is_string(arr.type) else None
    if data is not None and data.to_pybytes().find(b"%") < 0:  # no '%' byte at all: nothing to decode
        return arr
    mask = pc.fill_null(pc.match_substring(arr, "%"), _FALSE)
    if not pc.any(mask).as_py():
        return arr
    subset = arr.filter(mask).dictionary_encode()
    decoded = pa.array([unquote(v, errors="replace") for v in subset.dictionary.to_pylist()], pa.string())
    values = decoded.take(subset.indices)
    return pc.replace_with_mask(arr, mask, values)


def _mark(bad: np.ndarray, reasons: dict[int, str], rows: np.ndarray, why: str, raw: pa.Array) -> None:
    bad[rows] = True
    for i in rows[: _MAX_REASONS]:
        if len(reasons) >= _MAX_REASONS:
            break
        reasons.setdefault(int(i), f"{why} {raw[int(i)].as_py()!r}")


def _cast_number(arr: pa.Array, typ: pa.DataType, name: str, bad: np.ndarray, reasons: dict[int, str]) -> pa.Array:
    try:
        return pc.cast(arr, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    pattern = r"^-?\d+$" if pa.types.is_integer(typ) else r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
    ok = pc.fill_null(pc.match_substring_regex(arr, pattern), _TRUE)
    rows = np.nonzero(~ok.to_numpy(zero_copy_only=False))[0]
    _mark(bad, reasons, rows, f"unparsable {name}", arr)
    cleaned = pc.if_else(ok, arr, pa.scalar(None, pa.string()))
    try:
        return pc.cast(cleaned, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. overflow: give up on the column's odd rows
        return pa.nulls(len(arr), typ)


def _timestamp(raw: Mapping[str, pa.Array], n: int, bad: np.ndarray, reasons: dict[int, str]) -> pa.Array:
    if "date" in raw and "time" in raw:
        # few distinct dates and times per block: parse each distinct value once, then gather
        dates = raw["date"].dictionary_encode()
        times = raw["time"].dictionary_encode()
        day_ms = pc.strptime(dates.dictionary, format="%Y-%m-%d", unit="ms", error_is_null=True)
        tod_ms = pc.strptime(pc.binary_join_element_wise(_EPOCH_DAY, times.dictionary, _NO_SEP),
                             format="%Y-%m-%dT%H:%M:%S", unit="ms", error_is_null=True)
        d = pc.take(pc.cast(day_ms, pa.int64()), dates.indices)
        t = pc.take(pc.cast(tod_ms, pa.int64()), times.indices)
        ts = pc.cast(pc.add(d, t), _TS)
        src = None
    elif "timestamp_ms" in raw or "timestamp" in raw:
        ms_given = "timestamp_ms" in raw
        src = raw["timestamp_ms" if ms_given else "timestamp"]
        scratch = np.zeros(n, dtype=bool)
        secs = _cast_number(src, pa.float64(), "timestamp", scratch, {})
        vals = secs.to_numpy(zero_copy_only=False)
        vals = vals if ms_given else vals * 1000.0
        ts = pa.array(np.round(vals), pa.float64(), from_pandas=True)
        ts = pc.cast(pc.cast(ts, pa.int64()), _TS)
    else:
        _mark(bad, reasons, np.arange(n), "no date/time fields:", pa.nulls(n, pa.string()))
        return pa.nulls(n, _TS)
    missing = to_numpy(ts.is_null()) if ts.null_count else None
    if missing is not None:
        if src is None:
            src = pc.binary_join_element_wise(raw["date"], raw["time"], "T")
        _mark(bad, reasons, np.nonzero(missing)[0], "unparsable date/time", src)
    return pc.cast(ts, _TS)


def convert(raw: Mapping[str, pa.Array], n: int, columns: Sequence[str]) -> Converted:
    """Typed batch with ``columns`` (schema order) from ``raw``: column key → string array.

    ``raw`` keys are the names :func:`field_column` returns (``date``, ``time``, ``cs_host`` …).
    Missing columns are null. Bad rows are removed from the batch and listed in the result.
    """
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    decoded: dict[str, pa.Array] = {}
    for f in LOG_SCHEMA:
        if f.name not in columns:
            continue
        name = f.name
        if name == "timestamp":
            arr = _timestamp(raw, n, bad, reasons)
        elif name == "pop":
            loc = raw.get("x_edge_location")
            arr = pa.nulls(n, pa.string()) if loc is None else pc.utf8_slice_codeunits(loc, 0, 3)
        elif name == "cs_user_agent_raw":
            arr = raw.get("cs_user_agent", pa.nulls(n, pa.string()))
        elif name not in raw:
            arr = pa.nulls(n, f.type)
        elif f.type == pa.string():
            arr = raw[name] if name in _NO_DECODE else decoded.setdefault(name, _decode(raw[name]))
        else:
            arr = _cast_number(raw[name], f.type, name.replace("_", "-"), bad, reasons)
        arrays.append(arr)
        fields.append(f)
    batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
    bad_rows = np.nonzero(bad)[0]
    if bad_rows.size:
        batch = batch.filter(pa.array(~bad))
    return Converted(batch, bad_rows, reasons)
