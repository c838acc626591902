"""``edgeproof report weekly``: the weekly hit-rate report (exit 0 when the week met its target, 1 if not)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

_WEEKLY_EPILOG = """\
examples:
  edgeproof report weekly --logs s3://my-cf-logs/E2ABC/ --week 2026-W47 --out reports/2026-W47 \\
      --history s3://my-reports/history --publish s3://my-reports/2026-W47
  edgeproof report weekly --logs ./logs --week 2026-W47 --target 0.96

exit status: 0 when the week's hit rate met --target, 1 when it did not, 2 on bad usage/input.
"""


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT")
    weekly = sub.add_parser(
        "weekly",
        help="one ISO week of CloudFront logs against the hit-rate target (HTML, Markdown, PNG, JSON)",
        description="Weekly hit-rate report: daily/hourly hit rate against the target, by POP, content type "
                    "and path family; latency for hits and misses; bytes from cache vs origin; errors; top "
                    "fragmenting URL families and missed variants; miss anatomy and the best strategy by "
                    "replay; week-over-week deltas from the history store.",
        epilog=_WEEKLY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    weekly.add_argument("--logs", action="append", required=True, metavar="PATH|s3://bucket/prefix",
                        help="log files, folders, globs or S3 prefixes (repeatable)")
    weekly.add_argument("--week", help="ISO week such as 2026-W47 (default: last complete week, UTC)")
    weekly.add_argument("--out", help="output folder (default: reports/WEEK)")
    weekly.add_argument("--publish", metavar="DIR|s3://bucket/prefix", help="also copy the report there")
    weekly.add_argument("--history", metavar="DIR|s3://bucket/prefix",
                        help="history store: last week's summary is read from it, this week's written to it")
    weekly.add_argument("--target", type=float, default=0.96, help="hit-rate target (default 0.96)")
    weekly.add_argument("--jobs", type=int, default=1,
                        help="processes reading the week's files in parallel (default 1; aggregates merge)")
    weekly.add_argument("--no-what-if", action="store_true", help="skip the strategy replay (faster)")
    weekly.add_argument("--quiet", action="store_true", help="no progress line")
    weekly.set_defaults(func=_weekly)


def _weekly(args: argparse.Namespace) -> int:
    from analytics.report.document import fmt_delta_pp, fmt_pct
    from analytics.report.weekly import build_weekly

    result = build_weekly(
        args.logs, week=args.week, out=args.out, target=args.target, history=args.history,
        publish=args.publish, what_if=not args.no_what_if, progress=not args.quiet, jobs=args.jobs,
    )
    s = result.summary
    verdict = "MET" if result.met_target else "MISSED"
    print(f"week {s['week']}: hit rate {fmt_pct(s['hit_rate'])} over {s['requests']:,} requests — "
          f"target {fmt_pct(s['target'], 1)} {verdict}")
    for day in s["daily"]:
        mark = "ok " if day["met_target"] else "LOW" if day["met_target"] is False else " - "
        print(f"  {day['key']}  {fmt_pct(day['hit_rate']):>8}  {day['requests']:>12,}  {mark}")
    wow = s.get("week_over_week")
    if wow:
        print(f"  vs {wow['previous_week']}: {fmt_delta_pp(wow['hit_rate'])}")
    what_if = s.get("what_if") or {}
    if what_if.get("best"):
        print(f"  best strategy by replay: {what_if['best']} {fmt_pct(what_if['best_hit_rate'])} "
              f"(predicted gain {fmt_delta_pp(what_if.get('predicted_gain'))})")
    print(f"report: {result.out_dir / 'report.html'}")
    for url in result.published:
        if url.endswith("report.html"):
            print(f"published: {url}")
    sys.stdout.flush()
    return 0 if result.met_target else 1
