"""Log traffic sent again: drive the load from a real CloudFront log's request sequence, time-scaled.

("Traffic" here: the load test sends a logged request sequence again. The "replay" of
:mod:`edgeproof.analytics.replay` is the cache simulation that predicts a strategy's hit rate.)

:func:`prepare_traffic` runs in the *parent* process (``edgeproof loadtest run --replay LOG`` or
``edgeproof loadtest prepare-traffic``): it reads the log with :func:`edgeproof.analytics.reader.read_logs` (any
format, file/folder/``s3://``) and writes a compact Parquet file, :data:`TRAFFIC_SCHEMA`, sorted by time.
The Locust process only reads that file (:func:`load_traffic`), so it never imports boto3.

Only GET/HEAD requests are kept. ``offset_s`` is seconds from the first kept request; the Locust side
divides it by the speed (log seconds per test second; 0 = fit the log into the run's duration).
``Accept`` is not in CloudFront logs: it is inferred from the logged content type (an AVIF response came
from an AVIF-capable browser, and so on). The POP hint is the log's POP, numbered in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from edgeproof.errors import ConfigError

__all__ = ["TRAFFIC_SCHEMA", "TrafficPlan", "accept_for", "load_traffic", "prepare_traffic"]

TRAFFIC_SCHEMA = pa.schema([
    pa.field("offset_s", pa.float64()),
    pa.field("url", pa.string()),
    pa.field("accept", pa.string()),
    pa.field("user_agent", pa.string()),
    pa.field("pop", pa.int32()),
])

_ACCEPT = {
    "image/avif": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
    "image/webp": "image/webp,image/*,*/*;q=0.8",
}


def accept_for(content_type: str | None) -> str:
    """An ``Accept`` header consistent with the logged response content type."""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    return _ACCEPT.get(ct, "image/jpeg,image/png,image/*;q=0.8,*/*;q=0.5")


def prepare_traffic(paths: Sequence[str] | str, dest: str | Path, *, max_requests: int = 2_000_000) -> int:
    """Read CloudFront logs and write the compact replay file; returns the number of requests kept.

    Reads record batches (bounded memory while parsing); the kept columns are small and sorted in
    memory, so the request count is capped at ``max_requests`` (the earliest ones are kept).
    """
    from edgeproof.analytics.reader import read_logs  # parent process only (may import boto3 for s3://)

    inputs = [paths] if isinstance(paths, str) else list(paths)
    cols: dict[str, list] = {"ts": [], "url": [], "accept": [], "user_agent": [], "pop": []}
    wanted = ["timestamp", "cs_method", "cs_uri_stem", "cs_uri_query", "cs_user_agent", "sc_content_type",
              "x_edge_location"]
    batches: Iterable = read_logs(inputs, columns=wanted)
    for batch in batches:
        names = batch.schema.names
        data = {n: batch.column(names.index(n)).to_pylist() for n in wanted if n in names}
        for i, ts in enumerate(data.get("timestamp", [])):
            method = (data["cs_method"][i] or "GET").upper() if "cs_method" in data else "GET"
            stem = data["cs_uri_stem"][i] if "cs_uri_stem" in data else None
            if ts is None or not stem or method not in ("GET", "HEAD"):
                continue
            query = data["cs_uri_query"][i] if "cs_uri_query" in data else None
            cols["ts"].append(ts)
            cols["url"].append(stem if not query or query == "-" else f"{stem}?{query}")
            cols["accept"].append(accept_for(data["sc_content_type"][i] if "sc_content_type" in data else None))
            cols["user_agent"].append((data["cs_user_agent"][i] if "cs_user_agent" in data else None) or "-")
            cols["pop"].append((data["x_edge_location"][i] if "x_edge_location" in data else None) or "")
        if len(cols["ts"]) >= max_requests * 2:
            _trim(cols, max_requests)
    _trim(cols, max_requests)
    if not cols["ts"]:
        raise ConfigError("the replay log holds no GET/HEAD requests", detail=", ".join(inputs))
    t0 = cols["ts"][0]
    pops = {p: i for i, p in enumerate(sorted(set(cols["pop"])))}
    table = pa.table({
        "offset_s": [(t - t0).total_seconds() for t in cols["ts"]],
        "url": cols["url"],
        "accept": cols["accept"],
        "user_agent": cols["user_agent"],
        "pop": [pops[p] for p in cols["pop"]],
    }, schema=TRAFFIC_SCHEMA)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dest, compression="zstd")
    return table.num_rows


def _trim(cols: dict[str, list], limit: int) -> None:
    """Sort by time (stable: log order kept for equal timestamps) and keep the first ``limit``."""
    order = sorted(range(len(cols["ts"])), key=cols["ts"].__getitem__)[:limit]
    for k in cols:
        v = cols[k]
        cols[k] = [v[i] for i in order]


class TrafficPlan:
    """The replay file, time-scaled: ``arrivals()`` yields (offset, url, accept, user_agent, pop)."""

    def __init__(self, path: str | Path, duration: float | None, speed: float = 0.0) -> None:
        self.table = load_traffic(path)
        offsets = self.table.column("offset_s").to_pylist()
        span = offsets[-1] if offsets else 0.0
        if speed > 0:
            self.speed = speed
        elif duration and span > 0:
            self.speed = span / duration * (1 - 1e-9)
        else:
            self.speed = 1.0
        self.duration = span / self.speed if span > 0 else (duration or 1.0)

    def __len__(self) -> int:
        return self.table.num_rows

    def arrivals(self) -> Iterable[tuple[float, str, str, str, int]]:
        cols = [self.table.column(n).to_pylist() for n in TRAFFIC_SCHEMA.names]
        for off, url, accept, ua, pop in zip(*cols, strict=True):
            yield off / self.speed, url, accept, ua, pop


def load_traffic(path: str | Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise ConfigError(f"cannot read replay file {path}: {err}") from err
    if not set(TRAFFIC_SCHEMA.names) <= set(table.schema.names):
        raise ConfigError(f"{path} is not a replay file", detail="make one with 'edgeproof loadtest prepare-traffic'")
    return table.select(TRAFFIC_SCHEMA.names)
