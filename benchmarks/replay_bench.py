"""Replay throughput and accuracy: edgeproof's compare_strategies vs libCacheSim (LRU) and the reference model.

    .venv/bin/python benchmarks/replay_bench.py                       # 10M requests, 200k variants, 8 POPs, 7 days
    .venv/bin/python benchmarks/replay_bench.py --requests 1000000    # quicker
    .venv/bin/python benchmarks/replay_bench.py --busters 0.3         # 30 % of requests carry &cb=<random>
    .venv/bin/python benchmarks/replay_bench.py --week                # a week at the seed's scale (see below)

The synthetic trace: Zipf(alpha) popularity over ``--variants`` image variants (8 widths per image), each
requested in one of four spellings (parameter order, aliases, a tracking parameter), from 8 POPs, spread
evenly over ``--days``; object size depends on the variant. Per strategy it prints requests/s of
``compare_strategies`` (everything included: dictionary encoding, applying the strategy once per
distinct URL, the compiled cache model) and of libCacheSim's C LRU (``process_trace`` over an
oracleGeneral binary trace of the same keys, one cache per POP, trace-file writing not timed), and both
hit rates at the same per-POP byte capacity with no expiry (``tier="pop", ttl=0``: libCacheSim's LRU has
no TTL and no tiers). Then requests/s with the replay's default settings (regional edge caches, TTL 30
days, revalidation on). Then the reference model (:class:`edgeproof.analytics._cachesim_ref.ReferenceModel`, plain
Python) on the first ``--reference-requests`` of the trace, both settings: every counter must equal the
fast model's. Targets: >= 2M requests/s per strategy on one core (both settings); hit rates within 0.1
percentage points of libCacheSim; the reference exactly equal. Exit 0 when all are met, 1 otherwise.

``--week``: the 2M-line gzip log of benchmarks/logs_bench.py (generated once into benchmarks/_work/),
given ``--times`` times (default 125: 250M lines, a week at the seed's scale) to ``edgeproof strategies
compare`` with every built-in strategy and the default settings, in a fresh process: wall time, CPU
time and peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``). Targets: <= 10 minutes on 2 cores, peak
<= 2 GB (exit 1 when missed). With fewer ``--times`` it also prints the linear extrapolation to 125.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from edgeproof.analytics.replay import compare_strategies  # noqa: E402
from edgeproof.analytics.strategies import get_strategy, list_strategies  # noqa: E402

WIDTHS = (320, 360, 400, 480, 600, 640, 750, 828)
SPELLINGS = ("w={w}&f=webp", "f=webp&w={w}", "width={w}&format=webp", "w={w}&f=webp&utm_source=mail")
POPS = ("IAD89-C1", "FRA56-P2", "NRT12-C3", "GRU3-C1", "SYD1-C2", "LHR61-C1", "SIN2-C2", "ORD52-C4")


def make_trace(n: int, variants: int, pops: int, days: float, alpha: float, seed: int, batch: int,
               busters: float = 0.0):
    """Record batches (timestamp, x_edge_location, cs_method, cs_uri_stem, cs_uri_query, ...) + raw arrays.

    ``busters``: the fraction of requests whose query also carries ``&cb=<6 random digits>`` (a new query
    string nearly every time, as in real logs)."""
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
    if busters > 0:
        rows = np.nonzero(rng.random(n) < busters)[0]
        cb = rng.integers(100_000, 1_000_000, rows.size)
        queries += [f"{queries[q]}&cb={c}" for q, c in zip(query_ids[rows].tolist(), cb.tolist(), strict=True)]
        query_ids = query_ids.copy()
        query_ids[rows] = np.arange(len(WIDTHS) * len(SPELLINGS), len(queries))
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


def _timed(*args: Any, **kw: Any) -> tuple[dict[str, Any], float, float]:
    """compare_strategies(*args, **kw): (result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = compare_strategies(*args, **kw)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _head(batches: list[pa.RecordBatch], n: int) -> list[pa.RecordBatch]:
    """The first ``n`` rows of the trace, as batches."""
    out, left = [], n
    for b in batches:
        if left <= 0:
            break
        out.append(b.slice(0, left))
        left -= out[-1].num_rows
    return out


def reference_check(batches: list[pa.RecordBatch], names: list[str], capacity: int) -> bool:
    """The fast model against the reference model on the same rows, both settings: every counter equal."""
    ok = True
    rows = sum(b.num_rows for b in batches)
    for label, kw in (("default settings", {}), ("LRU, pop, ttl 0", {"ttl": 0, "capacity": capacity, "tier": "pop"})):
        for name in names:
            fast, fwall, _ = _timed(batches, [name], calibrate=False, **kw)
            ref, rwall, _ = _timed(batches, [name], calibrate=False, model="reference", **kw)
            f, r = fast["strategies"][name], ref["strategies"][name]
            differ = sorted(k for k in set(f) | set(r) if f.get(k) != r.get(k))
            ok = ok and not differ
            print(f"  {label:<17} {name:<12} {rows:,} requests: hit rate fast {f['hit_rate']:.4%} reference "
                  f"{r['hit_rate']:.4%}  {'all counters equal' if not differ else 'DIFFER: ' + ', '.join(differ)}"
                  f"  (fast {fwall:.1f} s, reference {rwall:.1f} s)", flush=True)
    return ok


def _compare_copies(log: Path, times: int) -> tuple[dict[str, Any], float, float, int]:
    """``edgeproof strategies compare --logs LOG x times --json`` in a fresh process: (result, wall s, CPU s,
    peak RSS bytes of that process)."""
    edgeproof = str(Path(sys.executable).with_name("edgeproof"))
    cmd = [edgeproof, "strategies", "compare", "--logs", *[str(log)] * times, "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: no strategy met the hit-rate target (a result, not a failure)
        raise SystemExit(f"strategies compare failed ({done.returncode}): {done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    # ru_maxrss of RUSAGE_CHILDREN is the largest child's peak (KiB on Linux); children run one at a time
    return json.loads(done.stdout), wall, cpu, after.ru_maxrss * 1024


def week(args: argparse.Namespace) -> int:
    """``strategies compare`` over the 2M-line logs_bench log given ``--times`` times: wall, CPU, peak RSS."""
    import logs_bench

    args.work.mkdir(parents=True, exist_ok=True)
    print(f"the {args.week_lines:,}-line log of benchmarks/logs_bench.py (generated once into {args.work}) ...",
          flush=True)
    log = logs_bench._single_file(args.work, args.week_lines, args.week_seed)
    print(f"edgeproof strategies compare --logs <that file x {args.times}> --json (every built-in strategy: "
          f"{', '.join(list_strategies())}; default settings); load average before: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; cpu count {os.cpu_count()}", flush=True)
    result, wall, cpu, peak = _compare_copies(log, args.times)
    lines = result["requests"]
    runs = 2 if next(iter(result["strategies"].values()))["hit_rate_range"] is not None else 1
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{lines:,} log lines ({result['replayed']:,} replayed; {len(result['strategies'])} strategies x {runs} "
          f"Accept inferences; {result['distinct_queries']:,} distinct (query, Accept)): wall {wall:.1f} s, CPU "
          f"{cpu:.1f} s ({cpu / wall:.2f} cores), peak RSS {peak / 2**20:,.0f} MiB; {lines / wall:,.0f} lines/s")
    for name, r in result["strategies"].items():
        print(f"  {name:<12} hit rate {r['hit_rate']:.4%}  unique keys {r['unique_keys']:,}  "
              f"variants {r['unique_variants']:,}")
    wall_125 = wall
    if args.times != 125:
        # the first copy also keys every query it brings; later copies only look ids up: first + marginal
        _r1, wall1, _c1, peak1 = _compare_copies(log, 1) if args.times > 1 else (result, wall, cpu, peak)
        per_copy = (wall - wall1) / (args.times - 1) if args.times > 1 else wall1
        wall_125 = wall1 + 124 * per_copy
        print(f"one copy: wall {wall1:.1f} s, peak RSS {peak1 / 2**20:,.0f} MiB; each further copy "
              f"{per_copy:.1f} s; extrapolated to 125 copies (250M lines): ~{wall_125:,.0f} s wall")
    met = wall_125 <= 600 and peak <= 2 * 2**30
    print(f"targets (<= 600 s for 250M lines on 2 cores, peak <= 2 GiB): {'met' if met else 'NOT met'}"
          f"{'' if args.times == 125 else ' (wall judged on the extrapolation)'}")
    return 0 if met else 1


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
    ap.add_argument("--busters", type=float, default=0.0,
                    help="fraction of requests with a &cb=<random> cache buster (default 0)")
    ap.add_argument("--reference-requests", type=int, default=200_000,
                    help="requests replayed through the reference model too (default 200,000; 0: skip)")
    ap.add_argument("--no-libcachesim", action="store_true", help="skip the libCacheSim comparison")
    ap.add_argument("--week", action="store_true", help="the week mode (see above) instead of the trace")
    ap.add_argument("--times", type=int, default=125, help="--week: copies of the log given (default 125)")
    ap.add_argument("--week-lines", type=int, default=2_000_000, help="--week: lines of the log (default 2M)")
    ap.add_argument("--week-seed", type=int, default=42, help="--week: logs_bench's seed (default 42)")
    ap.add_argument("--work", type=Path, default=HERE / "_work", help="--week: cache folder (default benchmarks/_work)")
    args = ap.parse_args(argv)
    if args.week:
        return week(args)

    names = args.strategies.split(",")
    print(f"generating {args.requests:,} requests over {args.variants:,} variants, {args.pops} POPs, "
          f"{args.days:g} days (Zipf {args.alpha}), cache busters on {args.busters:.0%} ...", flush=True)
    batches, raw = make_trace(args.requests, args.variants, args.pops, args.days, args.alpha, args.seed, args.batch,
                              args.busters)
    # warm numba's compiled code once (compilation is cached on disk; not part of the measurement)
    compare_strategies(batches[:1], ["passthrough"], ttl=0, capacity=args.capacity, calibrate=False)
    compare_strategies(batches[:1], ["passthrough"], calibrate=False)
    print(f"cpu count {os.cpu_count()} (each run is single-threaded); load average before: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("req/s = requests / CPU seconds of this process (process_time); wall-clock req/s in brackets; one\n"
          "strategy = its two runs (one per Accept inference), as `strategies compare` replays it")
    print(f"\nLRU capacity {args.capacity:,} bytes per POP cache, tier pop, no expiry (libCacheSim's model):")
    print(f"{'strategy':<12} {'edgeproof req/s':>26} {'libCacheSim req/s':>26} {'ratio':>6} "
          f"{'edgeproof hit':>14} {'libCacheSim hit':>16} {'diff (pp)':>10}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            result, wall, cpu = _timed(batches, [name], ttl=0, capacity=args.capacity, tier="pop",
                                         calibrate=False)
            ours = result["strategies"][name]["hit_rate"]
            rate = args.requests / cpu
            ok = ok and rate >= 2_000_000
            if args.no_libcachesim:
                print(f"{name:<12} {rate:>12,.0f} [{args.requests / wall:>11,.0f}] {'-':>26} {'-':>6} {ours:>14.4%}",
                      flush=True)
                continue
            theirs, lcpu, lwall, n = libcachesim_run(raw, name, args.pops, args.capacity, Path(tmp))
            lrate = n / lcpu
            diff = 100 * (ours - theirs)
            ok = ok and abs(diff) <= 0.1
            print(f"{name:<12} {rate:>12,.0f} [{args.requests / wall:>11,.0f}] {lrate:>12,.0f} [{n / lwall:>11,.0f}] "
                  f"{rate / lrate:>6.2f} {ours:>14.4%} {theirs:>16.4%} {diff:>10.4f}", flush=True)
    print("\ndefault replay settings (tier regional, TTL 30 days, revalidation on, unbounded capacity; no libCacheSim "
          "equivalent):")
    for name in names:
        result, wall, cpu = _timed(batches, [name], calibrate=False)
        r = result["strategies"][name]
        rate = args.requests / cpu
        ok = ok and rate >= 2_000_000
        print(f"{name:<12} {rate:>12,.0f} [{args.requests / wall:>11,.0f}] req/s  hit rate {r['hit_rate']:.4%}  "
              f"refresh hits {r['refresh_hits']:,}  regional hits {r['regional_hits']:,}  "
              f"fragmented {r['fragmented']:,}  unique keys {r['unique_keys']:,}", flush=True)
    if args.reference_requests > 0:
        print(f"\nthe reference model (edgeproof.analytics._cachesim_ref.ReferenceModel) on the first "
              f"{min(args.reference_requests, args.requests):,} requests:")
        ok = reference_check(_head(batches, args.reference_requests), names, args.capacity) and ok
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("targets (>= 2M req/s per strategy in both settings; hit rate within 0.1 pp of libCacheSim; reference "
          "equal):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
