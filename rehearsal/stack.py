"""The embedded stack of a rehearsal: child processes started through the public CLIs, stopped cleanly.

Every part runs as its own ``edgeproof …`` subprocess (loose coupling; Locust must own its process):
the origin tasks (``edgeproof origin serve``), the edge emulator (``edgeproof edge serve``) and the
load (``edgeproof loadtest run``). :class:`Processes` starts each child in its own process group with
``PR_SET_PDEATHSIG`` (Linux), so that nothing is orphaned: a normal end, an exception, Ctrl-C or a
SIGTERM to the rehearsal all stop every child (SIGTERM to its group, then SIGKILL after a grace
period), and a killed rehearsal takes its children with it.

All children are started from the main thread (the death signal follows the thread that forked).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgeproof.errors import EdgeproofError, UsageError

__all__ = ["Child", "Processes", "edgeproof_cmd", "free_port", "http_get", "http_post_json", "wait_ready"]


class RehearsalError(EdgeproofError):
    """A part of the embedded stack failed to start or died (exit 1)."""

    error = "rehearsal"


def edgeproof_cmd(*args: str) -> list[str]:
    """``edgeproof ARGS`` run with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "edgeproof.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pdeathsig() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


class Processes:
    """Owns every child process of a rehearsal; use as a context manager."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._old_term: Any = None

    def __enter__(self) -> Processes:
        self._old_term = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_term)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        signal.signal(signal.SIGTERM, self._old_term or signal.SIG_DFL)

    @staticmethod
    def _on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through every finally, which stops the children

    def start(self, name: str, args: Sequence[str], *, url: str | None = None,
              env: dict[str, str] | None = None, stdout: IO[bytes] | int | None = None,
              **meta: Any) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        try:
            proc = subprocess.Popen(
                list(args), stdout=stdout if stdout is not None else log, stderr=log,
                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, preexec_fn=_pdeathsig,
            )
        finally:
            log.close()
        child = Child(name, proc, log_path, url, dict(meta))
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 10.0) -> int | None:
        """SIGTERM the child's process group, wait ``grace`` seconds, then SIGKILL it."""
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=5)
        # members of the group that outlived the leader (workers) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        if child in self.children:
            self.children.remove(child)
        return child.proc.returncode

    def stop_all(self) -> None:
        """Stop every child, newest first (load, then edge, then origins)."""
        for child in list(reversed(self.children)):
            self.stop(child)


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post_json(url: str, body: dict[str, Any], method: str = "POST", timeout: float = 5.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


def wait_ready(child: Child, url: str, timeout: float = 60.0, ok: Sequence[int] = (200,)) -> None:
    """Wait until ``url`` answers one of ``ok``; raise with the child's log tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            raise RehearsalError(f"{child.name} exited with status {child.proc.returncode} while starting",
                                 detail=child.tail())
        try:
            status, _ = http_get(url, timeout=2.0)
            if status in ok:
                return
            last = f"HTTP {status}"
        except OSError as err:
            last = str(err)
        time.sleep(0.1)
    raise RehearsalError(f"{child.name} did not become ready at {url} within {timeout:.0f}s ({last})",
                         detail=child.tail())


def require_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            raise UsageError(f"port {port} is in use") from err
