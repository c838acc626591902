"""A test-only command group for tests/test_exit_codes.py: commands that fail in known ways.

Registered through ``edgeproof.cli.GROUPS`` (patched in the test only), so that the exit-status
contract is checked on a real exception raised inside a real command, without stubbing product code.
"""

from __future__ import annotations

import argparse

from edgeproof.errors import EXIT_MISSED, EdgeproofError, IncompleteData, UsageError


def _crash(args: argparse.Namespace) -> int:
    values = [1, 2, 3]
    return values[args.index]  # IndexError for an index past the end: an internal error, exit 3


def _missed(args: argparse.Namespace) -> int:
    return EXIT_MISSED  # a command's own verdict: the only way to exit 1


def _incomplete(args: argparse.Namespace) -> int:
    raise IncompleteData("3 hours of the week have no log data", detail="2026-11-18 13:00-16:00 UTC")


def _unclassified(args: argparse.Namespace) -> int:
    raise EdgeproofError("an error raised on purpose but not classified")


def _relabelled(args: argparse.Namespace) -> int:
    err = UsageError("an error whose instance was given exit code 1")
    err.exit_code = EXIT_MISSED  # what the contract forbids; main() must not pass it on
    raise err


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="exit_command", metavar="SUBCOMMAND")
    crash = sub.add_parser("crash", help="raise IndexError")
    crash.add_argument("--index", type=int, default=5)
    crash.set_defaults(func=_crash)
    sub.add_parser("missed", help="return the 'target missed' verdict").set_defaults(func=_missed)
    sub.add_parser("incomplete", help="raise IncompleteData").set_defaults(func=_incomplete)
    sub.add_parser("unclassified", help="raise the base EdgeproofError").set_defaults(func=_unclassified)
    sub.add_parser("relabelled", help="raise a UsageError carrying exit code 1").set_defaults(func=_relabelled)


def register_broken(parser: argparse.ArgumentParser) -> None:
    """A register() that fails while the parser is being built."""
    raise KeyError("no such option table")

