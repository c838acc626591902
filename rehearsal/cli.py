"""``edgeproof rehearse``: a spike rehearsal end to end (the main job; ``make demo`` runs it)."""

from __future__ import annotations

import argparse
import textwrap

__all__ = ["register"]

_EPILOG = """\
examples:
  edgeproof rehearse                                   # the default scenario on the embedded stack
  edgeproof rehearse --scenario ephemeral              # private caches on ephemeral origin tasks
  edgeproof rehearse --strategy passthrough --duration 40
  edgeproof rehearse --target https://dxxxx.cloudfront.net --logs s3://my-cf-logs/E2ABC/
  edgeproof rehearse compare rehearsals/A rehearsals/B --html compare.html   # exit 1: B regressed

exit status: 0 when every gate passed, 1 when a gate failed, 2 on bad usage.
"""


def register(parser: argparse.ArgumentParser) -> None:
    from edgeproof.rehearsal.config import list_rehearsal_scenarios

    parser.description = textwrap.fill(
        "Run a spike rehearsal: start the embedded stack (sample catalog, origin tasks, edge emulator) or "
        "target a real distribution, play the scenario's spike and events with Locust, stop everything, "
        "analyse the edge logs with the recorder rows, and write summary.json, report.html and the charts. "
        "See docs/rehearsal.md.", 100)
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenario", metavar="NAME|FILE",
                        help=f"rehearsal scenario: built-in ({', '.join(list_rehearsal_scenarios())}) or a TOML "
                             "path (default: default)")
    parser.add_argument("--strategy", help="override the scenario's cache-key strategy (edgeproof strategies list)")
    parser.add_argument("--duration", type=float, help="seconds of load (the spike shape scales to it)")
    parser.add_argument("--peak-rps", type=float, help="requests/s at the peak")
    parser.add_argument("--out", help="output folder (default rehearsals/<timestamp>)")
    parser.add_argument("--target", metavar="URL", help="rehearse a real distribution instead of the embedded stack")
    parser.add_argument("--logs", metavar="s3://bucket/prefix",
                        help="with --target: the distribution's CloudFront logs to analyse with the client rows")
    parser.add_argument("--cache-dir", help="where the sample catalog is kept (default .edgeproof-cache)")
    parser.add_argument("--no-what-if", action="store_true", help="skip the strategy replay")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="rehearse_command", metavar="[compare]", required=False)
    c = sub.add_parser("compare", help="two rehearsal folders side by side (A, B, Δ); exit 1 when B regressed",
                       description="Compare two rehearsal folders (rehearsals/<timestamp>/): every gate value, the "
                                   "hit rates, p99 by class (hit / miss), transforms and 503s side by side (A, B, "
                                   "Δ). Exit 1 when B's hit rate fell or a p99 rose beyond the thresholds, 2 when "
                                   "a folder is unreadable or not a rehearsal. See docs/rehearsal.md.")
    from edgeproof.loadtest.compare import add_arguments

    add_arguments(c)
    c.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.compare import run_command
    from edgeproof.rehearsal.compare import load_rehearsal_run

    return run_command(args, load_rehearsal_run)


def _run(args: argparse.Namespace) -> int:
    from edgeproof.rehearsal.run import RehearsalOptions, run_rehearsal

    from edgeproof.errors import UsageError

    if args.logs and not args.target:
        raise UsageError("--logs goes with --target", detail="the embedded stack's own logs are always analysed")
    result = run_rehearsal(RehearsalOptions(
        scenario=args.scenario, strategy=args.strategy, duration=args.duration, peak_rps=args.peak_rps,
        out=args.out, target=args.target, logs=args.logs, cache_dir=args.cache_dir,
        what_if=not args.no_what_if, quiet=args.quiet,
    ))
    return result.exit_code
