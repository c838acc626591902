"""Limits in one checker: source bytes, source pixels (decompression bombs), output dimensions.

Every limit the origin enforces lives here, so that the server, prescale and the benchmarks agree:

- ``max_source_bytes`` (default 50 MiB): a bigger source is refused with 413 before it is read
  whole (stores read at most ``max_source_bytes + 1`` bytes).
- ``max_source_pixels`` (default 50 MP): checked on the *header* dimensions before any pixel is
  decoded, so a tiny file that claims 100 000 × 100 000 pixels (a decompression bomb) costs nothing;
  refused with 422.
- ``max_width`` / ``max_height`` (default 4096): the largest output the origin will make; a request
  above it is refused with 400 before the source is fetched. When a dimension is free (``w`` or
  ``h`` is 0), the output is bounded by these instead.
- ``max_avif_pixels`` (default 4 MP): AVIF encoding is slow (about 3 s per megapixel on one core)
  and cannot be interrupted, so a larger AVIF output is refused with 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeproof.canonical import Variant
from edgeproof.errors import BadRequest, ConfigError, PayloadTooLarge, Unprocessable

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The origin's limits; see the module docstring."""

    max_source_bytes: int = 50 * 1024 * 1024
    max_source_pixels: int = 50_000_000
    max_width: int = 4096
    max_height: int = 4096
    max_avif_pixels: int = 4_000_000

    def __post_init__(self) -> None:
        for name in ("max_source_bytes", "max_source_pixels", "max_width", "max_height", "max_avif_pixels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"limit {name} must be positive")

    def check_variant(self, variant: Variant) -> None:
        """400 when the requested output is over the maximum width or height."""
        if variant.w > self.max_width or variant.h > self.max_height:
            raise BadRequest(
                "requested size over the maximum",
                detail=f"w={variant.w},h={variant.h}; the maximum is {self.max_width}x{self.max_height}",
            )

    def check_output(self, fmt: str, width: int, height: int) -> None:
        """400 when the output (known once the source's size is) is too big for its format."""
        if fmt == "avif" and width * height > self.max_avif_pixels:
            raise BadRequest(
                "AVIF output over the maximum",
                detail=f"{width}x{height} is over {self.max_avif_pixels} pixels for AVIF; ask for a smaller size",
            )

    def check_source_bytes(self, key: str, size: int) -> None:
        """413 when a source is over the byte limit."""
        if size > self.max_source_bytes:
            raise PayloadTooLarge(
                "source over the byte limit",
                detail=f"{key} is {size} bytes; the limit is {self.max_source_bytes} bytes",
            )

    def check_source_pixels(self, key: str, width: int, height: int) -> None:
        """422 when a source's header dimensions are over the pixel limit (before decoding)."""
        if width <= 0 or height <= 0:
            raise Unprocessable("source has no pixels", detail=f"{key} is {width}x{height}")
        if width * height > self.max_source_pixels:
            raise Unprocessable(
                "source over the pixel limit",
                detail=f"{key} is {width}x{height} = {width * height} pixels; "
                f"the limit is {self.max_source_pixels} pixels",
            )


DEFAULT_LIMITS = Limits()
