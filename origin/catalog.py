"""``edgeproof origin sample-catalog``: synthetic product photos, so the demo and tests need no downloads.

Each image is a product-like object (bottle, box, mug, sneaker or ball) with soft shading, a label
and a contact shadow, on a plain or gradient studio background with a little sensor grain. The mix
is what an origin meets in a real catalog:

- sizes 800–4000 px on the long side: most 800–1600 px, about one in ten 2000–4000 px;
  square, 4:3 and 3:4;
- about 75 % JPEG and 25 % PNG (half of the PNGs are cut-outs on a transparent background);
- about 15 % of the JPEGs stored rotated with an EXIF ``Orientation`` (3, 6 or 8) that makes them
  upright again, and about 10 % CMYK JPEGs with an embedded CMYK ICC profile.

Key contract (the load tester and the rehearsal rely on it): ``images/sku-{sku:05d}-{n}.{jpg|png}``
for ``sku`` = 1..ceil(count / images_per_sku) and ``n`` = 1..images_per_sku (so ``count`` is
rounded up to whole SKUs), plus ``catalog.txt`` with one source key per line in SKU order.
Generation is deterministic per ``(seed, sku, n)``; running again with the same count, K and seed
reuses what exists (a ``.catalog.json`` stamp records them).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from edgeproof.origin.stores import FolderStore, Store, open_store

from edgeproof.errors import UsageError
from edgeproof.progress import Progress

__all__ = ["CatalogResult", "catalog_keys", "generate_catalog", "iter_catalog", "make_product_image"]

STAMP_VERSION = 1
MANIFEST = "catalog.txt"
STAMP = ".catalog.json"


@dataclass(frozen=True, slots=True)
class CatalogResult:
    out: str
    images: int
    generated: int
    reused: int
    manifest: str


@dataclass(frozen=True, slots=True)
class _Spec:
    """Everything random about one image, drawn up front from its own seeded RNG."""

    key: str
    width: int
    height: int
    fmt: str  # jpg | png
    kind: str
    orientation: int  # 1 = none
    cmyk: bool
    transparent: bool
    rng_seed: int


def _ext(sku: int, n: int, seed: int) -> str:
    return "png" if random.Random(f"{seed}:{sku}:{n}:fmt").random() < 0.25 else "jpg"


def catalog_keys(count: int, images_per_sku: int = 2, seed: int = 1) -> list[str]:
    """The source keys of a catalog, in SKU order (what ``catalog.txt`` lists)."""
    skus = math.ceil(count / images_per_sku)
    return [
        f"images/sku-{sku:05d}-{n}.{_ext(sku, n, seed)}"
        for sku in range(1, skus + 1)
        for n in range(1, images_per_sku + 1)
    ]


def _spec(key: str, seed: int) -> _Spec:
    rng = random.Random(f"{seed}:{key}")
    long_side = rng.randint(2000, 4000) if rng.random() < 0.1 else rng.randint(800, 1600)
    aspect = rng.choice((1.0, 1.0, 4 / 3, 3 / 4))
    if aspect >= 1:
        width, height = long_side, round(long_side / aspect)
    else:
        width, height = round(long_side * aspect), long_side
    fmt = key.rsplit(".", 1)[1]
    orientation, cmyk, transparent = 1, False, False
    if fmt == "jpg":
        roll = rng.random()
        if roll < 0.15:
            orientation = rng.choice((3, 6, 8))
        elif roll < 0.25:
            cmyk = True
    else:
        transparent = rng.random() < 0.5
    kind = rng.choice(("bottle", "box", "mug", "sneaker", "ball"))
    return _Spec(key, width, height, fmt, kind, orientation, cmyk, transparent, rng.randrange(1 << 30))


def _colour(rng: random.Random, lo: int = 30, hi: int = 225) -> np.ndarray:
    return np.array([rng.randint(lo, hi) for _ in range(3)], dtype=np.float32)


def _mask(kind: str, w: int, h: int) -> np.ndarray:
    """A 0..1 float silhouette of the product (h×w), with a soft 1-pixel edge."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, s = w / 2, h / 2, min(w, h)

    def rect(x0: float, y0: float, rw: float, rh: float) -> np.ndarray:
        return (xs >= x0) & (xs < x0 + rw) & (ys >= y0) & (ys < y0 + rh)

    def disc(x: float, y: float, r: float) -> np.ndarray:
        return (xs - x) ** 2 + (ys - y) ** 2 <= r * r

    if kind == "bottle":
        bw, bh = s * 0.28, s * 0.55
        m = rect(cx - bw / 2, cy - bh / 3, bw, bh) | disc(cx, cy - bh / 3, bw / 2)
        m |= rect(cx - bw / 6, cy - bh / 3 - bh * 0.45, bw / 3, bh * 0.45)
    elif kind == "box":
        bw, bh = s * 0.55, s * 0.45
        m = rect(cx - bw / 2, cy - bh / 2, bw, bh)
    elif kind == "mug":
        bw, bh = s * 0.38, s * 0.42
        m = rect(cx - bw / 2 - bw / 8, cy - bh / 2, bw, bh)
        hx, r = cx + bw / 2 - bw / 8, bh / 4
        d2 = (xs - hx) ** 2 + (ys - cy) ** 2
        m |= (d2 <= r * r) & (d2 >= (r * 0.7) ** 2) & (xs > hx)
    elif kind == "sneaker":
        m = disc(cx - s / 10, cy, s * 0.22) | rect(cx - s * 0.3, cy, s * 0.62, s * 0.12)
        m |= disc(cx + s * 0.25, cy + s * 0.05, s * 0.08)
    else:  # ball
        m = disc(cx, cy, s * 0.3)
    f = m.astype(np.float32)
    # soften the edge: a 3×3 box blur
    p = np.pad(f, 1, mode="edge")
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0  # type: ignore[no-any-return]


_RENDER_SIZE = 320


def make_product_image(width: int, height: int, *, kind: str = "box", seed: int = 0,
                       transparent: bool = False, grain: bool = True) -> pyvips.Image:
    """An upright sRGB product photo (3 bands, or 4 with a transparent background).

    The scene is composed with numpy at about 320 px on the long side (microseconds per step),
    then upsampled by libvips to ``width`` × ``height`` (product shots are smooth, so little is
    lost): a few milliseconds for a 1200 px image.
    """
    rng = random.Random(seed)
    scale = min(1.0, _RENDER_SIZE / max(width, height))
    w, h = max(16, round(width * scale)), max(16, round(height * scale))
    fy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    fx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    top, bottom = _colour(rng, 200, 255), _colour(rng, 170, 245)
    if rng.random() < 0.4:
        bottom = top  # plain background
    bg = np.broadcast_to(top + (bottom - top) * fy, (h, w, 3))
    # contact shadow: a soft flat ellipse under the object
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = min(w, h) * 0.3, min(w, h) * 0.055
    d = np.sqrt(((xs - w / 2) / rx) ** 2 + ((ys - h * 0.74) / ry) ** 2)
    bg = bg * (1 - 0.45 * np.clip(1.2 - d, 0, 1)[..., None])
    # the object: base colour, cylinder shading across, a lighter label band
    obj = (0.55 + 0.45 * (1 - (fx * 2 - 1) ** 2)) * _colour(rng, 30, 200)
    band = np.abs(fy - rng.uniform(0.42, 0.58)) < 0.05
    obj = np.where(band, _colour(rng, 180, 255), obj)
    alpha = _mask(kind, w, h)[..., None]
    small = bg * (1 - alpha) + obj * alpha
    if grain:  # sensor grain, added before upsampling (it becomes a fine film-like grain)
        small = small + np.random.default_rng(seed).normal(0.0, 3.0, (h, w, 1)).astype(np.float32)
    pixels = np.clip(small, 0, 255).astype(np.uint8)
    if transparent:
        pixels = np.concatenate([pixels, (alpha * 255).astype(np.uint8)], axis=2)
    bands = pixels.shape[2]
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(pixels).tobytes(), w, h, bands, "uchar")
    image = image.copy(interpretation="srgb").resize(width / w, vscale=height / h, kernel="linear")
    if image.width != width or image.height != height:
        image = image.embed(0, 0, width, height, extend="copy").crop(0, 0, width, height)
    return image


def _encode(spec: _Spec) -> bytes:
    image = make_product_image(spec.width, spec.height, kind=spec.kind, seed=spec.rng_seed,
                               transparent=spec.transparent, grain=spec.fmt == "jpg")
    if spec.fmt == "png":
        return bytes(image.pngsave_buffer(compression=3, keep="none"))
    if spec.orientation != 1:
        # store the pixels turned so that applying the EXIF orientation makes them upright again
        image = {3: image.rot180, 6: image.rot270, 8: image.rot90}[spec.orientation]()
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", spec.orientation)
        return bytes(image.jpegsave_buffer(Q=88, keep="exif"))
    if spec.cmyk:
        image = image.icc_transform("cmyk")  # attaches the CMYK profile, embedded by jpegsave
        return bytes(image.jpegsave_buffer(Q=88, keep="icc"))
    return bytes(image.jpegsave_buffer(Q=88, keep="none"))


def _stamp(store: Store) -> dict[str, object] | None:
    data = store.get(STAMP)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _donors(keys: list[str], distinct: int) -> dict[str, str]:
    """With ``distinct`` > 0: each key after the first ``distinct`` → the earlier key whose pixels it shares
    (cycling through the first ``distinct`` keys of the same format, so a ``.png`` key stays a PNG)."""
    if distinct <= 0 or distinct >= len(keys):
        return {}
    firsts: dict[str, list[str]] = {}
    for key in keys[:distinct]:
        firsts.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    out: dict[str, str] = {}
    for i, key in enumerate(keys[distinct:]):
        pool = firsts.get(key.rsplit(".", 1)[-1])
        if pool:
            out[key] = pool[i % len(pool)]
    return out


def generate_catalog(out: str | Path, *, count: int, images_per_sku: int = 2, seed: int = 1,
                     jobs: int = 0, progress: bool = False, distinct: int = 0) -> CatalogResult:
    """Write the catalog to ``out`` (folder or ``s3://``); see the module docstring. ``distinct`` > 0:
    only that many images are drawn; every other key holds the pixels of one of them (a hard link in a
    folder), so a catalog of thousands of SKUs stays cheap to make while every key is its own source
    (its own variants, cache keys and transforms)."""
    if count < 1 or images_per_sku < 1 or distinct < 0:
        raise UsageError("--count and --images-per-sku must be at least 1, --distinct at least 0")
    store = open_store(str(out))
    keys = catalog_keys(count, images_per_sku, seed)
    want: dict[str, object] = {"version": STAMP_VERSION, "count": count, "images_per_sku": images_per_sku,
                               "seed": seed}
    if distinct:
        want["distinct"] = distinct
    donors = _donors(keys, distinct)
    same = _stamp(store) == want
    todo = [k for k in keys if k not in donors and not (same and store.exists(k))]
    copies = [k for k in donors if not (same and store.exists(k))]
    store.put(STAMP, b"", "application/json")  # invalidated until this run completes
    bar = Progress("sample-catalog", len(todo), unit=" images", enabled=progress)

    def make(key: str) -> str:
        spec = _spec(key, seed)
        store.put(key, _encode(spec), "image/png" if spec.fmt == "png" else "image/jpeg")
        return key

    with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        for _key in pool.map(make, todo):
            bar.update(1)
    bar.close()
    for key in copies:  # the shared pixels: a hard link in a folder, a copy elsewhere
        donor = donors[key]
        if isinstance(store, FolderStore):
            src, dst = store.root / donor, store.root / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        data = store.get(donor)
        if data is not None:
            store.put(key, data, "image/png" if key.endswith(".png") else "image/jpeg")
    store.put(MANIFEST, ("\n".join(keys) + "\n").encode(), "text/plain")
    store.put(STAMP, json.dumps(want).encode(), "application/json")
    manifest = str(Path(store.root) / MANIFEST) if isinstance(store, FolderStore) else f"{store.describe()}/{MANIFEST}"
    return CatalogResult(store.describe(), len(keys), len(todo) + len(copies), len(keys) - len(todo) - len(copies),
                         manifest)


def iter_catalog(out: str | Path) -> Iterator[str]:
    """The keys listed in a catalog's ``catalog.txt``."""
    data = open_store(str(out)).get(MANIFEST)
    if data is None:
        raise UsageError(f"no {MANIFEST} in {out}")
    yield from (line.strip() for line in data.decode().splitlines() if line.strip())
