"""The load generator's fast paths against their plain references (hypothesis generates the inputs).

* :class:`edgeproof.loadtest.workload.Workload` (tables per client and per role × device, the noise-free
  query shortcut, batched :meth:`~Workload.stream`) gives the same requests, in the same order, as
  :class:`edgeproof.loadtest._workload_ref.ReferenceWorkload`, for generated scenarios, lanes, spike starts
  and offset sequences.
* :class:`edgeproof.loadtest.recorder.Recorder` (rows held as columns, one Arrow conversion per column)
  writes the table :func:`~edgeproof.loadtest.recorder.rows_table_reference` builds from the same rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from edgeproof.loadtest._workload_ref import ReferenceWorkload
from edgeproof.loadtest.recorder import RECORD_SCHEMA, Recorder, columns_table, rows_table_reference
from edgeproof.loadtest.scenario import Scenario, scenario_from_dict
from edgeproof.loadtest.workload import Workload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_share = st.one_of(st.sampled_from([0.0, 0.005, 0.3, 0.5, 1.0]), st.floats(0.0, 1.0))


@st.composite
def scenarios(draw: st.DrawFn, keys_file: Path) -> Scenario:
    catalog: dict[str, object] = {"zipf": draw(st.sampled_from([0.0, 0.9, 1.3]))}
    skus = 25  # the keys file's groups
    if draw(st.booleans()):
        catalog["keys_file"] = str(keys_file)
    else:
        skus = draw(st.integers(1, 60))
        catalog |= {"skus": skus, "images_per_sku": draw(st.integers(1, 4))}
    return scenario_from_dict({
        "seed": draw(st.integers(0, 2**31)),
        "catalog": catalog,
        "clients": {"population": draw(st.integers(1, 400)), "pops": draw(st.integers(1, 8)),
                    "pop_header": draw(st.sampled_from(["", "X-Edge-Pop"]))},
        "noise": {k: draw(_share) for k in ("shuffle", "aliases", "upper_case", "tracking", "cache_buster",
                                            "odd_dpr")},
        "promotion": {"new_skus": draw(st.integers(0, min(12, skus - 1))), "share": draw(_share)},
    }, where="differential")


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "catalog.txt"
    path.write_text("".join(f"images/sku-{s:05d}-{n}.{'png' if n == 2 else 'jpg'}\n" for s in range(1, 25)
                            for n in range(1, 1 + s % 3 + 1)) + "logo with space.svg\n")
    return path


_offsets = st.lists(st.floats(0.0, 20.0, allow_nan=False), max_size=300).map(sorted)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), lane=st.integers(0, 3), spike=st.one_of(st.none(), st.floats(0.0, 20.0)),
       offsets=_offsets, batch=st.integers(1, 70))
def test_workload_stream_equals_the_reference_model(keys_file: Path, data: st.DataObject, lane: int,
                                                    spike: float | None, offsets: list[float], batch: int) -> None:
    sc = data.draw(scenarios(keys_file))
    ref = ReferenceWorkload(sc, lane=lane, spike_start=spike)
    expected = [(off, f"phase{i % 3}", ref.next(off)) for i, off in enumerate(offsets)]
    fast = Workload(sc, lane=lane, spike_start=spike)
    got = list(fast.stream(((off, f"phase{i % 3}") for i, off in enumerate(offsets)), batch=batch))
    assert got == expected
    # and one next() at a time (the tables' caches filled by the stream above, for a second lane's draws)
    again = Workload(sc, lane=lane, spike_start=spike)
    assert [again.next(off) for off in offsets] == [r for _, _, r in expected]


def test_the_reference_sees_the_noise_it_models() -> None:
    """The differential test is not vacuous: the spike workload's noise shows in both models' URLs."""
    from edgeproof.loadtest.scenario import load_scenario

    sc = load_scenario("spike")
    ref = ReferenceWorkload(sc, spike_start=0.0)
    urls = [ref.next(1.0).url for _ in range(2000)]
    assert any("utm_" in u for u in urls) and any("dpr=" in u for u in urls) and any("AUTO" in u for u in urls)
    assert any(u.split("?")[1].startswith(("f=", "fmt=", "format=", "q", "utm", "dpr", "cb")) for u in urls)
    assert any(r.promoted for r in (ref.next(1.0) for _ in range(500)))


_text = st.one_of(st.none(), st.text(max_size=12))
_time = st.floats(1.0e9, 2.5e9, allow_nan=False)
_rows = st.lists(st.tuples(
    _time, st.one_of(st.none(), _time), st.one_of(st.none(), st.floats(-1e6, 1e6)),
    st.one_of(st.none(), st.floats(-1e6, 1e6)), st.integers(0, 599), st.integers(0, 2**40), _text, _text,
    st.text(max_size=40), st.text(max_size=6), st.integers(-1, 2**31 - 1), st.booleans(), st.text(max_size=8),
    st.integers(0, 64), st.booleans(), st.booleans(), _text), min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(rows=_rows)
def test_recorder_columns_equal_the_per_row_reference(rows: list[tuple]) -> None:
    expected = rows_table_reference(rows)
    assert columns_table([list(c) for c in zip(*rows, strict=True)]).equals(expected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, row_group=st.integers(1, 25))
def test_recorder_file_holds_the_reference_rows(tmp_path: Path, rows: list[tuple], row_group: int) -> None:
    rec = Recorder(tmp_path, row_group=row_group, name=f"part-{len(rows)}-{row_group}.parquet")
    for row in rows:
        rec.add_row(row)
    rec.close()
    meta = pq.ParquetFile(rec.path).metadata
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= row_group
    assert pq.read_table(rec.path, schema=RECORD_SCHEMA).equals(rows_table_reference(rows))
