"""``edgeproof logs``: summarize CloudFront logs, convert them to Parquet, generate synthetic ones."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NotRequired

from edgeproof.errors import UsageError

if TYPE_CHECKING:
    from edgeproof.analytics.reader_accounting import AccountingJSON, FileErrorJSON
    from edgeproof.analytics.summary import LogSummary

    class SummaryOutput(LogSummary):
        """What ``logs summarize`` prints: the summary, with ``--by hour|day`` the window's coverage."""

        coverage: NotRequired[dict[str, Any]]

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
                   help="fail (exit 2) at the first damaged file (a bad line or a file error) instead of "
                        "counting the damage")


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
            "error) overall, for hits and for misses. Every line is accounted for: per file, lines read = "
            "requests + bad lines; bad lines are shown as file:line: reason with an escaped excerpt, and "
            "damage that is not a line (not gzip, truncated/corrupt gzip, checksum error, not a log) as a "
            "file error. Exit status: 0 when something was read, 2 when no input could be read at all "
            "(or, with --strict, on any damage)."
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
                    "log schema, hive-partitioned by UTC date (DIR/date=YYYY-MM-DD/part-*.parquet). "
                    "Damage is accounted for as in 'summarize' (printed on stderr); exit 0 when something "
                    "was read, 2 when no input could be read at all.",
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
    from edgeproof.analytics.inputs import keep_freed_buffers
    from edgeproof.analytics.summary import summarize

    keep_freed_buffers()
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (all cores) or more")
    result: SummaryOutput = {**summarize(args.paths, by=args.by, jobs=args.jobs or None, **_read_kwargs(args))}
    if args.by in ("hour", "day") and result.get("groups") is not None:
        result["coverage"] = _coverage(result, args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_summary(result))
    return _exit_status(result["accounting"])


def _coverage(result: LogSummary, args: argparse.Namespace) -> dict[str, Any]:
    """Which hours (or days) of the window have no request: the window is --from/--to, else the data's
    own first to last hour, so a gap inside the logs is named (edgeproof.analytics.coverage)."""
    from edgeproof.analytics.coverage import DAY, HOUR, coverage, parse_stamp

    step = HOUR if args.by == "hour" else DAY
    have = [parse_stamp(k) for k in result.get("groups") or {}]
    start = parse_stamp(args.start) if args.start else (min(have) if have else None)
    end = parse_stamp(args.end) if args.end else (max(have) + step if have else None)
    if start is None or end is None:
        return {"complete": False, "missing": [], "note": "no request in the window"}
    return coverage(have, start, end, step).to_dict()


def _exit_status(acc: AccountingJSON) -> int:
    """0 when something was read; 2 (unreadable input) when nothing could be read at all."""
    if acc["readable"]:
        return 0
    what = (f"none of the {acc['files']} input file(s) could be read ({acc['file_errors']} file error(s), "
            f"{acc['bad_lines']:,} bad line(s))" if acc["files"] else "no log files found")
    print(f"edgeproof: error: {what}", file=sys.stderr)
    return 2


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


def format_summary(r: SummaryOutput) -> str:
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
    if "coverage" in r:
        cov = r["coverage"]
        if cov.get("missing"):
            lines += ["", f"coverage       {cov['hours_with_data']} of {cov['hours_expected']} hours have log data; "
                      "no data:"] + [f"  {g['label']}" for g in cov["missing"]]
        elif "hours_expected" in cov:
            lines += ["", f"coverage       every hour of the window has log data ({cov['hours_expected']} h)"]
    if "accounting" in r:
        lines += ["", *format_accounting(r["accounting"])]
    else:
        lines += ["", f"bad lines      {r['bad_lines']}"]
        lines += [f"  {ex}" for ex in r["bad_line_examples"]]
    return "\n".join(lines)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def format_accounting(acc: AccountingJSON, *, max_files: int = 20) -> list[str]:
    """The line accounting as text: totals, each damaged file, the first bad lines with excerpts."""
    out = [
        f"lines          {acc['lines']:,} read = {_n(acc['requests'], 'request')} + {_n(acc['bad_lines'], 'bad line')}"
        + (f"   (+{_n(acc['header_lines'], 'header line')})" if acc["header_lines"] else ""),
    ]
    if acc["in_range"] != acc["requests"]:
        out.append(f"               {acc['in_range']:,} of the requests are inside --from/--to")
    out.append(f"file errors    {acc['file_errors']}")
    damaged = [f for f in acc["per_file"] if f["bad_lines"] or f["errors"]]
    if damaged:
        out.append(f"damaged files  {len(damaged)} of {acc['files']}")
        for f in damaged[:max_files]:
            out.append(f"  {f['file']}: {f['lines']:,} lines read, {_n(f['requests'], 'request')}, "
                       f"{_n(f['bad_lines'], 'bad line')}")
            out += [f"      file error ({e['kind']}): {_error_text(e)}" for e in f["errors"]]
        if len(damaged) > max_files:
            out.append(f"  … and {len(damaged) - max_files} more (--json lists every file)")
    if acc["examples"]:
        out.append(f"bad lines      {acc['bad_lines']:,} (first {len(acc['examples'])}: file:line: reason, then the line)")
        for ex in acc["examples"]:
            where = f"{ex['file']}:{ex['line']}" if ex["line"] is not None else ex["file"]
            out.append(f"  {where}: {ex['reason']}")
            if ex["excerpt"]:
                out.append(f"      | {ex['excerpt']}")
    else:
        out.append(f"bad lines      {acc['bad_lines']:,}")
    return out


def _error_text(e: FileErrorJSON) -> str:
    lost = [f"{e[k]:,} {w}" for k, w in (("unread_bytes", "bytes"), ("unread_lines", "lines")) if e[k]]
    return e["message"] + (f" ({' and '.join(lost)} could not be read)" if lost else "")


def _convert(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from edgeproof.analytics.inputs import keep_freed_buffers
    from edgeproof.analytics.reader import read_logs
    from edgeproof.analytics.reader_accounting import accounting

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
    acc = accounting(stream.files)
    if acc["damaged_files"]:
        print("\n".join(format_accounting(acc)), file=sys.stderr)
    return _exit_status(acc)


def _synth(args: argparse.Namespace) -> int:
    from edgeproof.analytics.reader import parse_time
    from edgeproof.analytics.synthetic import generate_logs

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
