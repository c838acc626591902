"""Benchmark ``edgeproof logs summarize`` against DuckDB (and GoAccess when installed).

Generates (once, cached under benchmarks/_work/) a synthetic 33-field CloudFront standard log of
``--lines`` lines in ONE gzip file, and the same kind of traffic as ``--hourly`` smaller hourly files.
Then, in one run, alternating the tools to share the machine's noise fairly:

1. single file: ``edgeproof logs summarize FILE --json`` vs DuckDB ``read_csv`` computing the same
   counts (requests, hits, misses, bytes) and the p99 of time-taken (both as fresh processes);
2. hourly files: ``--jobs 1`` vs ``--jobs 2`` (the speedup from 2 cores);
3. GoAccess ``--log-format=CLOUDFRONT`` on the single file, when ``goaccess`` is on PATH (skipped if not).

Prints each wall time (best of ``--repeat``), the CPU seconds each used (user+sys, a measure that
does not depend on what else runs on the machine) and the ratios against the targets:
edgeproof ≤ 0.9× DuckDB; ≥ 1.7× from 2 jobs; ≥ 15× faster than GoAccess. Because the machine is
shared, it also measures how much 2 processes can gain *right now* on pure-CPU work (the ceiling
for any 2-job speedup).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edgeproof.analytics.schema import LEGACY_FIELDS_33  # noqa: E402
from edgeproof.analytics.synthetic import generate_hour, generate_logs  # noqa: E402
from edgeproof.analytics.writer import encode_columns, w3c_header  # noqa: E402

START = datetime(2024, 5, 1, tzinfo=UTC)
PY = sys.executable
EDGEPROOF = str(Path(PY).with_name("edgeproof"))

DUCKDB_SCRIPT = r"""
import duckdb, json, sys
path = sys.argv[1]
names = {names!r}
types = {{n: ("BIGINT" if n in ("sc_bytes", "cs_bytes", "sc_content_len", "sc_range_start", "sc_range_end")
          else "INTEGER" if n in ("sc_status", "c_port")
          else "DOUBLE" if n in ("time_taken", "time_to_first_byte") else "VARCHAR") for n in names}}
cols = "{{" + ", ".join(f"'{{n}}': '{{t}}'" for n, t in types.items()) + "}}"
q = f'''
SELECT count(*) AS requests,
       count(*) FILTER (WHERE cs_method IN ('GET','HEAD') AND x_edge_result_type IN ('Hit','RefreshHit')) AS hits,
       count(*) FILTER (WHERE cs_method IN ('GET','HEAD') AND x_edge_result_type IN ('Miss','OriginShieldHit')) AS misses,
       sum(sc_bytes) AS bytes,
       quantile_disc(time_taken * 1000, 0.99) AS p99_ms
FROM read_csv('{{path}}', delim='\t', header=false, skip=2, quote='', escape='', nullstr='-',
              auto_detect=false, columns={{cols}}, compression='gzip')
'''
row = duckdb.sql(q).fetchall()[0]
print(json.dumps(dict(zip(["requests", "hits", "misses", "bytes", "p99_ms"], row))))
"""


def _single_file(work: Path, lines: int, seed: int) -> Path:
    path = work / f"E2BENCH.2024-05-01-00.single-{lines}.gz"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    chunk = 100_000
    with gzip.GzipFile(tmp, "wb", compresslevel=6, mtime=0) as fh:
        fh.write(w3c_header(LEGACY_FIELDS_33).encode())
        done = 0
        hour = 0
        while done < lines:
            n = min(chunk, lines - done)
            cols = generate_hour(START + timedelta(hours=hour), n, hit_rate=0.92, seed=seed)
            fh.write(("\n".join(encode_columns(cols, n, LEGACY_FIELDS_33)) + "\n").encode())
            done += n
            hour += 1
    tmp.rename(path)
    return path


def _hourly(work: Path, files: int, lines: int, seed: int) -> Path:
    folder = work / f"hourly-{files}x{lines}"
    if folder.is_dir() and len(list(folder.glob("*.gz"))) == files:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    generate_logs(folder, START, files, lines, hit_rate=0.92, seed=seed)
    return folder


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _time(cmd: list[str] | str, shell: bool = False) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user+sys of the process and its children) and stdout of one run."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, shell=shell, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {cmd}\n{done.stderr[-2000:]}")
    return wall, _children_cpu() - cpu0, done.stdout


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _parallel_ceiling(n: int = 6_000_000) -> float:
    """How much faster 2 processes finish 2 equal pure-CPU tasks than 1 process on this machine, now."""
    t0 = time.perf_counter()
    _spin(n)
    _spin(n)
    serial = time.perf_counter() - t0
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ctx.Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # start the workers first
        t0 = time.perf_counter()
        pool.map(_spin, [n, n])
        parallel = time.perf_counter() - t0
    return serial / parallel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2_000_000, help="lines in the single gz file (default 2,000,000)")
    ap.add_argument("--hourly", type=int, default=16, help="number of hourly files (default 16)")
    ap.add_argument("--hourly-lines", type=int, default=60_000, help="lines per hourly file (default 60,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best wall time is reported (default 3)")
    ap.add_argument("--work", type=Path, default=HERE / "_work", help="cache folder (default benchmarks/_work)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-goaccess", action="store_true", help="skip GoAccess even when installed (it is slow)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    single = _single_file(args.work, args.lines, args.seed)
    hourly = _hourly(args.work, args.hourly, args.hourly_lines, args.seed)
    print(f"data: {single.name} ({single.stat().st_size / 1e6:.0f} MB gz), "
          f"{args.hourly} hourly files x {args.hourly_lines} lines "
          f"(ready in {time.perf_counter() - t0:.1f}s)")
    duck_script = args.work / "duck_query.py"
    names = [n.lower().replace("(", "_").replace(")", "").replace("-", "_") for n in LEGACY_FIELDS_33]
    duck_script.write_text(DUCKDB_SCRIPT.format(names=names))

    ceiling = _parallel_ceiling()
    print(f"machine now: 2 processes run pure-CPU work {ceiling:.2f}x faster than 1 (load {os.getloadavg()[0]:.1f})")
    ours_cmd = [EDGEPROOF, "logs", "summarize", str(single), "--json"]
    duck_cmd = [PY, str(duck_script), str(single)]
    ours = duck = (float("inf"), 0.0)
    ours_out = duck_out = ""
    for _ in range(args.repeat):  # alternate so both see the same machine noise
        w, c, ours_out = _time(ours_cmd)
        ours = min(ours, (w, c))
        w, c, duck_out = _time(duck_cmd)
        duck = min(duck, (w, c))
    r = json.loads(ours_out)
    d = json.loads(duck_out)
    print(f"\nsingle file ({args.lines:,} lines)            wall      cpu")
    print(f"  edgeproof (default --jobs 0 = all cores) {ours[0]:7.2f} s {ours[1]:7.2f} s   requests={r['requests']} "
          f"hits={r['hits']} misses={r['misses']} bytes={r['bytes']} p99={r['latency_ms']['time_taken']['overall']['p99']} ms")
    print(f"  duckdb read_csv                          {duck[0]:7.2f} s {duck[1]:7.2f} s   requests={d['requests']} "
          f"hits={d['hits']} misses={d['misses']} bytes={d['bytes']} p99={d['p99_ms']} ms")
    same = (r["requests"], r["hits"], r["misses"], r["bytes"]) == (d["requests"], d["hits"], d["misses"], d["bytes"])
    p99_ok = abs(r["latency_ms"]["time_taken"]["overall"]["p99"] - d["p99_ms"]) <= 0.011 * d["p99_ms"] + 1.0
    print(f"  same counts: {same}; p99 within 1%: {p99_ok}")
    ratio = ours[0] / duck[0]
    print(f"  wall ratio edgeproof/duckdb = {ratio:.2f}  (target <= 0.90: {'met' if ratio <= 0.9 else 'MISSED'}); "
          f"cpu ratio = {ours[1] / duck[1]:.2f}")

    j1 = j2 = (float("inf"), 0.0)
    for _ in range(args.repeat):
        j1 = min(j1, _time([EDGEPROOF, "logs", "summarize", str(hourly), "--json", "--jobs", "1"])[:2])
        j2 = min(j2, _time([EDGEPROOF, "logs", "summarize", str(hourly), "--json", "--jobs", "2"])[:2])
    speedup = j1[0] / j2[0]
    print(f"\nhourly files ({args.hourly} x {args.hourly_lines:,} lines)   wall      cpu")
    print(f"  --jobs 1   {j1[0]:7.2f} s {j1[1]:7.2f} s")
    print(f"  --jobs 2   {j2[0]:7.2f} s {j2[1]:7.2f} s")
    print(f"  speedup = {speedup:.2f}x  (target >= 1.7: {'met' if speedup >= 1.7 else 'MISSED'}; "
          f"this machine's ceiling right now {ceiling:.2f}x)")

    goaccess = None if args.no_goaccess else shutil.which("goaccess")
    if goaccess is None:
        print("\ngoaccess: skipped (not installed, or --no-goaccess; apt-get install goaccess to compare)")
    else:
        out = args.work / "goaccess.json"
        cmd = f"zcat {single} | {goaccess} --log-format=CLOUDFRONT --no-progress -o {out} -"
        ga, ga_cpu, _ = _time(cmd, shell=True)
        print(f"\ngoaccess --log-format=CLOUDFRONT: {ga:.2f} s (single file, one run)")
        print(f"  goaccess/edgeproof = {ga / ours[0]:.1f}x  (target >= 15: {'met' if ga / ours[0] >= 15 else 'MISSED'}); "
              f"cpu {ga_cpu:.2f} s")
    print(f"\nmachine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load {os.getloadavg()[0]:.1f}; "
          f"2-process ceiling at the end {_parallel_ceiling():.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
