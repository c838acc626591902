"""The one exit-status contract of ``edgeproof``: 0 ok, 1 missed, 2 usage/input, 3 internal, 4 incomplete.

Driven through the installed console script where the process boundary matters (argparse, error
printing, no interpreter traceback); a real internal error comes from a test-only command group
(``tests/_exit_helpers.py``) registered by patching ``edgeproof.cli.GROUPS`` in the test only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import _exit_helpers
import pytest

import edgeproof.errors as errors
from edgeproof import cli

REPO = Path(__file__).resolve().parent.parent
EDGEPROOF = Path(sys.executable).with_name("edgeproof")
HELPERS = Path(_exit_helpers.__file__)
CONTRACT = [f"  {code}  {text}" for code, text in errors.EXIT_STATUSES.items()]
TEST_GROUP = ("exit-test", "_exit_helpers", "test-only commands that fail in known ways")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "EDGEPROOF_DEBUG"}
    return subprocess.run([str(EDGEPROOF), *args], capture_output=True, text=True, timeout=120,
                          env={**base, **(env or {})})


def helper_line(text: str) -> int:
    """The line number of ``text`` in tests/_exit_helpers.py (where the test-only crash happens)."""
    return next(i for i, line in enumerate(HELPERS.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def test_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROOF_DEBUG", raising=False)
    monkeypatch.setattr(cli, "GROUPS", (*cli.GROUPS, TEST_GROUP))


# --- the error classes -------------------------------------------------------------------------

def _all_error_classes() -> Iterator[type[errors.EdgeproofError]]:
    import edgeproof.rehearsal.stack  # noqa: F401 - defines RehearsalError, a subclass outside errors.py

    todo: list[type[errors.EdgeproofError]] = [errors.EdgeproofError]
    while todo:
        cls = todo.pop()
        yield cls
        todo.extend(cls.__subclasses__())


def test_no_error_class_exits_1() -> None:
    codes = {cls.__name__: cls.exit_code for cls in _all_error_classes()}
    assert codes["EdgeproofError"] == errors.EXIT_INTERNAL
    for name in ("UsageError", "ConfigError", "StrictModeError", "LogFormatError", "StoreError", "RequestError",
                 "BadRequest", "NotFound", "Forbidden", "PayloadTooLarge", "Unprocessable"):
        assert codes[name] == errors.EXIT_USAGE, name
    assert codes["IncompleteData"] == errors.EXIT_INCOMPLETE
    assert codes["Overloaded"] == errors.EXIT_INTERNAL
    assert not {n: c for n, c in codes.items() if c not in (2, 3, 4)}, codes


@pytest.mark.parametrize("code", [errors.EXIT_OK, errors.EXIT_MISSED, 7])
def test_a_subclass_cannot_claim_a_verdict(code: int) -> None:
    with pytest.raises(TypeError, match="exit_code"):
        type("Verdictish", (errors.StoreError,), {"exit_code": code})


def test_constants_are_the_contract() -> None:
    assert (errors.EXIT_OK, errors.EXIT_MISSED, errors.EXIT_USAGE, errors.EXIT_INTERNAL,
            errors.EXIT_INCOMPLETE) == (0, 1, 2, 3, 4)
    assert sorted(errors.EXIT_STATUSES) == [0, 1, 2, 3, 4]


# --- real processes: usage and unreadable input ------------------------------------------------

def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for argv in (["no-such-command"], ["logs", "summarize"], ["logs", "summarize", "x", "--by", "planet"]):
        done = run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "usage: edgeproof" in done.stderr
    bad = run("logs", "synth", "--out", str(tmp_path), "--hit-rate", "lots")
    assert bad.returncode == 2 and "edgeproof: error: bad --hit-rate 'lots'" in bad.stderr
    for argv in ([], ["logs"], ["strategies"]):  # a group without its subcommand: help, and bad usage
        bare = run(*argv)
        assert bare.returncode == 2, (argv, bare.stdout)
        assert bare.stdout.startswith(f"usage: {' '.join(['edgeproof', *argv])} [-h]")


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    missing = run("logs", "summarize", "/nonexistent/cloudfront-logs")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["edgeproof: error: no such log file or folder: /nonexistent/cloudfront-logs"]
    store = run("origin", "prescale", "--sources", "ftp://x/y", "--derivatives", str(tmp_path / "d"),
                "--variants", "thumb")  # StoreError: exit 1 ("missed") before the contract
    assert store.returncode == 2, store.stderr
    assert store.stderr.startswith("edgeproof: error: unsupported store 'ftp://x/y'")


def test_unlistable_s3_logs_exit_2(s3_env: dict[str, str]) -> None:
    """A bucket that does not exist on the (moto) S3 server: a StoreError from edgeproof.s3 (exit 2; it used to exit 1)."""
    done = run("logs", "summarize", "s3://edgeproof-no-such-bucket/E2ABC/", env=s3_env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("edgeproof: error: cannot list s3://edgeproof-no-such-bucket/E2ABC/")
    assert "Traceback" not in done.stderr


def test_debug_flag_after_the_command_is_taken_not_rejected() -> None:
    done = run("logs", "summarize", "/nonexistent/x", "--debug")
    assert done.returncode == 2
    assert "unrecognized arguments" not in done.stderr
    assert "Traceback (most recent call last)" in done.stderr  # --debug shows an error's traceback too
    assert done.stderr.splitlines()[-1] == "edgeproof: error: no such log file or folder: /nonexistent/x"


# --- internal errors: one line, exit 3; the traceback only with --debug / EDGEPROOF_DEBUG ------

def _expected_crash_line(debug: bool) -> str:
    hint = "traceback above" if debug else "run with --debug or EDGEPROOF_DEBUG=1 for the traceback"
    return (f"edgeproof: internal error: IndexError: list index out of range "
            f"(in tests/_exit_helpers.py:{helper_line('return values[args.index]')}; {hint})")


def test_internal_error_is_one_line_and_exit_3(test_group: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["exit-test", "crash"]) == errors.EXIT_INTERNAL
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [_expected_crash_line(debug=False)]
    assert captured.out == ""


@pytest.mark.parametrize("argv", [["--debug", "exit-test", "crash"], ["exit-test", "crash", "--debug"],
                                  ["exit-test", "--debug", "crash", "--index", "9"]])
def test_debug_flag_prints_the_traceback(test_group: None, capsys: pytest.CaptureFixture[str],
                                         argv: list[str]) -> None:
    assert cli.main(argv) == errors.EXIT_INTERNAL
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any(str(HELPERS) in line for line in lines)
    assert lines[-2] == "IndexError: list index out of range"
    assert lines[-1] == _expected_crash_line(debug=True)


@pytest.mark.parametrize(("value", "traceback"), [("1", True), ("yes", True), ("0", False), ("", False)])
def test_edgeproof_debug_env(test_group: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             value: str, traceback: bool) -> None:
    monkeypatch.setenv("EDGEPROOF_DEBUG", value)
    assert cli.main(["exit-test", "crash"]) == errors.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert ("Traceback (most recent call last)" in err) is traceback
    assert err.splitlines()[-1] == _expected_crash_line(debug=traceback)


def test_errors_while_building_the_parser_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EDGEPROOF_DEBUG", raising=False)
    monkeypatch.setattr(cli, "GROUPS", (*cli.GROUPS, ("gone", "_exit_helpers_not_there", "a module that is missing")))
    assert cli.main(["gone", "x"]) == errors.EXIT_INTERNAL
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("edgeproof: internal error: ModuleNotFoundError: No module named '_exit_helpers_not_there'")

    monkeypatch.setattr(cli, "GROUPS", (*cli.GROUPS, TEST_GROUP))
    monkeypatch.setattr(_exit_helpers, "register", _exit_helpers.register_broken)
    assert cli.main(["exit-test", "crash"]) == errors.EXIT_INTERNAL
    (line,) = capsys.readouterr().err.splitlines()
    where = helper_line('raise KeyError("no such option table")')
    assert line == ("edgeproof: internal error: KeyError: 'no such option table' "
                    f"(in tests/_exit_helpers.py:{where}; run with --debug or EDGEPROOF_DEBUG=1 for the traceback)")


def test_internal_error_in_a_real_process_has_no_traceback() -> None:
    """The same crash in a process of its own: nothing but the one line reaches stderr."""
    code = (f"import sys; sys.path.insert(0, {str(HELPERS.parent)!r}); import edgeproof.cli as c; "
            f"c.GROUPS = (*c.GROUPS, {TEST_GROUP!r}); sys.exit(c.main(sys.argv[1:]))")
    env = {k: v for k, v in os.environ.items() if k != "EDGEPROOF_DEBUG"}
    done = subprocess.run([sys.executable, "-c", code, "exit-test", "crash"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [_expected_crash_line(debug=False)]
    traced = subprocess.run([sys.executable, "-c", code, "exit-test", "crash"], capture_output=True, text=True,
                            timeout=60, env={**env, "EDGEPROOF_DEBUG": "1"}, cwd=REPO)
    assert traced.returncode == 3 and traced.stderr.startswith("Traceback (most recent call last):")


def test_verdicts_and_classified_errors(test_group: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["exit-test", "missed"]) == errors.EXIT_MISSED  # only a command's verdict is 1
    assert cli.main(["exit-test", "incomplete"]) == errors.EXIT_INCOMPLETE
    assert cli.main(["exit-test", "unclassified"]) == errors.EXIT_INTERNAL
    assert cli.main(["exit-test", "relabelled"]) == errors.EXIT_INTERNAL  # an error never passes on a 1
    assert capsys.readouterr().err.splitlines() == [
        "edgeproof: error: 3 hours of the week have no log data",
        "  2026-11-18 13:00-16:00 UTC",
        "edgeproof: error: an error raised on purpose but not classified",
        "edgeproof: error: an error whose instance was given exit code 1",
    ]


# --- every --help shows the contract -----------------------------------------------------------

def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*path, name))


def _has_contract(text: str) -> bool:
    lines = text.splitlines()
    return any(lines[i:i + 6] == ["exit status:", *CONTRACT] for i in range(len(lines)))


def test_every_help_shows_the_contract() -> None:
    paths = list(_command_paths(cli.build_parser()))
    groups = {p[0] for p, _ in paths if p}
    assert groups >= {g[0] for g in cli.GROUPS} and len(paths) > len(cli.GROUPS) + 10
    for path, _ in paths:
        done = run(*path, "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert _has_contract(done.stdout), (path, done.stdout)


def test_existing_epilogs_are_kept() -> None:
    """An area's own epilog (examples, notes) still prints before the contract, in its own layout."""
    kept = 0
    for path, parser in _command_paths(cli.build_parser()):
        own = (parser.epilog or "").replace(cli.EXIT_STATUS_EPILOG, "").strip()
        if not own:
            continue
        text = parser.format_help()
        assert _has_contract(text), path
        before = text[: text.index("exit status:\n  0  ")]
        if issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter):  # type: ignore[arg-type]
            assert all(line.rstrip() in before for line in own.splitlines()), path
        else:
            assert " ".join(own.split()) in " ".join(before.split()), path
        kept += 1
    assert kept >= 3  # the top parser's, rehearse's and report weekly's


def test_readme_has_the_exit_status_table() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Exit status"):]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    for code in errors.EXIT_STATUSES:
        assert f"| {code} |" in section, code
