"""The one console script, ``edgeproof``, with subcommands grouped by area.

Each area owns its subcommands in its own module, which exposes ``register(parser)``: it adds its
arguments (or a sub-subparser) to ``parser`` and sets ``func`` (``args -> int`` exit code) through
``parser.set_defaults``. Modules are imported lazily, only for the group being run, so that
``edgeproof logs …`` never imports pyvips or Locust (Locust gevent-patches its process).

The exit status is one contract for every command (:data:`edgeproof.errors.EXIT_STATUSES`), so a
cron job can tell a crash (3) from a missed week (1). It is enforced here, at the one place every
command passes through: an :class:`~edgeproof.errors.EdgeproofError` exits with its own code (never
1), and any other exception — including one raised while importing an area module or building the
parser — becomes a single ``edgeproof: internal error: …`` line on stderr and exit 3. ``--debug``
(anywhere on the command line) or ``EDGEPROOF_DEBUG=1`` adds the traceback. Every ``--help`` at every
depth ends with the contract, appended here after the areas registered their parsers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgeproof.errors import (
    ERROR_EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_STATUSES,
    EXIT_USAGE,
    EdgeproofError,
    UsageError,
)

__all__ = ["EXIT_STATUS_EPILOG", "EXTRAS", "GROUPS", "build_parser", "describe_internal_error", "iter_parsers", "main", "missing_extra"]

#: (command, module exposing register(parser), one-line help)
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("logs", "edgeproof.analytics.cli_logs", "read CloudFront logs: summarize hit rate and latency, convert to Parquet"),
    ("strategies", "edgeproof.analytics.cli_strategies", "cache-key strategies: list, show, apply, compare by replay, export"),
    ("origin", "edgeproof.origin.cli", "the reference origin: serve, sample catalog, prescale variants"),
    ("edge", "edgeproof.edge.cli", "the local CloudFront stand-in (edge emulator)"),
    ("loadtest", "edgeproof.loadtest.cli", "Locust spike scenarios with an open-model arrival rate and gates"),
    ("rehearse", "edgeproof.rehearsal.cli", "run a spike rehearsal end to end and write its report"),
    ("prewarm", "edgeproof.rehearsal.prewarm_cli", "warm every POP for a launch: plan one request per cache key, send it"),
    ("report", "edgeproof.analytics.report.cli", "reports over CloudFront logs (weekly hit-rate report)"),
)

#: the optional dependencies (pyproject extras) each command needs beyond the core
EXTRAS: dict[str, str] = {"origin": "origin", "edge": "origin", "loadtest": "load", "rehearse": "origin,load", "prewarm": "origin"}
#: the distributions those extras bring, by import name
_EXTRA_MODULES = {"aiohttp": "origin", "pyvips": "origin", "prometheus_client": "origin", "locust": "load",
                  "gevent": "load", "pandas": "notebooks"}

#: the block every ``--help`` ends with; kept line for line by :class:`_KeepExitStatus`
EXIT_STATUS_EPILOG = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_STATUSES.items())

_DEBUG_FLAG = "--debug"
_ROOT = Path(__file__).resolve().parent.parent  # the checkout (or site-packages when installed)


class _KeepExitStatus(argparse.HelpFormatter):
    """Format a parser's text as its own formatter would, but print the exit-status block verbatim.

    The default formatter re-wraps an epilog into one paragraph, which would run the five statuses
    together; switching every parser to ``RawDescriptionHelpFormatter`` would instead stop wrapping
    the areas' long one-line descriptions. So only the block itself is kept raw; the text around it
    (an area's own epilog, e.g. examples) goes through the parser's original formatter unchanged.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        head, block, tail = text.partition(EXIT_STATUS_EPILOG)
        if not block:
            return super()._fill_text(text, width, indent)
        parts = [super()._fill_text(head, width, indent)] if head.strip() else []
        parts.append("\n".join(indent + line for line in block.splitlines()))
        if tail.strip():
            parts.append(super()._fill_text(tail, width, indent))
        return "\n\n".join(parts)


_FORMATTERS: dict[type, type] = {}


def _with_exit_status(formatter_class: object) -> object:
    """``formatter_class`` with :class:`_KeepExitStatus` mixed in (one class per original)."""
    if not (isinstance(formatter_class, type) and issubclass(formatter_class, argparse.HelpFormatter)):
        return formatter_class  # a factory we cannot subclass: the block may be re-wrapped, still present
    if issubclass(formatter_class, _KeepExitStatus):
        return formatter_class
    if formatter_class not in _FORMATTERS:
        _FORMATTERS[formatter_class] = type(f"ExitStatus{formatter_class.__name__}",
                                            (_KeepExitStatus, formatter_class), {})
    return _FORMATTERS[formatter_class]


def iter_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-parser below it, at every depth, in registration order (aliases once)."""
    seen: set[int] = set()
    queue = [parser]
    while queue:
        p = queue.pop(0)
        if id(p) in seen:
            continue
        seen.add(id(p))
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                queue.extend(action.choices.values())


def _add_exit_status(parser: argparse.ArgumentParser) -> None:
    """Append the exit-status block to the epilog of ``parser`` and every parser below it."""
    for p in iter_parsers(parser):
        if EXIT_STATUS_EPILOG in (p.epilog or ""):
            continue
        p.epilog = f"{p.epilog.rstrip()}\n\n{EXIT_STATUS_EPILOG}" if p.epilog else EXIT_STATUS_EPILOG
        p.formatter_class = _with_exit_status(p.formatter_class)  # type: ignore[assignment]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, import just that group's module (others get a stub)."""
    parser = argparse.ArgumentParser(
        prog="edgeproof",
        description="Prove an image CDN (CloudFront + process-on-miss origin) before the spike.",
        epilog="Run 'edgeproof COMMAND --help' for a command's options.",
    )
    parser.add_argument(_DEBUG_FLAG, action="store_true",
                        help="print the traceback of an internal error (also EDGEPROOF_DEBUG=1); "
                             "accepted before or after the command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in GROUPS:
        group = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            importlib.import_module(module).register(group)
    _add_exit_status(parser)
    return parser


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (anywhere before a ``--``), and whether it was there.

    Taken out before parsing so that it works after the command too, without adding an option to
    every area's parser (argparse would treat a ``--debug`` token as an option anyway, never as a value).
    """
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a != _DEBUG_FLAG] + argv[end:]
    return rest, len(rest) != len(argv)


def _debug_from_env() -> bool:
    return os.environ.get("EDGEPROOF_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def _is_ours(filename: str) -> bool:
    """A frame in edgeproof's own code (checkout or tests), not in the interpreter or site-packages."""
    path = Path(filename)
    if not path.is_file():  # "<string>", "<frozen …>"
        return False
    path = path.resolve()
    if "site-packages" in path.parts or not path.is_relative_to(_ROOT):
        return False
    return not any(path.is_relative_to(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix})


def _short(filename: str) -> str:
    """``filename`` relative to the checkout, else to the ``sys.path`` entry holding it."""
    if not Path(filename).is_file():
        return filename
    path = Path(filename).resolve()
    if _is_ours(filename):
        return path.relative_to(_ROOT).as_posix()
    roots = sorted((Path(p).resolve() for p in sys.path if p), key=lambda p: len(p.parts), reverse=True)
    root = next((r for r in roots if path.is_relative_to(r) and path != r), None)
    return path.relative_to(root).as_posix() if root else str(path)


def describe_internal_error(err: BaseException, *, debug: bool = False) -> str:
    """The one stderr line for an unexpected exception: type, message, where in our code it happened.

    The place is the innermost frame in edgeproof's own code (the line to look at first), or the
    innermost frame when the whole traceback lies in libraries.
    """
    kind = type(err).__qualname__
    if type(err).__module__ not in ("builtins", "__main__"):
        kind = f"{type(err).__module__}.{kind}"
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:299] + "…"
    frames = traceback.extract_tb(err.__traceback__)
    frame = next((f for f in reversed(frames) if _is_ours(f.filename)), frames[-1] if frames else None)
    where = f"in {_short(frame.filename)}:{frame.lineno}; " if frame else ""
    hint = "traceback above" if debug else "run with --debug or EDGEPROOF_DEBUG=1 for the traceback"
    return f"edgeproof: internal error: {kind}{': ' + text if text else ''} ({where}{hint})"


def missing_extra(err: ModuleNotFoundError, command: str | None) -> UsageError | None:
    """The usage error for a command run without its extra installed (``pip install 'edgeproof[origin]'``)."""
    top = (err.name or "").split(".")[0]
    extra = _EXTRA_MODULES.get(top)
    if extra is None:
        return None
    needs = EXTRAS.get(command or "", extra)
    what = f"'edgeproof {command}'" if command else "this command"
    return UsageError(f"{what} needs the optional dependency {top!r}, which is not installed",
                      detail=f"install the extra: pip install 'edgeproof[{needs}]'")


def _run(argv: list[str]) -> int:
    names = {g[0] for g in GROUPS}
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in names else "")
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without a subcommand (or no command at all): show its help; that is bad usage
        if args.command:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            sub.choices[args.command].print_help()
        else:
            parser.print_help()
        return EXIT_USAGE
    return int(func(args) or EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    argv, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug or _debug_from_env()
    try:
        try:
            return _run(argv)
        except ModuleNotFoundError as err:
            command = next((a for a in argv if not a.startswith("-")), None)
            usage = missing_extra(err, command)
            if usage is None:
                raise
            raise usage from err
    except EdgeproofError as err:
        if debug:
            traceback.print_exception(err, file=sys.stderr)
        print(f"edgeproof: error: {err.message}", file=sys.stderr)
        if err.detail:
            print(f"  {err.detail}", file=sys.stderr)
        # an error is never a verdict: a code outside 2/3/4 (e.g. set on an instance) is a bug
        return err.exit_code if err.exit_code in ERROR_EXIT_CODES else EXIT_INTERNAL
    except KeyboardInterrupt:
        print("edgeproof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `edgeproof logs summarize … | head`: the reader left, nothing failed
        return EXIT_OK
    except Exception as err:  # anything else is a bug: one line (or the traceback with --debug), exit 3
        if debug:
            traceback.print_exception(err, file=sys.stderr)
        print(describe_internal_error(err, debug=debug), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
