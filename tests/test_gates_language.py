"""One gate language: the load test's gates and the rehearsal's origin gates are one grammar, one
parser, one formatter and one judgement (edgeproof.loadtest.gates), the families being only data."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from edgeproof.loadtest import gates as g
from edgeproof.loadtest.gates import (
    LOAD_METRICS,
    Gate,
    evaluate,
    evaluate_values,
    format_gate,
    judge,
    parse_gate,
)
from edgeproof.loadtest.recorder import RECORD_SCHEMA
from edgeproof.rehearsal.config import ORIGIN_METRICS
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof.errors import ConfigError

_load_metric = st.one_of(st.sampled_from(sorted(LOAD_METRICS.names)),
                         st.builds(lambda n, raw: f"p{n}{'_raw' if raw else ''}_ms", st.integers(0, 9999), st.booleans()))
_filter = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_threshold = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
_op = st.sampled_from(sorted(g.OPS))


def _gate(metric: str, filters: list[str], op: str, threshold: float) -> Gate:
    return Gate("", metric, tuple(filters), op, threshold)


_load_gate = st.builds(_gate, _load_metric, st.lists(_filter, max_size=3), _op, _threshold)
_origin_gate = st.builds(_gate, st.sampled_from(sorted(ORIGIN_METRICS.names)), st.just([]), _op, _threshold)


def _same(a: Gate, b: Gate) -> bool:
    return (a.metric, a.filters, a.op, a.threshold) == (b.metric, b.filters, b.op, b.threshold)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.tuples(_load_gate, st.just(LOAD_METRICS)), st.tuples(_origin_gate, st.just(ORIGIN_METRICS))),
       st.sampled_from(["", " ", "  "]))
def test_parse_of_format_roundtrips_for_both_families(case: tuple[Gate, Any], pad: str) -> None:
    gate, family = case
    text = format_gate(gate)
    back = parse_gate(pad + text + pad, family)
    assert _same(back, gate), (text, back)
    assert back.expr == text and format_gate(back) == text  # the canonical spelling is a fixed point
    assert math.copysign(1, back.threshold) == math.copysign(1, gate.threshold)  # even -0.0


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=30))
def test_one_grammar_one_message_for_both_families(text: str) -> None:
    """Whatever the text, both families accept it or refuse it for the same grammar reason: a text the
    grammar refuses gets the same message from both; one it accepts differs only by vocabulary."""
    outcomes = []
    for family in (LOAD_METRICS, ORIGIN_METRICS):
        try:
            outcomes.append(("ok", parse_gate(text, family, where="x.toml").metric))
        except ConfigError as err:
            outcomes.append(("error", err.message))
    (_, a), (_, b) = outcomes
    if any("malformed gate" in str(x) for x in (a, b)):
        assert a == b and str(a).startswith("x.toml: malformed gate ")


def test_the_families_differ_only_by_their_data() -> None:
    with pytest.raises(ConfigError, match=r"^o.toml: origin_gates\[0\]: unknown origin metric 'hit_rate'"):
        parse_gate("hit_rate >= 0.9", ORIGIN_METRICS, where="o.toml: origin_gates[0]")
    with pytest.raises(ConfigError, match="unknown gate metric 'transforms'"):
        parse_gate("transforms <= 3", LOAD_METRICS)
    with pytest.raises(ConfigError, match="origin metrics take no filters"):
        parse_gate("transforms(miss) <= 3", ORIGIN_METRICS)
    with pytest.raises(ConfigError, match="finite"):
        parse_gate("hit_rate >= 1e999")
    assert parse_gate("p100_ms <= 5").metric == "p100_ms"
    # the no-data rule is the family's: a percentile over no rows passes, an origin gate without its value fails
    assert judge(parse_gate("p99_ms(miss) <= 5"), None, 0).passed
    assert not judge(parse_gate("hit_rate >= 0.5"), None, 0).passed
    assert [r.passed for r in evaluate_values(["transforms <= 3", "origin_503 == 0"], {"transforms": 3.0},
                                              ORIGIN_METRICS)] == [True, False]


def test_both_kinds_of_gate_go_through_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder-row gates and the rehearsal's origin gates are judged by the same function."""
    from edgeproof.rehearsal.analysis import _origin_gates

    seen: list[tuple[str, float | None]] = []
    real = g.judge

    def recording(gate: Gate, value: float | None, rows: int, metrics: Any = LOAD_METRICS) -> Any:
        seen.append((gate.expr, value))
        return real(gate, value, rows, metrics)

    monkeypatch.setattr(g, "judge", recording)
    empty = pa.Table.from_pylist([], schema=RECORD_SCHEMA)
    verdict = evaluate(empty, ["hit_rate >= 0.96"])
    origin = _origin_gates(("repeat_transform_rate <= 0.1",), {"repeat_transform_rate": 0.25})
    assert seen == [("hit_rate >= 0.96", None), ("repeat_transform_rate <= 0.1", 0.25)]
    assert not verdict.passed and not origin[0].passed and origin[0].rows == 0
    with pytest.raises(ConfigError, match=r"origin_gates: unknown origin metric 'p99_ms'"):
        _origin_gates(("p99_ms <= 3",), {})
