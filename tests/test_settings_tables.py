"""Settings declared once (edgeproof.settings): one table per config section drives the TOML reader,
the flags and the docs. Datasette-style: every setting of each converted table is in the matching
``--help`` and in its docs page, with the default the code has."""

from __future__ import annotations

import argparse
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeproof.errors import ConfigError, ConfigTypeError
from edgeproof.settings import Settings, at_least, between, setting

DOCS = Path(__file__).resolve().parents[1] / "docs"


@dataclass(frozen=True, slots=True)
class Sample:
    count: int = setting(3, "how many", check=at_least(1))
    ratio: float = setting(0.5, "a share", check=between(0, 1))
    on: bool = setting(False, "a switch")
    mode: str = setting("fast", "a mode", choices=("fast", "slow"))
    sizes: tuple[int, ...] = setting((1, 2), "sizes", item_check=at_least(1))
    limit: float | None = setting(None, "optional")
    note: str = "not a setting"


SAMPLE = Settings.of(Sample, "sample")


def test_a_table_reads_toml_with_one_validator() -> None:
    assert SAMPLE.names == ("count", "ratio", "on", "mode", "sizes", "limit")
    assert SAMPLE.build({}) == Sample()
    got = SAMPLE.build({"count": 5, "ratio": 1, "on": True, "sizes": [4], "limit": 2})
    assert got == Sample(5, 1.0, True, "fast", (4,), 2.0) and isinstance(got.ratio, float)
    cases = [
        ({"count": True}, ConfigTypeError, "f.toml: [sample] count: expected a whole number, got true"),
        ({"ratio": False}, ConfigTypeError, "f.toml: [sample] ratio: expected a number, got false"),
        ({"on": 1}, ConfigTypeError, "f.toml: [sample] on: expected true or false, got 1"),
        ({"sizes": [1, True]}, ConfigTypeError, "f.toml: [sample] sizes[1]: expected a whole number, got true"),
        ({"sizes": [1, 0]}, ConfigError, "f.toml: [sample] sizes[1]: must be >= 1, got 0"),
        ({"count": 0}, ConfigError, "f.toml: [sample] count: must be >= 1, got 0"),
        ({"ratio": 1.5}, ConfigError, "f.toml: [sample] ratio: must be 0..1, got 1.5"),
        ({"mode": "warp"}, ConfigError, 'f.toml: [sample] mode: must be one of "fast", "slow", got "warp"'),
        ({"colour": "red"}, ConfigError, "f.toml: [sample] colour: unknown key"),
        ({"note": "x"}, ConfigError, "f.toml: [sample] note: unknown key"),  # a plain field is not a setting
    ]
    for data, kind, message in cases:
        with pytest.raises(kind) as caught:
            SAMPLE.read(data, where="f.toml")
        assert str(caught.value) == message
    with pytest.raises(ConfigTypeError, match=r"f.toml: \[sample\] must be a table, got 3"):
        SAMPLE.read(3, where="f.toml")
    with pytest.raises(ConfigError, match="^f.toml: count: must be"):  # a top-level table has no name
        Settings("", SAMPLE.rows).read({"count": -1}, where="f.toml")


def test_a_table_yields_flags_env_and_docs() -> None:
    parser = argparse.ArgumentParser()
    SAMPLE.add_arguments(parser, required=("mode",))
    args = parser.parse_args(["--mode", "slow", "--no-on", "--sizes", "7", "--sizes", "8", "--ratio", "0.25"])
    assert SAMPLE.from_args(args) == {"count": 3, "ratio": 0.25, "on": False, "mode": "slow", "sizes": (7, 8)}
    assert parser.parse_args(["--mode", "fast"]).count == 3  # defaults from the one declaration
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --mode is required
    bad = parser.parse_args(["--mode", "fast", "--count", "0"])
    with pytest.raises(ConfigError, match="--count: must be >= 1, got 0"):
        SAMPLE.from_args(bad)
    help_text = parser.format_help()
    assert "(default: 3)" in help_text and "(required)" in help_text
    env = Settings("env", [setting_row("count", env="X_COUNT"), setting_row("on", env="X_ON")])
    assert env.from_env({"X_COUNT": "9", "X_ON": "yes"}) == {"count": 9, "on": True}
    with pytest.raises(ConfigError, match="X_COUNT: expected a whole number, got 'nine'"):
        env.from_env({"X_COUNT": "nine"})
    with pytest.raises(ConfigError, match="X_COUNT: must be >= 1, got 0"):
        env.from_env({"X_COUNT": "0"})
    text = SAMPLE.help_text()
    assert all(f"[sample] {name}" in text for name in SAMPLE.names)
    assert "| `count` | `3` | how many |" in SAMPLE.markdown()


def setting_row(name: str, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(SAMPLE[name], **changes)


# ------------------------------------------------------------------------------ the converted tables


def _toml_block(page: str, heading: str) -> dict[str, Any]:
    text = (DOCS / page).read_text()
    block = re.search(rf"{re.escape(heading)}.*?```toml\n(.*?)```", text, re.S)
    assert block, f"no TOML block under {heading!r} in docs/{page}"
    return tomllib.loads(block.group(1))


def _check_block(table: Settings[Any], doc: dict[str, Any], page: str, *, examples: tuple[str, ...] = ()) -> None:
    for r in table:
        assert r.name in doc, f"docs/{page}: [{table.table}] {r.name} is not documented"
        if r.name in examples:
            continue
        want = list(r.default) if isinstance(r.default, tuple) else r.default
        assert doc[r.name] == want, f"docs/{page}: [{table.table}] {r.name} = {doc[r.name]!r}, the code says {want!r}"


def test_loadtest_scenario_settings_are_the_documented_ones() -> None:
    from edgeproof.loadtest.scenario import SETTINGS

    doc = _toml_block("loadtest.md", "## Scenario files")
    entries = {"catalog.roles.NAME": doc["catalog"]["roles"]["thumb"],
               "clients.devices.NAME": doc["clients"]["devices"]["mobile"],
               "clients.browsers.NAME": doc["clients"]["browsers"]["chrome"]}
    for name, table in SETTINGS.items():
        if name in entries:  # an entry shows the built-in entries' values: keys only
            assert set(table.names) == set(entries[name]), name
            continue
        section = doc if not name else doc[name]
        _check_block(table, section, "loadtest.md", examples=("name",))
    help_text = "\n".join(t.help_text() for t in SETTINGS.values())
    for name, table in SETTINGS.items():
        for r in table:
            assert f"{'[' + name + '] ' if name else ''}{r.name} " in help_text


def test_locust_environment_is_the_documented_one() -> None:
    from edgeproof.loadtest.config import ENV_SETTINGS

    text = (DOCS / "loadtest.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `EDGEPROOF_")]
    for r in ENV_SETTINGS:
        row = next((line for line in rows if f"`{r.env}`" in line), None)
        assert row is not None, f"docs/loadtest.md does not list {r.env}"
        if isinstance(r.default, str) and r.default:
            assert f"`{r.default}`" in row, f"docs/loadtest.md: {r.env} defaults to {r.default!r}"


def test_rehearsal_settings_are_the_documented_ones() -> None:
    from edgeproof.rehearsal.config import AUTOSCALING_SETTINGS, SCENARIO_SETTINGS, STACK_SETTINGS

    doc = _toml_block("rehearsal.md", "## Scenario files")
    _check_block(SCENARIO_SETTINGS, doc, "rehearsal.md")
    _check_block(STACK_SETTINGS, doc["stack"], "rehearsal.md")
    _check_block(AUTOSCALING_SETTINGS, doc["autoscaling"], "rehearsal.md")


def _serve_parser() -> argparse.ArgumentParser:
    from edgeproof.edge.cli import register

    parser = argparse.ArgumentParser()
    register(parser)
    return parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr,return-value]


def test_every_edge_setting_is_a_flag_in_help_and_docs_with_its_default() -> None:
    from edgeproof.edge.config import EDGE_SETTINGS, SERVE_SETTINGS, TTL_SETTINGS

    serve = _serve_parser()
    help_text = serve.format_help()
    docs = (DOCS / "edge.md").read_text()
    cells = [re.split(r"(?<!\\)\|", line) for line in docs.splitlines() if line.startswith("| `--")]
    rows = {c[1].strip(): c[2].strip() for c in cells}
    actions = {a.dest: a for a in serve._actions}
    count = 0
    for table in (EDGE_SETTINGS, TTL_SETTINGS, SERVE_SETTINGS):
        for r in table:
            count += 1
            assert r.option in help_text, f"edge serve --help does not show {r.option}"
            action = actions[r.dest]
            if not action.required and r.type is not list:
                assert action.default == r.default, r.name  # the flag's default is the config's
            cell = next((v for k, v in rows.items() if re.search(rf"`{re.escape(r.option)}[` ]", k)), None)
            assert cell is not None, f"docs/edge.md has no row for {r.option}"
            shown = "(required)" if action.required else r.spelled_default(quoted=False)
            if r.shown_default is None and r.default not in (None, ()):
                assert shown in [c.strip("` ") for c in cell.split("/")], f"docs/edge.md: {r.option} is {cell!r}, " \
                                                                           f"the code says {shown}"
    assert count == len(EDGE_SETTINGS.rows) + len(TTL_SETTINGS.rows) + len(SERVE_SETTINGS.rows) >= 25


def test_edge_config_checks_are_the_tables(tmp_path: Path) -> None:
    """A keyword-built EdgeConfig goes through the same checks as the flags, and the errors name the flag."""
    from edgeproof.edge.config import EdgeConfig

    with pytest.raises(ConfigError, match=r"--pops: must be 1\.\.1000, got 0"):
        EdgeConfig(pops=0)
    with pytest.raises(ConfigError, match="--pops: expected a whole number, got true"):
        EdgeConfig(pops=True)
    with pytest.raises(ConfigError, match='--tier: must be one of "pop", "regional", "shield"'):
        EdgeConfig(tier="planet")
    with pytest.raises(ConfigError, match="--distribution-id: must be letters and digits"):
        EdgeConfig(distribution_id="E2-X")
    serve = _serve_parser()
    args = serve.parse_args(["--port", "1", "--origin-group=-,http://127.0.0.1:2", "--strategy", "sorted",
                             "--log-dir", str(tmp_path), "--origin-read-timeout", "2.5", "--tier", "shield"])
    from edgeproof.edge.config import EDGE_SETTINGS

    config = EdgeConfig(**EDGE_SETTINGS.from_args(args))
    assert (config.strategy, config.tier, config.origin_response_timeout, config.pops) == ("sorted", "shield", 2.5, 4)


# ------------------------------------------------------------------------------ the commands' --help


def _cli(*argv: str, cwd: Path | None = None) -> Any:
    """The real ``edgeproof`` command in a subprocess (as a user runs it)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edgeproof.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_every_rehearsal_setting_is_in_rehearse_help() -> None:
    from edgeproof.rehearsal.cli import _FLAGS
    from edgeproof.rehearsal.config import AUTOSCALING_SETTINGS, SCENARIO_SETTINGS, STACK_SETTINGS

    res = _cli("rehearse", "--help")
    assert res.returncode == 0, res.stderr
    for table in (SCENARIO_SETTINGS, STACK_SETTINGS, AUTOSCALING_SETTINGS):
        for r in table:
            prefix = f"[{table.table}] " if table.table else ""
            line = next((ln for ln in res.stdout.splitlines() if ln.strip().startswith(f"{prefix}{r.name} ")), None)
            assert line is not None, f"rehearse --help does not list {prefix}{r.name}"
            assert f"= {r.spelled_default()}" in line, f"rehearse --help: {line!r}, the code says {r.spelled_default()}"
    for name in _FLAGS:  # the flags that override a scenario key are the table's
        assert SCENARIO_SETTINGS[name].option in res.stdout and SCENARIO_SETTINGS[name].help.split(" (")[0] in res.stdout


def test_every_loadtest_setting_is_in_loadtest_run_help() -> None:
    from edgeproof.loadtest.scenario import SETTINGS
    from edgeproof.loadtest.shapes import PHASE_SETTINGS, SHAPE_SETTINGS, STAGE_SETTINGS

    res = _cli("loadtest", "run", "--help")
    assert res.returncode == 0, res.stderr
    lines = [ln.strip() for ln in res.stdout.splitlines()]
    count = 0
    for table in (*SETTINGS.values(), SHAPE_SETTINGS, PHASE_SETTINGS, STAGE_SETTINGS):
        for r in table:
            count += 1
            key = f"[{table.table}] {r.name}" if table.table else r.name
            line = next((ln for ln in lines if ln.startswith(key + " ")), None)
            assert line is not None, f"loadtest run --help does not list {key}"
            assert f"= {r.spelled_default()}" in line, f"loadtest run --help: {line!r}"
    assert count >= 45
    for flag in ("--duration", "--peak-rps", "--gate", "--replay-speed", "--keys-file"):
        assert flag in res.stdout
    show = _cli("loadtest", "show", "--help")
    assert "--duration" in show.stdout and "--keys-file" in show.stdout


def test_shape_settings_are_the_documented_ones() -> None:
    """``[shape]`` in docs/loadtest.md: the keys it sets have the code's defaults, the other kinds' keys
    are in its comments with theirs (``low = 0.2``)."""
    from edgeproof.loadtest.shapes import PHASE_SETTINGS, SHAPE_SETTINGS

    doc = _toml_block("loadtest.md", "## Scenario files")["shape"]
    block = re.search(r"\n\[shape\]\n.*?\n\n", (DOCS / "loadtest.md").read_text(), re.S)
    assert block
    for r in SHAPE_SETTINGS:
        if r.name in doc:
            want = list(r.default) if isinstance(r.default, tuple) else r.default
            assert doc[r.name] == want, f"docs/loadtest.md: [shape] {r.name} = {doc[r.name]!r}, the code says {want!r}"
        else:
            assert f"{r.name} = {r.spelled_default()}" in block.group(0), f"docs/loadtest.md: [shape] {r.name}"
    _check_block(PHASE_SETTINGS, doc["phases"], "loadtest.md")


def test_a_flag_and_a_scenario_file_refuse_the_same_peak_rps(tmp_path: Path) -> None:
    """``--peak-rps 0.05`` was accepted (its own check: > 0) while a scenario file refused it (>= 0.1):
    now both go through the scenario's table, and so does a programmatic override."""
    from edgeproof.rehearsal.run import RehearsalOptions, _resolve

    message = "must be >= 0.1, got 0.05"
    flag = _cli("rehearse", "--peak-rps", "0.05", "--out", str(tmp_path / "a"), "--quiet", cwd=tmp_path)
    scenario = tmp_path / "slow.toml"
    scenario.write_text('name = "slow"\npeak_rps = 0.05\n')
    file = _cli("rehearse", "--scenario", str(scenario), "--out", str(tmp_path / "b"), "--quiet", cwd=tmp_path)
    assert (flag.returncode, file.returncode) == (2, 2), (flag.stderr, file.stderr)
    assert f"--peak-rps: {message}" in flag.stderr
    assert f"{scenario}: peak_rps: {message}" in file.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything started
    with pytest.raises(ConfigError, match=f"peak_rps: {message}"):
        _resolve(RehearsalOptions(peak_rps=0.05))
    with pytest.raises(ConfigError, match="duration: must be >= 5, got 4"):
        _resolve(RehearsalOptions(duration=4))
    assert _resolve(RehearsalOptions(peak_rps=0.1, strategy="passthrough")).peak_rps == 0.1


def test_loadtest_flags_are_checked_by_the_scenario_tables() -> None:
    res = _cli("loadtest", "show", "spike", "--peak-rps", "0", "--sample", "1")
    assert res.returncode == 2 and "--peak-rps: must be > 0" in res.stderr, res.stderr
    res = _cli("loadtest", "run", "spike", "--host", "http://127.0.0.1:9", "--replay-speed", "-1")
    assert res.returncode == 2 and "--replay-speed: must be >= 0" in res.stderr, res.stderr


def test_every_origin_setting_is_in_origin_serve_help_and_docs_with_its_default() -> None:
    """``origin serve``'s flags are made by :data:`ORIGIN_SETTINGS`: the real ``--help`` shows each with
    the code's default, the argparse names and defaults are the config's, and docs/origin.md agrees."""
    from edgeproof.origin.config import ORIGIN_SETTINGS, OriginConfig, add_arguments, from_args

    res = _cli("origin", "serve", "--help")
    assert res.returncode == 0, res.stderr
    lines: list[str] = []  # one entry per flag, argparse's wrapping undone
    for ln in res.stdout.split("\noptions:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        if ln.strip().startswith("-"):
            lines.append(ln.strip())
        elif lines:
            lines[-1] += " " + ln.strip()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    assert from_args(parser.parse_args([])) == OriginConfig()  # no flag: the dataclass's defaults
    docs = (DOCS / "origin.md").read_text()
    section = docs.split("## `edgeproof origin serve`", 1)[1].split("\n## ", 1)[0]
    cells = [re.split(r"(?<!\\)\|", line) for line in section.splitlines() if line.startswith("| `--")]
    rows = {c[1].strip(): c[2].strip() for c in cells}
    for r in ORIGIN_SETTINGS:
        shown = r.spelled_default(quoted=False)
        line = next((ln for ln in lines if ln.startswith(f"{r.option} ") or ln.startswith(f"{r.option},")), None)
        assert line is not None, f"origin serve --help does not show {r.option}"
        assert line.endswith(f"(default: {shown})"), f"origin serve --help: {line!r}, the code says {shown}"
        assert r.dest == r.name and r.name in actions, r.name  # args.<name>, as before the table
        if r.type is not list:
            assert actions[r.name].default == r.default, r.name
        cell = next((v for k, v in rows.items() if re.search(rf"`{re.escape(r.option)}`", k)), None)
        assert cell is not None, f"docs/origin.md has no row for {r.option}"
        spelled = re.findall(r"`([^`]*)`", cell)
        assert shown in spelled or cell.startswith(shown) or (r.shown_default and shown in cell), \
            f"docs/origin.md: {r.option} is {cell!r}, the code says {shown}"
    assert len(ORIGIN_SETTINGS.rows) >= 25


def test_origin_config_checks_are_the_tables() -> None:
    """A keyword-built OriginConfig and a flag go through the one validator: a bool is no number, and
    the error names the flag and what it must be."""
    from edgeproof.origin.config import OriginConfig

    cases = [
        ({"port": True}, ConfigTypeError, "--port: expected a whole number, got true"),
        ({"max_source_mb": False}, ConfigTypeError, "--max-source-mb: expected a number, got false"),
        ({"write_derivatives": 1}, ConfigTypeError, "--write-derivatives: expected true or false, got 1"),
        ({"signing_key": ("k", 7)}, ConfigTypeError, "--signing-key[1]: expected a string, got 7"),
        ({"port": 70000}, ConfigError, "--port: must be 0..65535, got 70000"),
        ({"queue_limit": -1}, ConfigError, "--queue-limit: must be >= 0, got -1"),
        ({"avif_effort": 10}, ConfigError, "--avif-effort: must be 0..9, got 10"),
        ({"max_width": 0}, ConfigError, "--max-width: must be >= 1, got 0"),
        ({"keepalive_timeout": 0.0}, ConfigError, "--keepalive-timeout: must be > 0, got 0.0"),
        ({"metrics_bind": "nonsense"}, ConfigError, "--metrics-bind: must be HOST:PORT"),
    ]
    for values, kind, message in cases:
        with pytest.raises(kind) as caught:
            OriginConfig(**values)
        assert str(caught.value).startswith(message), (values, str(caught.value))
    config = OriginConfig(max_source_mb=2, signing_key=("a",), metrics_bind=":9464")
    assert isinstance(config.max_source_mb, float) and config.limits.max_source_bytes == 2 * 1024 * 1024
    assert config.metrics_address == ("127.0.0.1", 9464)
    res = _cli("origin", "serve", "--queue-limit", "-1")
    assert res.returncode == 2 and "--queue-limit: must be >= 0, got -1" in res.stderr, res.stderr


def test_locust_env_duration_and_peak_rps_take_the_shapes_checks() -> None:
    """``EDGEPROOF_DURATION`` / ``EDGEPROOF_PEAK_RPS`` override ``[shape]``'s keys: one rule, the shape's."""
    from edgeproof.loadtest.config import ENV_SETTINGS
    from edgeproof.loadtest.shapes import SHAPE_SETTINGS

    for name, env in (("duration", "EDGEPROOF_DURATION"), ("peak_rps", "EDGEPROOF_PEAK_RPS")):
        assert ENV_SETTINGS[name].check is SHAPE_SETTINGS[name].check, name
        with pytest.raises(ConfigError) as caught:
            ENV_SETTINGS.from_env({env: "0"})
        with pytest.raises(ConfigError) as shape:
            SHAPE_SETTINGS.read({name: 0.0})
        assert str(caught.value).split(": ", 1)[1] == str(shape.value).split(f"{name}: ", 1)[1]
