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

--strategy, --duration and --peak-rps override the scenario file's keys of the same name (checked the same way).
"""

#: the scenario settings that are also flags (their help and checks are the scenario table's)
_FLAGS = ("strategy", "duration", "peak_rps")


def register(parser: argparse.ArgumentParser) -> None:
    from edgeproof.rehearsal.config import (
        AUTOSCALING_SETTINGS,
        SCENARIO_SETTINGS,
        STACK_SETTINGS,
        list_rehearsal_scenarios,
    )

    parser.description = textwrap.fill(
        "Run a spike rehearsal: start the embedded stack (sample catalog, origin tasks, edge emulator) or "
        "target a real distribution, play the scenario's spike and events with Locust, stop everything, "
        "analyse the edge logs with the recorder rows, and write summary.json, report.html and the charts. "
        "See docs/rehearsal.md.", 100)
    parser.epilog = "\n".join([_EPILOG, "scenario files (docs/rehearsal.md):", SCENARIO_SETTINGS.help_text(), "",
                               STACK_SETTINGS.help_text(), "", AUTOSCALING_SETTINGS.help_text()])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenario", metavar="NAME|FILE",
                        help=f"rehearsal scenario: built-in ({', '.join(list_rehearsal_scenarios())}) or a TOML "
                             "path (default: default)")
    SCENARIO_SETTINGS.add_arguments(parser, only=_FLAGS, defaults=False)
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
    from edgeproof.rehearsal.config import SCENARIO_SETTINGS
    from edgeproof.rehearsal.run import RehearsalOptions, run_rehearsal

    from edgeproof.errors import UsageError

    if args.logs and not args.target:
        raise UsageError("--logs goes with --target", detail="the embedded stack's own logs are always analysed")
    overrides = SCENARIO_SETTINGS.from_args(args)
    result = run_rehearsal(RehearsalOptions(
        scenario=args.scenario, **{k: overrides.get(k) for k in _FLAGS},
        out=args.out, target=args.target, logs=args.logs, cache_dir=args.cache_dir,
        what_if=not args.no_what_if, quiet=args.quiet,
    ))
    return result.exit_code
