"""The one progress line (edgeproof.progress): redrawn in place on a terminal (a real pty), periodic
plain lines when the stream is not a TTY (a CI log). Time comes from a clock the test moves."""

from __future__ import annotations

import io
import os
import select

from edgeproof.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _read_all(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_log_gets_a_plain_line_every_ten_seconds() -> None:
    clock = Clock()
    log = io.StringIO()  # not a TTY
    line = Progress(stream=log, clock=clock)
    assert not line.tty
    for second in range(35):  # the rehearsal shows a line once a second
        line.show(f"t={second}s")
        clock.now += 1.0
    line.note("event: scale_out")
    line.close()
    out = log.getvalue()
    assert "\r" not in out and "\x1b" not in out
    assert out.splitlines() == ["t=0s", "t=10s", "t=20s", "t=30s", "event: scale_out", "t=34s"]


def test_a_terminal_gets_one_redrawn_line() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", encoding="utf-8", closefd=False) as tty:
            clock = Clock()
            bar = Progress("reading logs", total=4, unit=" files", stream=tty, clock=clock)
            assert bar.tty and bar.period < 1.0
            for _ in range(4):
                clock.now += 1.0
                bar.update(1, extra="hit rate so far 97.0%")
            bar.note("a file was damaged")
            clock.now += 0.1  # within the redraw interval: not drawn
            bar.update(0, extra="more")
            bar.close("done")
        out = _read_all(master).decode()
    finally:
        os.close(master)
        os.close(slave)
    draws = out.count("\r\x1b[2K")
    assert draws == 6  # four updates, the note clearing the line, the final state
    assert "\n" not in out.split("a file was damaged")[0]  # until then, one line redrawn in place
    assert "100.0% (4/4 files)" in out and out.rstrip().endswith("done")
    assert "a file was damaged" in out.split("\r\x1b[2K")[5]  # the note comes after the erase


def test_quiet_writes_nothing() -> None:
    log = io.StringIO()
    line = Progress(stream=log, enabled=False)
    line.show("x", force=True)
    line.note("y")
    line.close("z")
    assert log.getvalue() == ""
