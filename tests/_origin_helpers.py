"""Small real images for the origin tests, made with pyvips in memory (no fixture files needed)."""

from __future__ import annotations

import struct
import zlib

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


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def pixel(image: pyvips.Image, x: int, y: int) -> list[float]:
    return list(image(x, y))


def near(colour: list[float], expected: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(colour, expected, strict=False))


def loader(data: bytes) -> str:
    return str(decode(data).get("vips-loader"))
