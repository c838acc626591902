"""The one console script, ``edgeproof``, with subcommands grouped by area.

Each area owns its subcommands in its own module, which exposes ``register(parser)``: it adds its
arguments (or a sub-subparser) to ``parser`` and sets ``func`` (``args -> int`` exit code) through
``parser.set_defaults``. Modules are imported lazily, only for the group being run, so that
``edgeproof logs …`` never imports pyvips or Locust (Locust gevent-patches its process).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edgeproof.errors import EdgeproofError

__all__ = ["GROUPS", "build_parser", "main"]

#: (command, module exposing register(parser), one-line help)
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("logs", "analytics.cli_logs", "read CloudFront logs: summarize hit rate and latency, convert to Parquet"),
    ("strategies", "analytics.strategies.cli", "cache-key strategies: list, show, apply, compare by replay, export"),
    ("origin", "origin.cli", "the reference origin: serve, sample catalog, prescale variants"),
    ("edge", "origin.edge.cli", "the local CloudFront stand-in (edge emulator)"),
    ("loadtest", "loadtest.cli", "Locust spike scenarios with an open-model arrival rate and gates"),
    ("rehearse", "edgeproof.rehearse_cli", "run a spike rehearsal end to end and write its report"),
    ("report", "analytics.report.cli", "reports over CloudFront logs (weekly hit-rate report)"),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, import just that group's module (others get a stub)."""
    parser = argparse.ArgumentParser(
        prog="edgeproof",
        description="Prove an image CDN (CloudFront + process-on-miss origin) before the spike.",
        epilog="Run 'edgeproof COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in GROUPS:
        group = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            importlib.import_module(module).register(group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {g[0] for g in GROUPS}
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in names else "")
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without a subcommand: show that group's help
        if args.command:
            build_parser(only=args.command).parse_args([args.command, "--help"])
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except EdgeproofError as err:
        print(f"edgeproof: error: {err.message}", file=sys.stderr)
        if err.detail:
            print(f"  {err.detail}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("edgeproof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
