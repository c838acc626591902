"""Damaged sources are refused (422) and never cached: libvips decodes at fail-on-warning.

libjpeg only *warns* about a JPEG damaged mid-stream (and paints grey over the rest), so at
libvips's ``error`` level such a file was served 200 and written to the derivative store with
``immutable, max-age=2592000``: a broken picture at every edge for 30 days. sharp refuses these by
default (``failOn: 'warning'``); so does the origin now. The PNG cases were already refused by libpng
at the ``error`` level; they stay here so that a looser level would be caught.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _origin_helpers import OriginProc, damaged_jpeg, damaged_png, jpeg, metric, request
from conftest import free_port
from edgeproof.origin.limits import DEFAULT_LIMITS
from edgeproof.origin.transform import FAIL_ON, probe, transform

from edgeproof.canonical import parse_ops
from edgeproof.errors import Unprocessable

KINDS = ("flipped", "zeroed", "short")
# shrink-on-load (1/8 at w=100) and a full-size decode both meet the damaged rows
OPS = ("w=100,h=0,fit=cover,q=80,f=webp", "w=0,h=0,fit=cover,q=80,f=jpeg")


def test_fail_on_level() -> None:
    assert FAIL_ON == "warning"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ops", OPS)
def test_damaged_jpeg_is_unprocessable(kind: str, ops: str) -> None:
    data = damaged_jpeg(kind)
    info = probe(data, "d.jpg", DEFAULT_LIMITS)
    assert (info.loader, info.width, info.height) == ("jpegload_buffer", 800, 600)  # the fast probe still reads it
    with pytest.raises(Unprocessable) as caught:
        transform(data, parse_ops(ops), key="d.jpg")
    assert caught.value.status == 422 and caught.value.detail and caught.value.detail.startswith("d.jpg: ")


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_png_is_unprocessable(kind: str) -> None:
    with pytest.raises(Unprocessable):
        transform(damaged_png(kind), parse_ops(OPS[0]), key="d.png")


def test_sound_sources_still_decode() -> None:
    out = transform(jpeg(800, 600), parse_ops(OPS[0]), key="ok.jpg")
    assert (out.width, out.height) == (100, 75)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProc]:
    root = tmp_path_factory.mktemp("damaged")
    images = root / "src" / "images"
    images.mkdir(parents=True)
    (images / "ok.jpg").write_bytes(jpeg(800, 600))
    for kind in KINDS:
        (images / f"{kind}.jpg").write_bytes(damaged_jpeg(kind))
        (images / f"{kind}.png").write_bytes(damaged_png(kind))
    proc = OriginProc(free_port(), ["--sources", str(root / "src"), "--derivatives", str(root / "der"),
                                    "--workers", "1"], log=root / "log.txt")
    proc.der = root / "der"  # type: ignore[attr-defined]
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0


def _written(origin: OriginProc, key: str, before: float) -> bool:
    """Whether a derivative write finished (the writes go out after the response), bounded wait."""
    for _ in range(40):
        if (origin.der / key).exists() or metric(origin.port, "store_writes_total") > before:  # type: ignore[attr-defined]
            return True
        time.sleep(0.05)
    return (origin.der / key).exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [f"{k}.{ext}" for k in KINDS for ext in ("jpg", "png")])
def test_damaged_source_gets_422_json_and_is_not_stored(origin: OriginProc, name: str) -> None:
    path = f"/images/{name}/w=320,h=0,fit=cover,q=80,f=webp"
    before = metric(origin.port, "store_writes_total")
    reply = request(origin.port, path)
    assert reply.status == 422, reply.body[:200]
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert body["error"] == "unprocessable" and body["detail"].startswith(f"images/{name}: ")
    assert not _written(origin, path.lstrip("/"), before)
    assert not list(Path(origin.der).glob(f"images/{name}/*"))  # type: ignore[attr-defined]
    assert request(origin.port, path).status == 422  # and not served from the store the second time


def test_sound_source_is_stored(origin: OriginProc) -> None:
    """The same check passes for a good image: the absence above is not an artefact of the test."""
    path = "/images/ok.jpg/w=320,h=0,fit=cover,q=80,f=webp"
    before = metric(origin.port, "store_writes_total")
    assert request(origin.port, path).status == 200
    assert _written(origin, path.lstrip("/"), before)
