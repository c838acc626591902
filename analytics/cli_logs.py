"""``edgeproof logs``: summarize CloudFront logs, convert them to Parquet, generate synthetic ones."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from edgeproof.errors import UsageError

__all__ = ["register"]

_INPUT_HELP = "log files, folders, globs or s3://bucket/prefix (AWS_ENDPOINT_URL is honoured)"
_FORMAT_HELP = (
    "input format: auto (detect per file), w3c (standard/legacy logs, any #Fields set), realtime "
    "(Kinesis TSV records), json (standard logging v2 JSON lines), parquet (v2 Parquet)"
)


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help=_INPUT_HELP)
    p.add_argument("--from", dest="start", metavar="T",
                   help="only requests at or after T (UTC, ISO 8601: 2024-05-01 or 2024-05-01T13:00Z); "
                        "S3 keys and files named DIST.YYYY-MM-DD-HH.* outside the range are not read")
    p.add_argument("--to", dest="end", metavar="T", help="only requests before T (UTC, exclusive)")
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=("auto", "w3c", "realtime", "json", "parquet"), help=_FORMAT_HELP)
    p.add_argument("--realtime-fields", metavar="F1,F2,...",
                   help="the fields present in real-time records, comma-separated, in AWS's canonical "
                        "order (default: guessed from the field count: all 46, 45 without s-ip, or the 40 of 2020)")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 2) on the first file with a bad line instead of counting it")


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``summarize``, ``convert`` and ``synth`` to the ``logs`` group."""
    sub = parser.add_subparsers(dest="logs_command", metavar="SUBCOMMAND")

    s = sub.add_parser(
        "summarize", help="hit rate, excluded requests, bytes and latency percentiles of CloudFront logs",
        description=(
            "Read CloudFront logs (standard/legacy W3C of any historical field set, real-time TSV, "
            "v2 JSON or Parquet; .gz or plain) and print the hit rate — (Hit+RefreshHit) / "
            "(Hit+RefreshHit+Miss+OriginShieldHit) over GET/HEAD — the excluded requests by reason, "
            "bytes, and time-taken / time-to-first-byte percentiles (p50 p90 p99 p99.9, ≤1% relative "
            "error) overall, for hits and for misses. Bad lines are counted and shown as file:line: reason."
        ),
    )
    _add_read_options(s)
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.add_argument("--by", choices=("pop", "hour", "day", "content-type", "status", "result-type"),
                   help="also break the summary down by this key (the 'groups' object in --json)")
    s.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="cores to use (default 0 = all): with several files, N worker processes; with one "
                        ".gz file, decompression in a second thread; 1 = strictly sequential")
    s.set_defaults(func=_summarize)

    c = sub.add_parser(
        "convert", help="convert logs to a Parquet dataset partitioned by date (for notebooks)",
        description="Read logs like 'summarize' does and write them as a Parquet dataset in the one "
                    "log schema, hive-partitioned by UTC date (DIR/date=YYYY-MM-DD/part-*.parquet).",
    )
    _add_read_options(c)
    c.add_argument("--out", required=True, metavar="DIR", help="output folder (created; new files are added)")
    c.set_defaults(func=_convert)

    g = sub.add_parser(
        "synth", help="write deterministic synthetic image-CDN standard logs (hourly .gz files)",
        description="Generate realistic 33-field CloudFront standard logs for an image CDN: Zipf "
                    "popularity over SKUs, noisy query strings, several POPs, a chosen hit rate per day. "
                    "Files are named DIST.YYYY-MM-DD-HH.UNIQUE.gz like CloudFront's.",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--start", default="2024-05-01", metavar="T", help="first hour (UTC; default 2024-05-01)")
    g.add_argument("--days", type=float, default=7, help="how many days (default 7)")
    g.add_argument("--requests-per-hour", type=int, default=2000, metavar="N", help="requests per hour (default 2000)")
    g.add_argument("--hit-rate", default="0.92", metavar="R[,R...]",
                   help="hit rate among cacheable requests; a comma list gives one per day, cycling (default 0.92)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    g.set_defaults(func=_synth)



def _read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"fmt": args.fmt, "realtime_fields": args.realtime_fields, "start": args.start, "end": args.end,
            "strict": args.strict}


def _summarize(args: argparse.Namespace) -> int:
    from analytics.inputs import keep_freed_buffers
    from analytics.summary import summarize

    keep_freed_buffers()
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (all cores) or more")
    result = summarize(args.paths, by=args.by, jobs=args.jobs or None, **_read_kwargs(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_summary(result))
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def format_summary(r: dict[str, Any]) -> str:
    """The human-readable table for a summary dict."""
    lines = [
        f"files          {r['files']}   ({r['first'] or '-'} .. {r['last'] or '-'})",
        f"requests       {r['requests']}",
        f"hit rate       {_pct(r['hit_rate'])}   ({r['hits']} hits / {r['cacheable']} cacheable GET/HEAD; "
        f"{r['misses']} misses)",
        "excluded       " + (", ".join(f"{k} {v}" for k, v in r["excluded"].items() if v) or "none"),
        f"bytes          {_bytes(r['bytes'])}",
        "",
        f"{'latency (ms)':<22}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}",
    ]
    for metric, label in (("time_taken", "time-taken"), ("ttfb", "time-to-first-byte")):
        for kind in ("overall", "hit", "miss"):
            q = r["latency_ms"][metric][kind]
            name = f"{label} {kind}" if kind != "overall" else label
            lines.append(f"{name:<22}" + "".join(f"{_ms(q[k]):>9}" for k in ("p50", "p90", "p99", "p999")))
    if "groups" in r:
        lines += ["", f"{'by ' + r['by']:<24}{'requests':>10}{'hit rate':>10}{'excluded':>10}{'p50 ms':>9}{'p99 ms':>9}"]
        for key, g in r["groups"].items():
            q = g["latency_ms"]["time_taken"]["overall"]
            lines.append(
                f"{key[:24]:<24}{g['requests']:>10}{_pct(g['hit_rate']):>10}{sum(g['excluded'].values()):>10}"
                f"{_ms(q['p50']):>9}{_ms(q['p99']):>9}"
            )
    lines += ["", f"bad lines      {r['bad_lines']}"]
    lines += [f"  {ex}" for ex in r["bad_line_examples"]]
    lines += [f"  file error: {e}" for e in r.get("file_errors", [])[:10]]
    return "\n".join(lines)


def _convert(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from analytics.inputs import keep_freed_buffers
    from analytics.reader import read_logs

    keep_freed_buffers()
    stream = read_logs(args.paths, **_read_kwargs(args))
    schema = stream.schema.append(pa.field("date", pa.string()))
    counts = {"rows": 0}
    dates: set[str] = set()

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in stream:
            day = pc.strftime(batch.column("timestamp"), format="%Y-%m-%d")
            dates.update(pc.unique(day).to_pylist())
            counts["rows"] += batch.num_rows
            yield pa.RecordBatch.from_arrays([*batch.columns, day], schema=schema)

    os.makedirs(args.out, exist_ok=True)
    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches()), args.out, format="parquet",
        partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
        basename_template=f"part-{uuid.uuid4().hex[:8]}-{{i}}.parquet",
    )
    print(f"wrote {counts['rows']} rows from {len(stream.files)} files to {args.out} "
          f"({len(dates)} date partitions)")
    if stream.bad_lines:
        print(f"bad lines: {stream.bad_lines}", file=sys.stderr)
        for ex in stream.bad_line_examples:
            print(f"  {ex}", file=sys.stderr)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from analytics.reader import parse_time
    from analytics.synthetic import generate_logs

    try:
        rates = [float(x) for x in str(args.hit_rate).split(",") if x.strip()]
    except ValueError as err:
        raise UsageError(f"bad --hit-rate {args.hit_rate!r}", detail="numbers between 0 and 1") from err
    if not rates or any(not 0 <= r <= 1 for r in rates):
        raise UsageError(f"bad --hit-rate {args.hit_rate!r}", detail="numbers between 0 and 1")
    if args.requests_per_hour < 0 or args.days <= 0:
        raise UsageError("--days must be positive and --requests-per-hour not negative")
    start = parse_time(args.start) or datetime(2024, 5, 1, tzinfo=UTC)
    first_day = start.date()

    def rate(day: Any) -> float:
        return rates[(day - first_day).days % len(rates)]

    paths = generate_logs(args.out, start, round(args.days * 24), args.requests_per_hour, rate, args.seed)
    print(f"wrote {len(paths)} hourly files ({len(paths) * args.requests_per_hour} requests) to {args.out}")
    return 0
