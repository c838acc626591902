"""Replay throughput and accuracy: edgeproof's compare_strategies vs libCacheSim (LRU) on one trace.

    .venv/bin/python benchmarks/replay_bench.py                       # 10M requests, 200k variants, 8 POPs, 7 days
    .venv/bin/python benchmarks/replay_bench.py --requests 1000000    # quicker

The synthetic trace: Zipf(alpha) popularity over ``--variants`` image variants (8 widths per image), each
requested in one of four spellings (parameter order, aliases, a tracking parameter), from 8 POPs, spread
evenly over ``--days``; object size depends on the variant. Per strategy it prints requests/s of
``compare_strategies`` (everything included: dictionary encoding, applying the strategy once per
distinct URL, the compiled cache model) and of libCacheSim's C LRU (``process_trace`` over an
oracleGeneral binary trace of the same keys, one cache per POP, trace-file writing not timed), and both
hit rates at the same per-POP byte capacity with no expiry. Targets: >= 2M requests/s per strategy on one
core; hit rates within 0.1 percentage points.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.replay import compare_strategies  # noqa: E402
from analytics.strategies import get_strategy  # noqa: E402

WIDTHS = (320, 360, 400, 480, 600, 640, 750, 828)
SPELLINGS = ("w={w}&f=webp", "f=webp&w={w}", "width={w}&format=webp", "w={w}&f=webp&utm_source=mail")
POPS = ("IAD89-C1", "FRA56-P2", "NRT12-C3", "GRU3-C1", "SYD1-C2", "LHR61-C1", "SIN2-C2", "ORD52-C4")


def make_trace(n: int, variants: int, pops: int, days: float, alpha: float, seed: int, batch: int):
    """Record batches (timestamp, x_edge_location, cs_method, cs_uri_stem, cs_uri_query, ...) + raw arrays."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, variants + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-alpha)
    cdf /= cdf[-1]
    perm = rng.permutation(variants)  # popularity rank -> variant id
    v = perm[np.searchsorted(cdf, rng.random(n))]
    spelling = rng.integers(0, len(SPELLINGS), n)
    pop = rng.integers(0, pops, n)
    t0 = 1_714_521_600_000
    t = t0 + np.sort(rng.integers(0, int(days * 86_400_000), n))
    stems = [f"/images/sku-{i}.jpg" for i in range(variants // len(WIDTHS) + 1)]
    queries = [s.format(w=w) for w in WIDTHS for s in SPELLINGS]
    size_of_variant = (20_000 + (np.arange(variants) % len(WIDTHS)) * 15_000
                       + rng.integers(0, 10_000, variants)).astype(np.int64)
    stem_ids = v // len(WIDTHS)
    query_ids = (v % len(WIDTHS)) * len(SPELLINGS) + spelling
    batches = []
    stem_arr, query_arr = pa.array(stems), pa.array(queries)
    loc_arr = pa.array(list(POPS[:pops]))
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        batches.append(pa.RecordBatch.from_pydict({
            "timestamp": pa.array(t[lo:hi], pa.timestamp("ms", tz="UTC")),
            "x_edge_location": loc_arr.take(pa.array(pop[lo:hi])),
            "cs_method": pa.array(np.full(hi - lo, "GET", dtype=object), pa.string()),
            "cs_uri_stem": stem_arr.take(pa.array(stem_ids[lo:hi])),
            "cs_uri_query": query_arr.take(pa.array(query_ids[lo:hi])),
            "x_edge_result_type": pa.array(np.full(hi - lo, "Miss", dtype=object), pa.string()),
            "sc_content_type": pa.array(np.full(hi - lo, "image/webp", dtype=object), pa.string()),
            "sc_bytes": pa.array(size_of_variant[v[lo:hi]]),
        }))
    return batches, {"t": t, "pop": pop, "stem": stem_ids, "query": query_ids, "size": size_of_variant[v],
                     "stems": stems, "queries": queries}


def libcachesim_run(raw: dict, strategy: str, pops: int, capacity: int,
                    workdir: Path) -> tuple[float, float, float, int]:
    """(hit rate, CPU seconds and wall seconds in process_trace, requests): libCacheSim LRU, one cache per POP."""
    import libcachesim as lcs

    s = get_strategy(strategy)
    # the same keys the replay computes: the strategy applied per distinct (stem, query)
    pair = raw["stem"].astype(np.int64) * len(raw["queries"]) + raw["query"]
    uniq, inverse = np.unique(pair, return_inverse=True)
    key_ids: dict[str, int] = {}
    ids = np.empty(uniq.size, dtype=np.uint64)
    accept = {"accept": "image/webp,image/jpeg,image/*;q=0.8"}
    for i, p in enumerate(uniq):
        key = s.apply("GET", raw["stems"][p // len(raw["queries"])], raw["queries"][p % len(raw["queries"])],
                      accept).cache_key
        ids[i] = key_ids.setdefault(key, len(key_ids)) + 1
    obj = ids[inverse]
    secs = wall = 0.0
    hits = 0
    dtype = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    for p in range(pops):
        mask = raw["pop"] == p
        rec = np.zeros(int(mask.sum()), dtype=dtype)
        rec["t"] = ((raw["t"][mask] - raw["t"][0]) // 1000).astype(np.uint32)
        rec["id"] = obj[mask]
        rec["size"] = raw["size"][mask].astype(np.uint32)
        rec["next"] = -1
        path = workdir / f"pop{p}.oracleGeneral.bin"
        rec.tofile(path)
        reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        cache = lcs.LRU(cache_size=capacity)
        start, cstart = time.perf_counter(), time.process_time()
        miss_ratio, _byte_miss = cache.process_trace(reader)
        wall += time.perf_counter() - start
        secs += time.process_time() - cstart
        hits += round((1.0 - miss_ratio) * rec.size)
        path.unlink()
    return hits / raw["t"].size, secs, wall, int(raw["t"].size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--variants", type=int, default=200_000)
    ap.add_argument("--pops", type=int, default=8)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent (default 0.9)")
    ap.add_argument("--capacity", type=int, default=1_000_000_000, help="bytes per POP cache (default 1 GB)")
    ap.add_argument("--batch", type=int, default=1 << 18, help="rows per record batch (the reader's default)")
    ap.add_argument("--strategies", default="passthrough,aggressive")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    print(f"generating {args.requests:,} requests over {args.variants:,} variants, {args.pops} POPs, "
          f"{args.days:g} days (Zipf {args.alpha}) ...", flush=True)
    batches, raw = make_trace(args.requests, args.variants, args.pops, args.days, args.alpha, args.seed, args.batch)
    # warm numba's compiled code once (compilation is cached on disk; not part of the measurement)
    compare_strategies(batches[:1], ["passthrough"], ttl=0, capacity=args.capacity, calibrate=False)
    print(f"capacity {args.capacity:,} bytes per POP cache, LRU, no expiry; cpu count {os.cpu_count()} "
          f"(each run is single-threaded); load average before: {os.getloadavg()[0]:.1f}")
    print("req/s = requests / CPU seconds of this process (process_time); wall-clock req/s in brackets")
    header = f"{'strategy':<12} {'edgeproof req/s':>26} {'libCacheSim req/s':>26} {'ratio':>6} " \
             f"{'edgeproof hit':>14} {'libCacheSim hit':>16} {'diff (pp)':>10}"
    print(header)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.strategies.split(","):
            wall, cpu = time.perf_counter(), time.process_time()
            result = compare_strategies(batches, [name], ttl=0, capacity=args.capacity, calibrate=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            ours = result["strategies"][name]["hit_rate"]
            theirs, lcpu, lwall, n = libcachesim_run(raw, name, args.pops, args.capacity, Path(tmp))
            rate, lrate = args.requests / cpu, n / lcpu
            diff = 100 * (ours - theirs)
            ok = ok and rate >= 2_000_000 and abs(diff) <= 0.1
            print(f"{name:<12} {rate:>12,.0f} [{args.requests / wall:>11,.0f}] {lrate:>12,.0f} [{n / lwall:>11,.0f}] "
                  f"{rate / lrate:>6.2f} {ours:>14.4%} {theirs:>16.4%} {diff:>10.4f}", flush=True)
    print("\ndefault replay settings (TTL 30 days, unbounded capacity; no libCacheSim equivalent):")
    for name in args.strategies.split(","):
        wall, cpu = time.perf_counter(), time.process_time()
        result = compare_strategies(batches, [name], calibrate=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        r = result["strategies"][name]
        print(f"{name:<12} {args.requests / cpu:>12,.0f} [{args.requests / wall:>11,.0f}] req/s  "
              f"hit rate {r['hit_rate']:.4%}  fragmented {r['fragmented']:,}  unique keys {r['unique_keys']:,}",
              flush=True)
    print("targets with LRU capacity (>= 2M req/s per strategy, hit rate within 0.1 pp):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
