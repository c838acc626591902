"""Deterministic, realistic synthetic CloudFront standard logs for an image CDN.

Requests follow a Zipf popularity over SKUs and their images, with the noisy URLs real shops send
(``/images/sku-00042-1.jpg?width=640&format=auto&utm_source=mail``), several POPs, a chosen hit rate
per day, hit/miss latencies that look like CloudFront's (hits: a few ms; misses: origin time with a
long tail), content types from the negotiated format, and a sprinkle of excluded requests (errors,
redirects, function-generated responses, POSTs). Files are hourly gzip files named like
CloudFront's, ``DIST.YYYY-MM-DD-HH.UNIQUE.gz``, written through :mod:`edgeproof.analytics.writer`.

The same ``seed`` gives byte-identical files; each hour has its own random stream, so any hour can
be regenerated alone.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from edgeproof.analytics.schema import LEGACY_FIELDS_33
from edgeproof.analytics.writer import encode_columns, w3c_header

__all__ = ["DEFAULT_POPS", "generate_hour", "generate_logs"]

#: (edge location, weight)
DEFAULT_POPS: tuple[tuple[str, float], ...] = (
    ("IAD89-C1", 0.22), ("IAD89-C2", 0.08), ("JFK50-P3", 0.12), ("SFO53-C1", 0.12), ("FRA56-P1", 0.12),
    ("LHR61-C1", 0.10), ("NRT57-P2", 0.10), ("GRU3-C1", 0.07), ("SIN2-C1", 0.07),
)
_UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_WIDTHS = np.array([160, 320, 480, 640, 960, 1280, 1920])
_FORMATS = ("auto", "webp", "jpeg", "avif")
_CT = {"auto": "image/webp", "webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}
_NOISE = ("", "", "", "&utm_source=mail", "&utm_source=x&utm_campaign=spring", "&cb=", "&gclid=")
_EXCLUDED = (("Error", 0.010), ("Redirect", 0.003), ("FunctionGeneratedResponse", 0.002),
             ("LimitExceeded", 0.0005), ("CapacityExceeded", 0.0005))
_ERROR_DETAIL = ("OriginConnectError", "OriginReadError", "ClientCommError", "AbortedOrigin")

HitRate = float | Callable[[date], float]


def _unique(seed: int, hour: datetime, dist: str) -> str:
    return hashlib.sha1(f"{seed}/{dist}/{hour.isoformat()}".encode()).hexdigest()[:8]


def generate_hour(
    hour: datetime,
    n: int,
    *,
    hit_rate: float = 0.9,
    seed: int = 0,
    skus: int = 2000,
    zipf_s: float = 1.1,
    pops: tuple[tuple[str, float], ...] = DEFAULT_POPS,
) -> dict[str, list | np.ndarray]:
    """The columns (schema names → n values) of one hour of requests, sorted by time.

    Each step below draws from the hour's one random stream, in a fixed order: the order of the
    steps is part of the output (the same seed must keep giving byte-identical files), so a new
    draw goes after the last one, never between two.
    """
    hour = hour.astimezone(UTC) if hour.tzinfo else hour.replace(tzinfo=UTC)
    rng = np.random.default_rng([seed, int(hour.timestamp() // 3600)])
    ts = _times(rng, hour, n)
    stems, widths, fmt_i, queries = _urls(rng, n, skus, zipf_s)
    methods = rng.choice(np.array(["GET", "HEAD", "POST"]), size=n, p=[0.975, 0.02, 0.005])
    result, refresh, shield = _results(rng, n, hit_rate, methods)
    status = _statuses(rng, n, result, refresh)
    tt, ttfb = _latencies(rng, n, result)
    content_len, content_type = _content(rng, n, widths, fmt_i, status)
    detail = _detailed_results(rng, result, shield)
    loc = _locations(rng, n, pops)
    return _columns(rng, n, ts=ts, loc=loc, content_len=content_len, methods=methods, stems=stems, status=status,
                    queries=queries, result=result, tt=tt, ttfb=ttfb, detail=detail, content_type=content_type)


def _times(rng: np.random.Generator, hour: datetime, n: int) -> np.ndarray:
    """Request times (epoch ms), uniform over the hour and sorted, as a log file is."""
    t0 = int(hour.timestamp() * 1000)
    return np.sort(t0 + rng.integers(0, 3_600_000, n))


def _urls(rng: np.random.Generator, n: int, skus: int, zipf_s: float
          ) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Stems (Zipf over SKUs, rank 1 most popular, 1..4 images per SKU), widths, formats and the noisy
    queries real shops send (tracking parameters, cache busters), which fragment a naive cache key."""
    ranks = np.arange(1, skus + 1)
    weights = ranks ** -zipf_s
    sku = rng.choice(ranks, size=n, p=weights / weights.sum())
    image = 1 + rng.choice(4, size=n, p=[0.55, 0.25, 0.12, 0.08])
    stems = [f"/images/sku-{s:05d}-{i}.jpg" for s, i in zip(sku.tolist(), image.tolist(), strict=True)]
    widths = rng.choice(_WIDTHS, size=n, p=[0.05, 0.2, 0.15, 0.3, 0.15, 0.1, 0.05])
    fmt_i = rng.choice(len(_FORMATS), size=n, p=[0.6, 0.2, 0.15, 0.05])
    noise_i = rng.integers(0, len(_NOISE), n)
    cb = rng.integers(100000, 999999, n)
    queries = []
    for w, f, z, c in zip(widths.tolist(), fmt_i.tolist(), noise_i.tolist(), cb.tolist(), strict=True):
        noise = _NOISE[z]
        if noise in ("&cb=", "&gclid="):
            noise += str(c)
        queries.append(f"width={w}&format={_FORMATS[f]}{noise}")
    return stems, widths, fmt_i, queries


def _results(rng: np.random.Generator, n: int, hit_rate: float, methods: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x-edge-result-type: a few excluded, the rest hit/miss at the chosen rate; with the draw that makes
    RefreshHits, 304s and Origin Shield hits, and which misses the shield answered."""
    u = rng.random(n)
    result = np.where(rng.random(n) < hit_rate, "Hit", "Miss").astype(object)
    refresh = rng.random(n)
    result[(result == "Hit") & (refresh < 0.05)] = "RefreshHit"
    # an Origin Shield hit is logged x-edge-result-type Miss, detailed OriginShieldHit (standard-logs-reference)
    shield = (result == "Miss") & (refresh < 0.10)
    edge = 0.0
    for name, p in _EXCLUDED:
        result[(u >= edge) & (u < edge + p)] = name
        edge += p
    result[methods == "POST"] = "Miss"
    return result, refresh, shield


def _statuses(rng: np.random.Generator, n: int, result: np.ndarray, refresh: np.ndarray) -> np.ndarray:
    """sc-status consistent with the result type: origin errors, redirects, throttling, revalidated 304s."""
    status = np.full(n, 200, dtype=np.int64)
    status[result == "Error"] = rng.choice([502, 503, 504, 403], size=int((result == "Error").sum()))
    status[result == "Redirect"] = 301
    status[(result == "LimitExceeded") | (result == "CapacityExceeded")] = 503
    status[(result == "Hit") & (refresh > 0.97)] = 304
    return status


def _latencies(rng: np.random.Generator, n: int, result: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """time-taken and time-to-first-byte (seconds): hits a few ms, misses origin time with a long tail."""
    is_hit = np.isin(result, ["Hit", "RefreshHit"])
    tt = np.where(is_hit, rng.lognormal(np.log(0.004), 0.6, n), rng.lognormal(np.log(0.160), 0.7, n))
    tt = np.round(np.minimum(tt, 30.0), 3)
    ttfb = np.round(tt * rng.uniform(0.6, 0.98, n), 3)
    return tt, ttfb


def _content(rng: np.random.Generator, n: int, widths: np.ndarray, fmt_i: np.ndarray, status: np.ndarray
             ) -> tuple[np.ndarray, list[str]]:
    """Content length (grows with the width's area) and type (the negotiated format; HTML for non-200)."""
    content_len = (widths * widths * rng.uniform(0.04, 0.09, n)).astype(np.int64) + 500
    ok = status == 200
    content_type = [(_CT[_FORMATS[f]] if o else "text/html") for f, o in zip(fmt_i.tolist(), ok.tolist(), strict=True)]
    return np.where(ok, content_len, 500), content_type


def _detailed_results(rng: np.random.Generator, result: np.ndarray, shield: np.ndarray) -> np.ndarray:
    """x-edge-detailed-result-type: the result type, refined for Origin Shield hits and origin errors."""
    detail = result.copy()
    detail[shield & (result == "Miss")] = "OriginShieldHit"
    errs = result == "Error"
    detail[errs] = rng.choice(np.array(_ERROR_DETAIL, dtype=object), size=int(errs.sum()))
    return detail


def _locations(rng: np.random.Generator, n: int, pops: tuple[tuple[str, float], ...]) -> np.ndarray:
    """The edge location of each request, by the POPs' weights."""
    names = [p for p, _ in pops]
    w = np.array([p for _, p in pops])
    return rng.choice(np.array(names, dtype=object), size=n, p=w / w.sum())


def _columns(rng: np.random.Generator, n: int, *, ts: np.ndarray, loc: np.ndarray, content_len: np.ndarray,
             methods: np.ndarray, stems: list[str], status: np.ndarray, queries: list[str], result: np.ndarray,
             tt: np.ndarray, ttfb: np.ndarray, detail: np.ndarray, content_type: list[str]
             ) -> dict[str, list | np.ndarray]:
    """The 33-field columns: the drawn values plus the viewer's side (request ids, user agents, IPs,
    bytes, ports), whose draws come last and in the column order."""
    ids = base64.urlsafe_b64encode(rng.bytes(40 * n)).decode()
    ua_i = rng.integers(0, len(_UAS), n)
    ip_a = rng.integers(1, 255, n)
    ip_b = rng.integers(1, 255, n)
    return {
        "timestamp": ts,
        "x_edge_location": loc.tolist(),
        "sc_bytes": (content_len + rng.integers(300, 600, n)).tolist(),
        "c_ip": [f"198.51.{a}.{b}" for a, b in zip(ip_a.tolist(), ip_b.tolist(), strict=True)],
        "cs_method": methods.tolist(),
        "cs_host": ["d111111abcdef8.cloudfront.net"] * n,
        "cs_uri_stem": stems,
        "sc_status": status.tolist(),
        "cs_referer": ["https://shop.example.com/"] * n,
        "cs_user_agent": [_UAS[i] for i in ua_i.tolist()],
        "cs_uri_query": queries,
        "x_edge_result_type": result.tolist(),
        "x_edge_request_id": [ids[i * 56:(i + 1) * 56 - 2] + "==" for i in range(n)],
        "x_host_header": ["img.example.com"] * n,
        "cs_protocol": ["https"] * n,
        "cs_bytes": rng.integers(250, 700, n).tolist(),
        "time_taken": tt.tolist(),
        "ssl_protocol": ["TLSv1.3"] * n,
        "ssl_cipher": ["TLS_AES_128_GCM_SHA256"] * n,
        "x_edge_response_result_type": result.tolist(),
        "cs_protocol_version": ["HTTP/2.0"] * n,
        "c_port": rng.integers(1024, 65535, n).tolist(),
        "time_to_first_byte": ttfb.tolist(),
        "x_edge_detailed_result_type": detail.tolist(),
        "sc_content_type": content_type,
        "sc_content_len": content_len.tolist(),
    }


def generate_logs(
    out_dir: str | os.PathLike[str],
    start: datetime | str,
    hours: int,
    requests_per_hour: int,
    hit_rate: HitRate = 0.9,
    seed: int = 0,
    *,
    distribution: str = "E2EDGEPROOF1",
    skus: int = 2000,
    compresslevel: int = 6,
) -> list[Path]:
    """Write ``hours`` hourly gzip log files from ``start`` (UTC, truncated to the hour) into ``out_dir``.

    ``hit_rate`` is a float or a function of the day (a ``date``) giving that day's hit rate among
    cacheable requests. Returns the paths written, in time order.
    """
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    start = start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC)
    start = start.replace(minute=0, second=0, microsecond=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for h in range(hours):
        hour = start + timedelta(hours=h)
        rate = hit_rate(hour.date()) if callable(hit_rate) else float(hit_rate)
        cols = generate_hour(hour, requests_per_hour, hit_rate=rate, seed=seed, skus=skus)
        name = f"{distribution}.{hour:%Y-%m-%d-%H}.{_unique(seed, hour, distribution)}.gz"
        path = out / name
        with gzip.GzipFile(path, "wb", compresslevel=compresslevel, mtime=0) as fh:
            fh.write(w3c_header(LEGACY_FIELDS_33).encode())
            lines = encode_columns(cols, requests_per_hour, LEGACY_FIELDS_33)
            fh.write(("\n".join(lines) + "\n").encode() if requests_per_hour else b"")
        paths.append(path)
    return paths
