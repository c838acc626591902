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
    from edgeproof.rehearsal.config import SCENARIO_SETTINGS, STACK_SETTINGS

    doc = _toml_block("rehearsal.md", "## Scenario files")
    _check_block(SCENARIO_SETTINGS, doc, "rehearsal.md")
    _check_block(STACK_SETTINGS, doc["stack"], "rehearsal.md")


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
