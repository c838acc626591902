"""``edgeproof origin prescale``: pre-generate variants into the derivative store.

The "pre-scaled images in S3" approach: every (source, variant) pair is written to the derivative
store under its canonical key, exactly what the origin would have written on a miss. Work is done
per source (read once, every missing variant made from it) by ``--jobs`` threads (pyvips releases
the GIL). A variant that already exists is skipped, and every write is atomic (temp file + rename
for folders, a single PUT for S3), so an interrupted run is resumed by running it again.

``--variants`` is a file with one variant per line, or ``;``-separated ops strings
(``w=640,h=0,fit=cover,q=80,f=webp;w=320,h=0,fit=cover,q=80,f=webp``), or comma-separated preset
names (``thumb,card,pdp``). A line of a file may be a preset name or an ops string; ``#`` starts a
comment.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgeproof.origin.limits import DEFAULT_LIMITS, Limits
from edgeproof.origin.stores import Store, open_store

from edgeproof.canonical import Variant, load_presets, parse_ops
from edgeproof.errors import EdgeproofError, UsageError
from edgeproof.progress import Progress

__all__ = ["PrescaleSummary", "parse_variants", "run_prescale", "source_keys"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".tif", ".tiff", ".gif", ".heic")


@dataclass(slots=True)
class PrescaleSummary:
    """Counts of one run; ``errors`` keeps the first few failures (key, message)."""

    sources: int = 0
    made: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        rate = self.made / self.seconds if self.seconds else 0.0
        text = (f"prescale: {self.sources} sources, {self.made} variants made, {self.skipped} already there, "
                f"{self.failed} failed, {self.bytes_written / 1e6:.1f} MB written in {self.seconds:.1f}s "
                f"({rate:.1f} variants/s)")
        for key, message in self.errors[:10]:
            text += f"\n  failed: {key}: {message}"
        return text


def parse_variants(spec: str, presets: dict[str, Variant] | None = None) -> list[Variant]:
    """``--variants``: a file, ``;``-separated ops strings, or comma-separated preset names."""
    presets = presets if presets is not None else load_presets(None)
    path = Path(spec)
    if path.is_file():
        items = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    elif "=" in spec:
        items = [s.strip() for s in spec.split(";")]
    else:
        items = [s.strip() for s in spec.split(",")]
    variants: list[Variant] = []
    for item in filter(None, items):
        try:
            variant = parse_ops(item if "=" in item else f"preset={item}", presets)
        except EdgeproofError as err:
            raise UsageError(f"bad variant {item!r}: {err.message}", detail=err.detail) from err
        if variant not in variants:
            variants.append(variant)
    if not variants:
        raise UsageError("no variants given", detail="--variants thumb,card or a file of ops strings")
    return variants


def source_keys(store: Store, keys_file: str | None) -> Iterator[str]:
    """Keys from ``keys_file`` (one per line), else every image-like key in the store."""
    if keys_file:
        try:
            with open(keys_file) as fh:
                for line in fh:
                    key = line.strip()
                    if key and not key.startswith("#"):
                        yield key
        except OSError as err:
            raise UsageError(f"cannot read --keys {keys_file}: {err}") from err
        return
    for key in store.iter_keys():
        if key.lower().endswith(IMAGE_SUFFIXES):
            yield key


def _line(s: PrescaleSummary, elapsed: float) -> str:
    rate = s.made / elapsed if elapsed > 0 else 0.0
    return f"prescale: {s.sources} sources  {s.made} made  {s.skipped} skipped  {s.failed} failed  {rate:.1f}/s"


def _one_source(key: str, variants: list[Variant], sources: Store, derivatives: Store,
                limits: Limits) -> tuple[int, int, int, list[tuple[str, str]]]:
    """(made, skipped, bytes, errors) for one source."""
    from edgeproof.origin.transform import transform

    missing = [v for v in variants if not derivatives.exists(v.path(key)[1:])]
    skipped = len(variants) - len(missing)
    if not missing:
        return 0, skipped, 0, []
    try:
        data = sources.get(key, max_bytes=limits.max_source_bytes)
        if data is None:
            return 0, skipped, 0, [(key, "source not found")]
    except EdgeproofError as err:
        return 0, skipped, 0, [(key, f"{err.message} {err.detail or ''}".strip())]
    made, written, errors = 0, 0, []
    for variant in missing:
        dkey = variant.path(key)[1:]
        try:
            rendition = transform(data, variant, key=key, limits=limits)
            derivatives.put(dkey, rendition.data, rendition.content_type)
        except EdgeproofError as err:
            errors.append((dkey, f"{err.message} {err.detail or ''}".strip()))
            continue
        made += 1
        written += len(rendition.data)
    return made, skipped, written, errors


def run_prescale(
    *,
    sources: str,
    derivatives: str,
    variants: str | Iterable[Variant],
    keys_file: str | None = None,
    jobs: int = 0,
    presets_file: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: bool = False,
) -> PrescaleSummary:
    """Make every missing (source, variant) pair; see the module docstring."""
    from edgeproof.origin.transform import configure_vips

    configure_vips(concurrency=1)
    presets = load_presets(presets_file)
    wanted = parse_variants(variants, presets) if isinstance(variants, str) else list(variants)
    for v in wanted:
        limits.check_variant(v)
    src, dst = open_store(sources), open_store(derivatives)
    dst.remove_orphans()  # temp files of an earlier run that was killed mid-write
    summary = PrescaleSummary()
    bar = Progress(enabled=progress)
    started = time.monotonic()
    lock = threading.Lock()
    jobs = jobs or os.cpu_count() or 1
    window: deque[Future[tuple[int, int, int, list[tuple[str, str]]]]] = deque()

    def collect(fut: Future[tuple[int, int, int, list[tuple[str, str]]]]) -> None:
        made, skipped, written, errors = fut.result()
        with lock:
            summary.sources += 1
            summary.made += made
            summary.skipped += skipped
            summary.failed += len(errors)
            summary.bytes_written += written
            summary.errors.extend(errors[: max(0, 20 - len(summary.errors))])
        bar.show(_line(summary, time.monotonic() - started))

    pool = ThreadPoolExecutor(jobs, thread_name_prefix="prescale")
    try:
        for key in source_keys(src, keys_file):
            window.append(pool.submit(_one_source, key, wanted, src, dst, limits))
            while len(window) >= jobs * 4:  # bounded: never queue the whole catalog
                collect(window.popleft())
        while window:
            collect(window.popleft())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # finish in-flight writes (atomic anyway)
        summary.seconds = time.monotonic() - started
        bar.show(_line(summary, time.monotonic() - started))
        bar.close()
        print(summary.line(), file=sys.stderr)
        raise
    pool.shutdown(wait=True)
    summary.seconds = time.monotonic() - started
    bar.show(_line(summary, time.monotonic() - started))
    bar.close()
    return summary
