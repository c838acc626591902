"""The one TOML writer (edgeproof.tomlfile.dump_toml, tomli_w) and the one config type check
(edgeproof.settings): round trips, the documented ``stages`` load shape, keys that need quotes,
control characters; a boolean is never a whole number."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof.errors import ConfigError
from edgeproof.settings import ConfigTypeError, expect, expect_list
from edgeproof.tomlfile import dump_toml

STAGES = [{"name": "warm", "seconds": 30, "rps": 10, "to_rps": 40},
          {"name": "peak", "seconds": 20.5, "rps": 40}]


def roundtrip(table: dict[str, Any]) -> dict[str, Any]:
    return tomllib.loads(dump_toml(table))


def test_stages_shape_roundtrips() -> None:
    table = {"name": "x", "shape": {"kind": "stages", "stages": STAGES}}
    assert roundtrip(table) == table


def test_keys_that_need_quotes_and_control_characters() -> None:
    table = {
        "a key": 1, "k.dot": "v", "": "empty key", "ü": "é", "x=y": True, 'q"uote': "back\\slash",
        "ctl": "nul\x00 bell\x07 esc\x1b del\x7f tab\t cr\r lf\n", "nested": {"with space": {"deep.er": [1, 2]}},
    }
    assert roundtrip(table) == table


def test_tuples_dates_and_floats() -> None:
    import datetime as dt

    table = {"t": (1, 2), "when": dt.date(2026, 11, 27), "big": 2_000_003, "f": 1e300, "neg": -0.0}
    got = roundtrip(table)
    assert got["t"] == [1, 2] and got["when"] == table["when"] and got["big"] == 2_000_003
    assert got["f"] == 1e300 and math.copysign(1, got["neg"]) == -1


def test_unwritable_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        dump_toml({"a": None})
    with pytest.raises(ConfigError):
        dump_toml({"a": [object()]})


_scalars = st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                     st.floats(allow_nan=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=12), _values, max_size=6))
def test_any_table_roundtrips(table: dict[str, Any]) -> None:
    assert roundtrip(table) == table


def test_rehearsal_with_stages_writes_its_loadtest_scenario(tmp_path: Path) -> None:
    """The documented stages shape through the rehearsal's loadtest-scenario file (it failed at start)."""
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.loadtest.shapes import build_shape
    from edgeproof.rehearsal.config import rehearsal_from_dict
    from edgeproof.rehearsal.run import _loadtest_table

    scenario = rehearsal_from_dict({"loadtest": {"shape": {"kind": "stages", "stages": STAGES}}})
    table = _loadtest_table(scenario, None)
    file = tmp_path / "loadtest-scenario.toml"
    file.write_text(dump_toml(table))
    assert tomllib.loads(file.read_text()) == table
    shape = build_shape(load_scenario(file).shape, where=str(file))
    assert [s.name for s in shape.stages] == ["warm", "peak"] and shape.duration == 50.5


def test_one_writer() -> None:
    """The rehearsal's writer is the kernel's (the hand-written copy is gone)."""
    import edgeproof.rehearsal.config as rc

    import edgeproof.tomlfile as tf

    assert rc.dump_toml is tf.dump_toml
    assert not hasattr(rc, "_toml_value")


# ------------------------------------------------------------------------------ type checks


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_never_a_number(value: bool) -> None:
    with pytest.raises(ConfigTypeError, match=r"\[t\] k: expected a whole number, got (true|false)"):
        expect(value, int, table="t", key="k")
    with pytest.raises(ConfigTypeError, match=r"\[t\] k: expected a number"):
        expect(value, float, table="t", key="k")
    assert expect(value, bool, table="t", key="k") is value


def test_expect_accepts_and_names_everything() -> None:
    assert expect(30, float, table="t", key="k") == 30.0 and isinstance(expect(30, float, table="t", key="k"), float)
    assert expect_list([320, 640], int, table="catalog.roles.thumb", key="widths") == [320, 640]
    with pytest.raises(ConfigTypeError) as caught:
        expect_list([320, True], int, table="catalog.roles.thumb", key="widths", where="lt.toml")
    assert str(caught.value) == "lt.toml: [catalog.roles.thumb] widths[1]: expected a whole number, got true"
    assert caught.value.exit_code == 2 and isinstance(caught.value, ConfigError)
    with pytest.raises(ConfigTypeError, match=r'\[t\] k: expected a list of whole numbers, got "320"'):
        expect_list("320", int, table="t", key="k")
    with pytest.raises(ConfigTypeError, match="expected a non-empty list"):
        expect_list([], int, table="t", key="k", non_empty=True)
    with pytest.raises(ConfigTypeError, match="expected a string, got 3"):
        expect(3, str, table="t", key="k")


@pytest.mark.parametrize(
    "canonical, message",
    [
        ({"breakpoints": [True, 320]}, r"\[canonical\] breakpoints\[0\]: expected a whole number, got true"),
        ({"quality_buckets": [40, False]}, r"\[canonical\] quality_buckets\[1\]: expected a whole number, got false"),
        ({"max_dpr": True}, r"\[canonical\] max_dpr: expected a number, got true"),
        ({"breakpoints": 320}, r"\[canonical\] breakpoints: expected a list of whole numbers, got 320"),
    ],
)
def test_strategy_toml_refuses_booleans(tmp_path: Path, canonical: dict[str, Any], message: str) -> None:
    from edgeproof.analytics.strategies import get_strategy

    file = tmp_path / "mine.toml"
    file.write_text(dump_toml({"mode": "canonical", "canonical": canonical}))
    with pytest.raises(ConfigError, match=message) as caught:
        get_strategy(str(file))
    assert str(file) in str(caught.value)  # and the file it came from


def test_strategy_toml_numbers_still_accepted(tmp_path: Path) -> None:
    from edgeproof.analytics.strategies import get_strategy

    file = tmp_path / "mine.toml"
    file.write_text(dump_toml({"mode": "canonical", "canonical": {"breakpoints": [320, 640], "max_dpr": 2}}))
    config = get_strategy(str(file)).config
    assert config.canonical.breakpoints == (320, 640) and config.canonical.max_dpr == 2.0
