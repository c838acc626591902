"""Small real images for the origin tests, made with pyvips in memory (no fixture files needed)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyvips

RED = (220, 30, 30)
BLUE = (30, 30, 220)


def two_tone(width: int, height: int) -> pyvips.Image:
    """Top half red, bottom half blue: orientation is visible in the pixels."""
    top = (pyvips.Image.black(width, height // 2, bands=3) + list(RED)).cast("uchar")
    bottom = (pyvips.Image.black(width, height - height // 2, bands=3) + list(BLUE)).cast("uchar")
    return top.join(bottom, "vertical").copy(interpretation="srgb")


def jpeg(width: int = 800, height: int = 600, q: int = 90) -> bytes:
    return bytes(two_tone(width, height).jpegsave_buffer(Q=q))


def oriented_jpeg(orientation: int, width: int = 400, height: int = 200) -> bytes:
    """A JPEG whose pixels are turned so that EXIF ``orientation`` shows the upright two-tone image."""
    image = two_tone(width, height)
    image = {3: image.rot180, 6: image.rot270, 8: image.rot90}[orientation]().copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=90, keep="exif"))


def cmyk_jpeg(width: int = 300, height: int = 200) -> bytes:
    """A CMYK JPEG with an embedded CMYK ICC profile."""
    return bytes(two_tone(width, height).icc_transform("cmyk").jpegsave_buffer(Q=90, keep="icc"))


def alpha_png(width: int = 200, height: int = 200) -> bytes:
    """Opaque red disc on a fully transparent background."""
    rgb = (pyvips.Image.black(width, height, bands=3) + list(RED)).cast("uchar")
    mask = pyvips.Image.black(width, height).draw_circle(255, width // 2, height // 2, width // 4, fill=True)
    return bytes(rgb.bandjoin(mask.cast("uchar")).copy(interpretation="srgb").pngsave_buffer())


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _entropy_start(data: bytes) -> int:
    """Offset of a baseline JPEG's entropy-coded data: just after the SOS segment."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def damaged_jpeg(kind: str, width: int = 800, height: int = 600) -> bytes:
    """A JPEG whose header is sound but whose scan data is damaged; libjpeg only *warns* on these.

    ``flipped``: 64 bytes in the middle of the entropy-coded data inverted (bit rot, a bad transfer);
    ``zeroed``: 2000 bytes of the entropy-coded data zeroed (a hole left by a failed disk block);
    ``short``: the header says ``height`` rows, but the scan ends (EOI) half-way through them.
    """
    data = jpeg(width, height)
    start = _entropy_start(data)
    middle = start + (len(data) - start) // 2
    if kind == "flipped":
        return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    if kind == "zeroed":
        at = start + (len(data) - start) // 3
        return data[:at] + b"\x00" * 2000 + data[at + 2000 :]
    if kind == "short":
        return data[:middle] + b"\xff\xd9"
    raise ValueError(kind)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def damaged_png(kind: str, width: int = 300, height: int = 200) -> bytes:
    """A PNG with a sound IHDR and damaged image data (one IDAT chunk rebuilt by hand).

    ``flipped``: 16 bytes of the IDAT inverted (its CRC no longer matches);
    ``zeroed``: 200 bytes of the compressed data zeroed, with a CRC that matches again;
    ``short``: IHDR says ``height`` rows, the (valid) compressed data holds half of them.
    """
    data = bytes(two_tone(width, height).pngsave_buffer(compression=6))
    at = data.index(b"IDAT") - 4
    n = int.from_bytes(data[at : at + 4], "big")
    idat, head, tail = data[at + 8 : at + 8 + n], data[:at], data[at + 12 + n :]
    if kind == "flipped":
        i = at + 8 + n // 2
        return data[:i] + bytes(b ^ 0xFF for b in data[i : i + 16]) + data[i + 16 :]
    if kind == "zeroed":
        return head + _png_chunk(b"IDAT", idat[: n // 3] + b"\x00" * 200 + idat[n // 3 + 200 :]) + tail
    if kind == "short":
        raw = zlib.decompress(idat)
        return head + _png_chunk(b"IDAT", zlib.compress(raw[: len(raw) // 2])) + _png_chunk(b"IEND", b"")
    raise ValueError(kind)


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def pixel(image: pyvips.Image, x: int, y: int) -> list[float]:
    return list(image(x, y))


def near(colour: list[float], expected: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(colour, expected, strict=False))


def loader(data: bytes) -> str:
    return str(decode(data).get("vips-loader"))


# ------------------------------------------------------------------------------ a running origin


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, str]:
        return json.loads(self.body)


def request(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
            timeout: float = 60) -> Reply:
    """One HTTP request with the path sent exactly as given (no client-side normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of /metrics, read with prometheus_client's own parser: (name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = request(port, "/metrics").body.decode()
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def metric(port: int, name: str) -> float:
    """Sum of every sample of ``edgeproof_origin_{name}`` (all label sets) from /metrics."""
    return sum(value for n, _labels, value in samples(port) if n == f"edgeproof_origin_{name}")


def metric_labelled(port: int, series: str) -> float:
    """One exact series, e.g. ``edgeproof_origin_shed_total{reason="queue"}`` (labels in any order)."""
    name, _, rest = series.partition("{")
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    for n, labels, value in samples(port):
        if n == name and labels == wanted:
            return value
    raise KeyError(series)


class OriginProc:
    """``edgeproof origin serve`` in a subprocess on 127.0.0.1."""

    def __init__(self, port: int, args: list[str], env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.port = port
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeproof.cli", "origin", "serve", "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log.read_text() if self.log and self.log.exists() else ""
                raise RuntimeError(f"origin exited with {self.proc.returncode}: {text[-2000:]}")
            try:
                if request(self.port, "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("origin did not become ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
