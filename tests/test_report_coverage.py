"""edgeproof.analytics.coverage: hour stamps and a window → the missing hours as compact ranges.

The reference model is the plain one: walk every hour of the window and ask whether it is in the set.
hypothesis draws random windows and random hour sets; the ranges must cover exactly the missing hours,
in order, disjoint and never adjacent (adjacent ranges would not be "compact").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from edgeproof.analytics.coverage import DAY, HOUR, Gap, coverage, missing_ranges, parse_stamp, slots
from hypothesis import given, settings
from hypothesis import strategies as st

BASE = datetime(2026, 11, 16, tzinfo=UTC)  # Monday of 2026-W47


def _expand(gaps: list[Gap], step: timedelta = HOUR) -> list[datetime]:
    out = []
    for gap in gaps:
        at = gap.start
        while at < gap.end:
            out.append(at)
            at += step
    return out


@st.composite
def windows_and_hours(draw: st.DrawFn) -> tuple[datetime, datetime, set[datetime]]:
    start = BASE + timedelta(hours=draw(st.integers(-48, 48)))
    length = draw(st.integers(1, 24 * 9))
    end = start + timedelta(hours=length)
    # stamps anywhere in and around the window, at any minute of their hour
    offsets = draw(st.sets(st.integers(-30, length + 30), max_size=length + 60))
    minutes = draw(st.integers(0, 59))
    have = {start + timedelta(hours=o, minutes=minutes) for o in offsets}
    return start, end, have


@settings(max_examples=300, deadline=None)
@given(windows_and_hours())
def test_ranges_cover_exactly_the_missing_hours(case: tuple[datetime, datetime, set[datetime]]) -> None:
    start, end, have = case
    gaps = missing_ranges(have, start, end)
    present = {h.replace(minute=0, second=0, microsecond=0) for h in have}
    expected_missing = [h for h in slots(start, end) if h not in present]
    assert _expand(gaps) == expected_missing
    for a, b in zip(gaps, gaps[1:], strict=False):
        assert a.end < b.start  # disjoint, in order, and a hole with data between them
    for gap in gaps:
        assert start <= gap.start < gap.end <= end and gap.hours == len(_expand([gap]))
    cov = coverage(have, start, end)
    assert cov.expected == len(slots(start, end)) == (end - start) // HOUR
    assert cov.with_data == cov.expected - len(expected_missing)
    assert cov.complete == (not expected_missing)
    assert sum(cov.days_missing().values()) == len(expected_missing)
    as_dict = cov.to_dict()
    assert as_dict["hours_missing"] == sum(g["hours"] for g in as_dict["missing"]) == len(expected_missing)


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, 13), max_size=14))
def test_day_steps_for_summarize_by_day(days: set[int]) -> None:
    start, end = BASE, BASE + timedelta(days=14)
    have = {BASE + timedelta(days=d, hours=7) for d in days}
    gaps = missing_ranges(have, start, end, step=DAY)
    assert _expand(gaps, DAY) == [BASE + timedelta(days=d) for d in range(14) if d not in days]
    assert coverage(have, start, end, step=DAY).to_dict()["hours_missing"] == 24 * (14 - len(days))


def test_one_missing_day_is_one_labelled_range() -> None:
    start, end = BASE, BASE + timedelta(days=7)
    have = [h for h in slots(start, end) if h.day != 18]
    (gap,) = missing_ranges(have, start, end)
    assert gap.label == "2026-11-18 00:00–23:59 UTC (24 h)"
    assert gap.to_dict() == {"start": "2026-11-18T00:00:00+00:00", "end": "2026-11-19T00:00:00+00:00",
                             "hours": 24, "label": "2026-11-18 00:00–23:59 UTC (24 h)"}
    cov = coverage(have, start, end)
    assert (cov.expected, cov.with_data, cov.days_missing()) == (168, 144, {"2026-11-18": 24})


def test_labels_of_short_and_multi_day_ranges() -> None:
    assert Gap(BASE + timedelta(hours=5), BASE + timedelta(hours=6)).label == "2026-11-16 05:00–05:59 UTC (1 h)"
    assert (Gap(BASE + timedelta(hours=20), BASE + timedelta(days=2, hours=3)).label
            == "2026-11-16 20:00 – 2026-11-18 02:59 UTC (31 h)")


def test_window_edges_no_data_and_unaligned_bounds() -> None:
    start, end = BASE, BASE + timedelta(days=1)
    assert [(g.start, g.end) for g in missing_ranges([], start, end)] == [(start, end)]
    assert missing_ranges(slots(start, end), start, end) == []
    # stamps outside the window change nothing
    assert missing_ranges([start - HOUR, end], start, end) == missing_ranges([], start, end)
    # a window that starts and ends inside an hour expects every hour it touches
    assert slots(BASE + timedelta(minutes=30), BASE + timedelta(hours=2, minutes=1)) == [
        BASE, BASE + HOUR, BASE + 2 * HOUR]
    with pytest.raises(ValueError):
        slots(start, end, timedelta(0))


@pytest.mark.parametrize("text", ["2026-11-18T05", "2026-11-18T05:00Z", "2026-11-18T05:00:00+00:00",
                                  "2026-11-18T06:00:00+01:00"])
def test_parse_stamp_reads_the_report_and_summarize_spellings(text: str) -> None:
    assert parse_stamp(text) == datetime(2026, 11, 18, 5, tzinfo=UTC)
