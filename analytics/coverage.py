"""Which hours of a time window have log data, and the missing ones as compact ranges.

A report over a window (an ISO week, a ``--from``/``--to`` range) is only as good as the logs it
read: a day whose files never arrived looks exactly like a day that did not happen, and when that
day was the bad one the verdict flips. CloudFront delivers a period's log files usually within an
hour, but some or all entries of a period can be delayed by up to 24 hours (AWS CloudFront Developer
Guide, *Standard logging reference*, "Timing of log file delivery"), and a lost upload or a missed
prefix looks the same as a quiet day: the reader of a window has to work out for itself which hours
it has. An hour *has data* when at least one request of that hour
was read; a busy CDN serves requests every hour, so an hour without any is a gap in the logs.

This module is pure (no I/O, no Arrow): give it the hour stamps that had data and the window, get
the hours expected, the hours with data and the missing ones as ranges of consecutive hours
(``2026-11-18 00:00–23:59 UTC (24 h)``). The weekly report uses it; ``logs summarize --by hour`` can
feed it its hour keys (:func:`parse_stamp` reads both spellings), and ``--by day`` can pass
``step=DAY``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

__all__ = ["DAY", "HOUR", "Coverage", "CoverageDict", "GapDict", "Gap", "coverage", "missing_ranges",
           "parse_stamp", "slots"]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class GapDict(TypedDict):
    start: str
    end: str
    hours: float | int
    label: str


class CoverageDict(TypedDict):
    start: str
    end: str
    complete: bool
    hours_expected: int
    hours_with_data: int
    hours_missing: int
    missing: list[GapDict]


def _whole(value: float) -> float | int:
    """24.0 → 24 (JSON readers see whole hours as integers)."""
    return int(value) if value == int(value) else value


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since the Unix epoch (UTC hours, UTC days)."""
    moment = _utc(moment)
    return moment - (moment - _EPOCH) % step


def parse_stamp(text: str) -> datetime:
    """An hour or day key as the reports spell them → aware UTC datetime.

    Accepts ``2026-11-18T05`` (the weekly summary.json's hour key), ``2026-11-18T05:00Z`` (``logs
    summarize --by hour``), ``2026-11-18`` (a day key) and any other ISO 8601 form; naive means UTC.
    """
    return _utc(datetime.fromisoformat(text.strip()))


def slots(start: datetime, end: datetime, step: timedelta = HOUR) -> list[datetime]:
    """Every ``step`` slot (hour by default) that overlaps ``[start, end)``, in order."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    out: list[datetime] = []
    at, stop = _floor(start, step), _utc(end)
    while at < stop:
        out.append(at)
        at += step
    return out


@dataclass(frozen=True, slots=True)
class Gap:
    """Consecutive slots without data: ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start) / HOUR

    @property
    def label(self) -> str:
        """``2026-11-18 00:00–23:59 UTC (24 h)``; a range over several days names both dates."""
        last = self.end - timedelta(minutes=1)
        hours = self.hours
        count = f"{hours:.0f} h" if hours == int(hours) else f"{hours:g} h"
        if last.date() == self.start.date():
            return f"{self.start:%Y-%m-%d %H:%M}–{last:%H:%M} UTC ({count})"
        return f"{self.start:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M} UTC ({count})"

    def to_dict(self) -> GapDict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "hours": _whole(self.hours),
                "label": self.label}


def missing_ranges(have: Iterable[datetime], start: datetime, end: datetime, step: timedelta = HOUR) -> list[Gap]:
    """The slots of ``[start, end)`` not in ``have``, merged into ranges of consecutive slots.

    Stamps in ``have`` are floored to their slot, so an hour stamp and any moment inside that hour
    are the same; stamps outside the window are ignored. The ranges are disjoint, in order, never
    adjacent, and together cover exactly the missing slots.
    """
    present = {_floor(h, step) for h in have}
    gaps: list[Gap] = []
    run_start: datetime | None = None
    for at in slots(start, end, step):
        if at in present:
            if run_start is not None:
                gaps.append(Gap(run_start, at))
                run_start = None
        elif run_start is None:
            run_start = at
    if run_start is not None:
        gaps.append(Gap(run_start, slots(start, end, step)[-1] + step))
    return gaps


@dataclass(frozen=True, slots=True)
class Coverage:
    """How much of a window the logs cover, in slots (hours unless ``step`` says otherwise)."""

    start: datetime
    end: datetime
    expected: int
    with_data: int
    missing: tuple[Gap, ...]
    step: timedelta = HOUR

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def missing_slots(self) -> int:
        return self.expected - self.with_data

    def days_missing(self) -> dict[str, float | int]:
        """Missing hours per UTC day (``YYYY-MM-DD`` → hours), for a per-day table."""
        out: dict[str, float | int] = {}
        for gap in self.missing:
            at = gap.start
            while at < gap.end:
                day_end = min(gap.end, _floor(at, DAY) + DAY)
                key = f"{at:%Y-%m-%d}"
                out[key] = _whole(out.get(key, 0) + (day_end - at) / HOUR)
                at = day_end
        return out

    def to_dict(self) -> CoverageDict:
        per_hour = self.step / HOUR
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "complete": self.complete,
            "hours_expected": round(self.expected * per_hour),
            "hours_with_data": round(self.with_data * per_hour),
            "hours_missing": round(self.missing_slots * per_hour),
            "missing": [g.to_dict() for g in self.missing],
        }


def coverage(have: Iterable[datetime], start: datetime, end: datetime, step: timedelta = HOUR) -> Coverage:
    """:class:`Coverage` of ``[start, end)`` by the slots in ``have`` (see :func:`missing_ranges`)."""
    expected = slots(start, end, step)
    window = set(expected)
    present = {_floor(h, step) for h in have} & window
    return Coverage(_utc(start), _utc(end), len(expected), len(present),
                    tuple(missing_ranges(present, start, end, step)), step)
