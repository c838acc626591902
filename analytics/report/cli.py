"""``edgeproof report weekly``: the weekly hit-rate report (exit 0 met, 1 missed, 4 incomplete week)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgeproof.analytics.cost import add_cost_arguments

__all__ = ["register"]

_WEEKLY_EPILOG = """\
examples:
  edgeproof report weekly --logs s3://my-cf-logs/E2ABC/ --week 2026-W47 --out reports/2026-W47 \\
      --history s3://my-reports/history --publish s3://my-reports/2026-W47
  edgeproof report weekly --logs ./logs --week 2026-W47 --target 0.96
  edgeproof report weekly --logs ./logs --from 2026-11-16 --to 2026-11-19 --no-what-if
  edgeproof report weekly --logs ./logs --week 2026-W47 --allow-gaps   # a known logging outage

verdicts: MET (exit 0) when the hit rate met --target, MISSED (1) when it did not, INCOMPLETE (4)
when an hour of the window has no log line or a log file is damaged (no MET/MISSED on such a week
unless --allow-gaps); no log line in the window at all is exit 2.
"""


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT")
    weekly = sub.add_parser(
        "weekly",
        help="one ISO week of CloudFront logs against the hit-rate target (HTML, Markdown, PNG, JSON)",
        description="Weekly hit-rate report: daily/hourly hit rate against the target, by POP, content type "
                    "and path family; latency for hits and misses; bytes from cache vs origin; errors; top "
                    "fragmenting URL families and missed variants; miss anatomy and the best strategy by "
                    "replay; week-over-week deltas from the history store. Hours of the window without any "
                    "log line are named, and make the verdict INCOMPLETE (exit 4) unless --allow-gaps.",
        epilog=_WEEKLY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    weekly.add_argument("--logs", action="append", required=True, metavar="PATH|s3://bucket/prefix",
                        help="log files, folders, globs or S3 prefixes (repeatable)")
    weekly.add_argument("--week", help="ISO week such as 2026-W47 (default: last complete week, UTC)")
    weekly.add_argument("--from", dest="start", metavar="T",
                        help="window start instead of --week (UTC, ISO 8601: 2026-11-16 or 2026-11-16T06:00)")
    weekly.add_argument("--to", dest="end", metavar="T", help="window end, exclusive (with --from)")
    weekly.add_argument("--allow-gaps", action="store_true",
                        help="accept hours without log data (a known outage): judge MET/MISSED on the data "
                             "there is instead of INCOMPLETE; the gaps are still listed")
    weekly.add_argument("--out", help="output folder (default: reports/WEEK)")
    weekly.add_argument("--publish", metavar="DIR|s3://bucket/prefix", help="also copy the report there")
    weekly.add_argument("--history", metavar="DIR|s3://bucket/prefix",
                        help="history store: last week's summary is read from it, this week's written to it")
    weekly.add_argument("--target", type=float, default=0.96, help="hit-rate target (default 0.96)")
    weekly.add_argument("--jobs", type=int, default=1,
                        help="processes reading the week's files in parallel (default 1; aggregates merge)")
    weekly.add_argument("--no-what-if", action="store_true", help="skip the strategy replay (faster)")
    weekly.add_argument("--quiet", action="store_true", help="no progress line")
    add_cost_arguments(weekly)
    weekly.set_defaults(func=_weekly)


def _printable(text: str) -> str:
    """Control characters as ``\\xNN`` (the reader's excerpts are escaped already; this keeps file
    names and messages from driving the terminal too, and leaves escaped text as it is)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _coverage_lines(s: dict[str, Any]) -> list[str]:
    """The console's coverage block: missing hours as ranges, damaged files, lines the reader skipped."""
    cov = s["coverage"]
    lines = []
    if cov["missing"]:
        lines.append(f"  coverage: {cov['hours_with_data']} of {cov['hours_expected']} hours have log data; "
                     f"no log data for {cov['hours_missing']} h:")
        lines += [f"    {gap['label']}" for gap in cov["missing"]]
    else:
        lines.append(f"  coverage: all {cov['hours_expected']} hours have log data")
    for damaged in cov["damaged_files"]:
        lines.append(f"  damaged file: {_printable(damaged['file'])}: {_printable(damaged['error'])}")
    if not cov["complete"]:
        lost = "the missing hours" if cov["missing"] else "the damaged files"
        if s["verdict"] == "INCOMPLETE":
            lines.append(f"  no verdict on incomplete data: {lost} could change it "
                         "(--allow-gaps judges the data there is)")
        else:
            lines.append("  gaps allowed (--allow-gaps): verdict on the data there is")
    if cov["lost_lines"]:
        lines.append(f"  lines skipped by the reader: {cov['lost_lines']:,}, e.g.")
        lines += [f"    {_printable(ex)}" for ex in cov["lost_line_examples"][:3]]
    return lines


def _weekly(args: argparse.Namespace) -> int:
    from edgeproof.analytics.cost import cost_options, money
    from edgeproof.analytics.report.document import fmt_delta_pp, fmt_pct
    from edgeproof.analytics.report.weekly import build_weekly

    result = build_weekly(
        args.logs, week=args.week, start=args.start, end=args.end, allow_gaps=args.allow_gaps, out=args.out,
        target=args.target, history=args.history, publish=args.publish, what_if=not args.no_what_if,
        progress=not args.quiet, jobs=args.jobs, cost=cost_options(args),
    )
    s = result.summary
    over = " (the data there is)" if not s["coverage"]["complete"] else ""
    print(f"{'week ' if s['week'] else ''}{s['period']}: hit rate {fmt_pct(s['hit_rate'])} over "
          f"{s['requests']:,} requests{over} — target {fmt_pct(s['target'], 1)} {s['verdict']}")
    for line in _coverage_lines(s):
        print(line)
    daily = {d["key"]: d for d in s["daily"]}
    missing_by_day = s["coverage"].get("missing_by_day") or {}
    for key in sorted(set(daily) | set(missing_by_day)):
        gap = missing_by_day.get(key)
        gap_note = f"  no log data for {gap:g} h" if gap else ""
        day = daily.get(key)
        if day is None:
            print(f"  {key}  {'–':>8}  {0:>12,}  ---{gap_note}")
            continue
        mark = "ok " if day["met_target"] else "LOW" if day["met_target"] is False else " - "
        print(f"  {key}  {fmt_pct(day['hit_rate']):>8}  {day['requests']:>12,}  {mark}{gap_note}")
    wow = s.get("week_over_week")
    if wow:
        print(f"  vs {wow['previous_week']}: {fmt_delta_pp(wow['hit_rate'])}")
    what_if = s.get("what_if") or {}
    if what_if.get("best"):
        print(f"  best strategy by replay: {what_if['best']} {fmt_pct(what_if['best_hit_rate'])} "
              f"(predicted gain {fmt_delta_pp(what_if.get('predicted_gain'))})")
    cost = s.get("cost")
    if cost:
        cheapest = min(cost["strategies"].items(), key=lambda kv: kv[1]["total"], default=None)
        line = f"  cost: observed {money(cost['observed']['total'])}/month (scaled ×{cost['observed']['scale']:,.2f})"
        if cheapest:
            line += (f"; cheapest by replay {cheapest[0]} {money(cheapest[1]['total'])}/month, saving "
                     f"{money(cheapest[1]['saving_over']['observed'])}")
        print(line)
    print(f"report: {result.out_dir / 'report.html'}")
    for url in result.published:
        if url.endswith("report.html"):
            print(f"published: {url}")
    sys.stdout.flush()
    return result.exit_code
