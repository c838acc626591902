"""The one progress line (stderr): redrawn in place on a terminal, periodic plain lines in CI logs.

On a TTY the line is redrawn (``\\r`` + erase line) at most every ``interval`` seconds, so a long read
or a rehearsal shows one live line. When the stream is not a TTY (a CI log, a pipe, a file) a
carriage return does not rewind anything: every redraw would become a line of its own, and a
``\\r``-joined log is unreadable. There it prints a plain line at most every ``every`` seconds
(10 s), so a two-minute rehearsal leaves about a dozen lines.

Two kinds of callers: a counter (``update(advance)``: a bar when the total is known, counts
otherwise; the weekly report's file reading) and a caller-formatted line (``show(line)``: the
rehearsal's edge/origin line). ``note(message)`` prints a line of its own (an event) without
leaving a half-drawn progress line in front of it. It lives in the kernel so that every layer
(analytics, origin, the rehearsal) can use it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]

_ERASE = "\r\x1b[2K"  # to the line's start, erase it


class Progress:
    """A progress line on ``stream`` (default stderr); ``enabled=False`` (``--quiet``) writes nothing."""

    def __init__(self, label: str = "", total: float | None = None, *, unit: str = "",
                 stream: TextIO | None = None, interval: float = 0.25, every: float = 10.0,
                 enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        #: seconds between two draws: ``interval`` on a terminal, ``every`` in a log
        self.period = interval if self.tty else every
        self.enabled = enabled
        self.done = 0.0
        self.extra = ""
        self._clock = clock
        self.started = clock()
        self._last: float | None = None
        self._line = ""  # the caller's line (show), if any
        self._drawn = False  # a TTY line is on the screen, not yet ended

    def update(self, advance: float = 0, *, done: float | None = None, extra: str = "", force: bool = False) -> None:
        """Count ``advance`` more (or set ``done``) and draw when due."""
        self.done = self.done + advance if done is None else done
        if extra:
            self.extra = extra
        self._maybe_draw(force)

    def show(self, line: str, *, force: bool = False) -> None:
        """Make ``line`` the progress line (the caller formats it) and draw it when due."""
        self._line = line
        self._maybe_draw(force)

    def note(self, message: str) -> None:
        """A line of its own (an event): on a terminal the progress line is cleared first and comes
        back at the next draw."""
        if not self.enabled:
            return
        self.stream.write((_ERASE if self._drawn else "") + message + "\n")
        self._drawn = False
        self.stream.flush()

    def close(self, message: str = "") -> None:
        """The final state (always drawn), the line ended, then ``message`` on a line of its own."""
        if not self.enabled:
            return
        self._draw(self._clock())
        if self.tty:
            self.stream.write("\n")
            self._drawn = False
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()

    def render(self, now: float | None = None) -> str:
        """The current line's text (no control characters)."""
        if self._line:
            return self._line
        elapsed = (self._clock() if now is None else now) - self.started
        if self.total:
            frac = min(self.done / self.total, 1.0)
            width = 28
            fill = int(frac * width)
            bar = "█" * fill + "░" * (width - fill)
            body = f"{self.label} {bar} {frac * 100:5.1f}% ({self.done:,.0f}/{self.total:,.0f}{self.unit})"
        else:
            body = f"{self.label} {self.done:,.0f}{self.unit}"
        return f"{body}  {elapsed:5.1f}s  {self.extra}".rstrip()

    def _maybe_draw(self, force: bool) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if not force and self._last is not None and now - self._last < self.period:
            return
        self._draw(now)

    def _draw(self, now: float) -> None:
        self._last = now
        line = self.render(now)
        if self.tty:
            self.stream.write(_ERASE + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
