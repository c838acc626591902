"""CloudFront standard logs for the edge: buffered, gzipped in batches, one file per hour.

The request path only appends a tuple of raw values to a list (:meth:`LogSink.add`). A writer thread
takes the list every ``flush_interval`` seconds, turns it into columns keyed by
:data:`edgeproof.analytics.schema.LOG_SCHEMA` names, encodes them with :func:`edgeproof.analytics.writer.encode_columns`
(the one W3C writer, bulk form of ``encode_line``), and appends the batch to the hour's file as one complete gzip member. A file is
therefore readable (``gzip`` reads concatenated members) after every flush, and nothing buffered is
lost on shutdown: :meth:`LogSink.close` flushes the rest and uploads.

Files are named like CloudFront's, ``DIST.YYYY-MM-DD-HH.UNIQUE.gz`` (the hour of the requests in UTC,
``UNIQUE`` random per process and hour); each starts with the ``#Version: 1.0`` and ``#Fields:``
headers.

With ``realtime_dir``, the same batches are also written as CloudFront real-time log records ("Real-time
logs", real-time-logs.html): tab-separated, no header, AWS's canonical field order
(:data:`edgeproof.analytics.writer.REALTIME_LOG_FIELDS`, 40 fields, with ``cs-accept``, ``c-ip-version`` and
``cs-accept-encoding`` that standard logs lack), one record per line, in hourly gzipped files
``DIST.realtime.YYYY-MM-DD-HH.UNIQUE.gz`` — what a Kinesis Data Firehose delivery of the stream to S3
looks like, and what :func:`edgeproof.analytics.reader.read_logs` detects as real-time by content. With ``log_bucket`` (``s3://bucket/prefix``), each file is uploaded when its hour is over
(rotation), on :meth:`LogSink.flush` with ``upload=True`` and on close, through :mod:`edgeproof.s3`
(``AWS_ENDPOINT_URL`` honoured; one client per thread, so the writer thread reuses its own). A failed
upload is kept in ``upload_errors`` and tried again at the next flush; on close it is a
:class:`~edgeproof.errors.StoreError` naming the bucket and key.
"""

from __future__ import annotations

import gzip
import os
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeproof.analytics.schema import LEGACY_FIELDS_33
from edgeproof.analytics.writer import REALTIME_LOG_FIELDS, encode_columns, w3c_header

from edgeproof import s3
from edgeproof.errors import ConfigError, StoreError

__all__ = ["ROW_COLUMNS", "LogSink"]

#: The order of the values in a tuple given to :meth:`LogSink.add` (schema column names).
ROW_COLUMNS: tuple[str, ...] = (
    "timestamp", "x_edge_location", "sc_bytes", "c_ip", "cs_method", "cs_host", "cs_uri_stem",
    "sc_status", "cs_referer", "cs_user_agent", "cs_uri_query", "cs_cookie", "x_edge_result_type",
    "x_edge_request_id", "x_host_header", "cs_protocol", "cs_bytes", "time_taken", "x_forwarded_for",
    "x_edge_response_result_type", "cs_protocol_version", "c_port", "time_to_first_byte",
    "x_edge_detailed_result_type", "sc_content_type", "sc_content_len", "cs_accept", "cs_accept_encoding",
)

_ALNUM = string.ascii_uppercase + string.digits
#: log rows encoded per step of a flush (the writer thread yields the GIL between steps; see LogSink.flush)
_ENCODE_CHUNK = 500


@dataclass
class _HourFile:
    path: Path
    lines: int = 0
    uploaded_lines: int = -1


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create log folder {path}", detail=str(err)) from err


class LogSink:
    """Buffer log tuples; a thread encodes and gzips them into hourly files."""

    def __init__(
        self,
        log_dir: str | Path,
        distribution_id: str,
        *,
        log_bucket: str | None = None,
        flush_interval: float = 1.0,
        compresslevel: int = 3,
        realtime_dir: str | Path | None = None,
    ) -> None:
        self.dir = Path(log_dir)
        _mkdir(self.dir)
        self.realtime_dir = Path(realtime_dir) if realtime_dir is not None else None
        if self.realtime_dir is not None:
            _mkdir(self.realtime_dir)
        self._realtime_files: dict[str, Path] = {}
        self.realtime_lines_written = 0
        self.distribution_id = distribution_id
        self.flush_interval = flush_interval
        self.compresslevel = compresslevel
        self._log_url = s3.parse_s3_url(log_bucket) if log_bucket else None
        self.bucket = self._log_url.bucket if self._log_url else None
        self.prefix = self._log_url.prefix if self._log_url else ""
        self._buf: list[tuple[Any, ...]] = []
        self._files: dict[str, _HourFile] = {}
        self._lock = threading.Lock()  # one flush at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines_written = 0
        self.upload_errors: list[str] = []

    # -- request path ---------------------------------------------------------------------------
    def add(self, values: tuple[Any, ...]) -> None:
        """Queue one request's values, in :data:`ROW_COLUMNS` order (cheap: one list append)."""
        self._buf.append(values)

    @property
    def pending(self) -> int:
        return len(self._buf)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-log-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread, write everything buffered, upload every file. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush(upload=True)

    def files(self) -> list[Path]:
        return sorted(f.path for f in self._files.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception as err:  # never kill the writer thread; report and retry next time
                self.upload_errors.append(f"flush failed: {type(err).__name__}: {err}")

    # -- writing --------------------------------------------------------------------------------
    def flush(self, upload: bool = False) -> int:
        """Write what is buffered; returns the number of lines written. Thread-safe."""
        with self._lock:
            batch, self._buf = self._buf, []
            written = 0
            if batch:
                by_hour: dict[int, list[tuple[Any, ...]]] = {}
                for values in batch:
                    by_hour.setdefault(int(values[0] // 3_600_000), []).append(values)
                for hour_index in sorted(by_hour):
                    rows = by_hour[hour_index]
                    lines: list[str] = []
                    records: list[str] = []
                    for start in range(0, len(rows), _ENCODE_CHUNK):
                        if start:
                            # let the server's event loop take the GIL between chunks: one flush of
                            # ~12,000 lines is ~60 ms of Python, and the loop would wait up to the
                            # interpreter's 5 ms switch interval for it at a time (a hit's p99)
                            time.sleep(0)
                        part = rows[start:start + _ENCODE_CHUNK]
                        columns: dict[str, list[Any]] = {
                            c: list(v) for c, v in zip(ROW_COLUMNS, zip(*part, strict=True), strict=True)
                        }
                        columns["timestamp"] = [int(t) for t in columns["timestamp"]]
                        lines += encode_columns(columns, len(part), LEGACY_FIELDS_33)
                        if self.realtime_dir is not None:
                            columns["c_ip_version"] = ["IPv6" if ":" in ip else "IPv4" for ip in columns["c_ip"]]
                            columns["cache_behavior_path_pattern"] = ["*"] * len(part)  # the default behavior
                            records += encode_columns(columns, len(part), REALTIME_LOG_FIELDS)
                    hour = time.strftime("%Y-%m-%d-%H", time.gmtime(hour_index * 3600))
                    self._append(hour, lines)
                    written += len(lines)
                    if self.realtime_dir is not None:
                        self._append_realtime(hour, records)
                self.lines_written += written
            current = datetime.now(UTC).strftime("%Y-%m-%d-%H")
            for hour, hf in sorted(self._files.items()):
                # rotation: a past hour is complete; upload it once (again if lines came late)
                if self.bucket and hf.uploaded_lines != hf.lines and (upload or hour < current):
                    self._upload(hf)
            return written

    def _append(self, hour: str, lines: list[str]) -> None:
        hf = self._files.get(hour)
        header = ""
        if hf is None:
            unique = "".join(secrets.choice(_ALNUM) for _ in range(8))
            hf = _HourFile(self.dir / f"{self.distribution_id}.{hour}.{unique}.gz")
            self._files[hour] = hf
            header = w3c_header(LEGACY_FIELDS_33)
        data = (header + "\n".join(lines) + "\n").encode("utf-8")
        member = gzip.compress(data, compresslevel=self.compresslevel, mtime=0)
        with open(hf.path, "ab") as fh:
            fh.write(member)
            fh.flush()
            os.fsync(fh.fileno())
        hf.lines += len(lines)

    def _append_realtime(self, hour: str, records: list[str]) -> None:
        assert self.realtime_dir is not None
        path = self._realtime_files.get(hour)
        if path is None:
            unique = "".join(secrets.choice(_ALNUM) for _ in range(8))
            path = self._realtime_files[hour] = self.realtime_dir / f"{self.distribution_id}.realtime.{hour}.{unique}.gz"
        member = gzip.compress(("\n".join(records) + "\n").encode("utf-8"), compresslevel=self.compresslevel, mtime=0)
        with open(path, "ab") as fh:
            fh.write(member)
            fh.flush()
            os.fsync(fh.fileno())
        self.realtime_lines_written += len(records)

    def realtime_files(self) -> list[Path]:
        return sorted(self._realtime_files.values())

    def _upload(self, hf: _HourFile) -> None:
        assert self._log_url is not None
        key = self._log_url.join(hf.path.name)
        try:
            s3.upload_file(hf.path, self._log_url.bucket, key)
            hf.uploaded_lines = hf.lines
        except StoreError as err:
            self.upload_errors.append(err.message)
            if self._stop.is_set():
                raise
