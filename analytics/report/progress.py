"""A small terminal progress line (stderr): a bar when the total is known, counters otherwise.

Redraws at most every ``interval`` seconds; on a non-TTY it prints a plain line at most every
``interval * 10`` seconds so that CI logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, label: str, total: float | None = None, *, unit: str = "",
                 stream: TextIO | None = None, interval: float = 0.25, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else interval * 40
        self.enabled = enabled
        self.done = 0.0
        self.extra = ""
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, advance: float = 0, *, done: float | None = None, extra: str = "", force: bool = False) -> None:
        self.done = self.done + advance if done is None else done
        if extra:
            self.extra = extra
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.started
        if self.total:
            frac = min(self.done / self.total, 1.0)
            width = 28
            fill = int(frac * width)
            bar = "█" * fill + "░" * (width - fill)
            body = f"{self.label} {bar} {frac * 100:5.1f}% ({self.done:,.0f}/{self.total:,.0f}{self.unit})"
        else:
            body = f"{self.label} {self.done:,.0f}{self.unit}"
        line = f"{body}  {elapsed:5.1f}s  {self.extra}".rstrip()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, message: str = "") -> None:
        if not self.enabled:
            return
        self._draw(time.monotonic())
        if self.tty:
            self.stream.write("\n")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()
