"""edgeproof's transform vs sharp: one 2725×2225 JPEG → 720×588 (cover) as JPEG q80, WebP q80, AVIF q50.

AVIF runs twice: at sharp's default effort 4 for both (the origin's default), and at effort 3 for
both (``--avif-effort 3``).

One thread each (pyvips concurrency 1; sharp.concurrency(1) with UV_THREADPOOL_SIZE=1), libvips
operation caches off, equal output size, format and encoder settings (sharp's defaults: JPEG 4:2:0
with optimised Huffman coding, WebP effort 4, AVIF effort 4 at sharp's default quality 50).
The two run alternately (``--rounds`` rounds of ``--seconds`` each) and the best round of each is
kept. Both wall-clock ops/s and ops per CPU-second are printed; the ratio and ms/img use CPU time,
which a busy shared machine disturbs far less than wall time (one thread: CPU time is the work). sharp is installed with npm into
benchmarks/_work/sharp when node is present; without node the sharp column is skipped.

    python benchmarks/transform_bench.py [--seconds 1] [--rounds 5] [--formats jpeg,webp,avif]

Targets: ≥ 1.0× sharp for JPEG and WebP; AVIF at 720 px under 500 ms per image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORK = REPO / "benchmarks" / "_work"
SHARP_DIR = WORK / "sharp"
SOURCE = WORK / "bench-2725x2225.jpg"
QUALITY = {"jpeg": 80, "webp": 80, "avif": 50}
W, H = 720, 588

SHARP_JS = r"""
const sharp = require('sharp');
const fs = require('fs');
const [,, src, fmt, quality, seconds, effortArg] = process.argv;
const effort = parseInt(effortArg || '4', 10);
sharp.concurrency(1);
sharp.cache(false);
const input = fs.readFileSync(src);
const q = parseInt(quality, 10);
function one() {
  let p = sharp(input).rotate().resize(720, 588, { fit: 'cover', position: 'centre' });
  if (fmt === 'jpeg') p = p.jpeg({ quality: q });
  else if (fmt === 'webp') p = p.webp({ quality: q, effort: 4 });
  else p = p.avif({ quality: q, effort });
  return p.toBuffer();
}
(async () => {
  let out = await one();  // warm up
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const limit = BigInt(Math.round(parseFloat(seconds) * 1e9));
  let n = 0;
  while (process.hrtime.bigint() - t0 < limit || n < 3) { out = await one(); n++; }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  console.log(JSON.stringify({ ops: n / secs, cpu_ops: n / cpu, n, bytes: out.length,
                               version: sharp.versions.sharp, vips: sharp.versions.vips }));
})();
"""


def make_source() -> bytes:
    """The benchmark image: a synthetic product photo, 2725×2225, JPEG q90 (made once)."""
    if SOURCE.exists():
        return SOURCE.read_bytes()
    from edgeproof.origin.catalog import make_product_image

    WORK.mkdir(parents=True, exist_ok=True)
    image = make_product_image(2725, 2225, kind="bottle", seed=7)
    data = bytes(image.jpegsave_buffer(Q=90))
    SOURCE.write_bytes(data)
    return data


def ensure_sharp() -> Path | None:
    """node + sharp in benchmarks/_work/sharp, or None (with a message) when node is missing."""
    if not shutil.which("node") or not shutil.which("npm"):
        print("sharp: skipped (node/npm not found)")
        return None
    if not (SHARP_DIR / "node_modules" / "sharp").is_dir():
        SHARP_DIR.mkdir(parents=True, exist_ok=True)
        print("sharp: npm install sharp (once) …", flush=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "sharp@0.34"],
                              cwd=SHARP_DIR, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"sharp: skipped (npm install failed: {done.stderr.strip()[-300:]})")
            return None
    script = SHARP_DIR / "bench.js"
    script.write_text(SHARP_JS)
    return script


def _split(name: str) -> tuple[str, int]:
    """``avif@3`` → (``avif``, effort 3); plain names use sharp's default effort 4."""
    fmt, _, effort = name.partition("@")
    return fmt, int(effort or 4)


def run_sharp(script: Path, name: str, seconds: float) -> dict[str, float]:
    fmt, effort = _split(name)
    env = {**os.environ, "UV_THREADPOOL_SIZE": "1", "VIPS_CONCURRENCY": "1"}
    out = subprocess.run(["node", str(script), str(SOURCE), fmt, str(QUALITY[fmt]), str(seconds), str(effort)],
                         cwd=SHARP_DIR, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_edgeproof(data: bytes, name: str, seconds: float) -> dict[str, float]:
    from edgeproof.origin.transform import transform

    from edgeproof.canonical import Variant

    fmt, effort = _split(name)
    variant = Variant(w=W, h=H, fit="cover", q=QUALITY[fmt], f=fmt)
    out = transform(data, variant, avif_effort=effort)  # warm up
    assert (out.width, out.height) == (W, H)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds or n < 3:
        out = transform(data, variant, avif_effort=effort)
        n += 1
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"ops": n / secs, "cpu_ops": n / cpu, "n": n, "bytes": len(out.data)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one timed round (default 1)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per library, best kept (default 5)")
    ap.add_argument("--formats", default="jpeg,webp,avif,avif@3",
                    help="comma-separated; avif@N = AVIF at effort N for both (default jpeg,webp,avif,avif@3)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import pyvips
    from edgeproof.origin.transform import configure_vips

    configure_vips(concurrency=1)
    data = make_source()
    script = ensure_sharp()
    print(f"source: {SOURCE.relative_to(REPO)} (2725x2225 JPEG, {len(data)} bytes) → {W}x{H} cover, one thread")
    print(f"edgeproof: pyvips {pyvips.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
          f"; cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start")
    results: dict[str, dict[str, object]] = {}
    header = (f"{'format':6} {'edgeproof/s':>11} {'sharp/s':>8} {'edgeproof/cpu-s':>15} {'sharp/cpu-s':>11} "
              f"{'ratio':>6} {'edgeproof B':>11} {'sharp B':>8} {'ms/img':>7}")
    rows = []
    for fmt in args.formats.split(","):
        ours: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for _ in range(args.rounds):
            ours.append(run_edgeproof(data, fmt, args.seconds))
            if script:
                theirs.append(run_sharp(script, fmt, args.seconds))
        best = {k: max(r[k] for r in ours) for k in ("ops", "cpu_ops")} | {"bytes": ours[-1]["bytes"]}
        peer = ({k: max(r[k] for r in theirs) for k in ("ops", "cpu_ops")} | {"bytes": theirs[-1]["bytes"]}
                if theirs else None)
        ratio = best["cpu_ops"] / peer["cpu_ops"] if peer else None
        ms = 1000 / best["cpu_ops"]  # per image on one core, without other work's interference
        results[fmt] = {"edgeproof": best, "sharp": peer, "ratio_cpu": ratio,
                        "ratio_wall": best["ops"] / peer["ops"] if peer else None, "ms_per_image": ms}
        nan = float("nan")
        rows.append(
            f"{fmt:6} {best['ops']:11.1f} {peer['ops'] if peer else nan:8.1f} {best['cpu_ops']:15.1f} "
            f"{peer['cpu_ops'] if peer else nan:11.1f} {ratio if ratio else nan:6.2f} {int(best['bytes']):11d} "
            f"{int(peer['bytes']) if peer else 0:8d} {ms:7.1f}"
        )
    if script and theirs:
        print(f"sharp: {theirs[0].get('version')} (libvips {theirs[0].get('vips')})")
    print(header)
    print("\n".join(rows))
    verdicts = []
    for fmt in ("jpeg", "webp"):
        if fmt in results and results[fmt]["ratio_cpu"] is not None:
            ok = results[fmt]["ratio_cpu"] >= 1.0  # type: ignore[operator]
            verdicts.append(f"{fmt} ≥ 1.0x sharp: {'yes' if ok else 'NO'}")
    from edgeproof.origin.transform import DEFAULT_AVIF_EFFORT

    for name in (f"avif@{DEFAULT_AVIF_EFFORT}", "avif"):
        if name in results:
            ms = results[name]["ms_per_image"]
            verdicts.append(f"{name} < 500 ms: {'yes' if ms < 500 else 'NO'} ({ms:.0f} ms)")  # type: ignore[operator]
    print("targets: " + "; ".join(verdicts))
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other work shares this machine)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
