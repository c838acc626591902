"""Edge pre-warming: the gain a rehearsal measures against the gain the replay predicts.

    .venv/bin/python benchmarks/prewarm_bench.py                    # the default scenario
    .venv/bin/python benchmarks/prewarm_bench.py --scenario my.toml --tolerance 0.5

Runs the scenario twice on the same traffic (same seed): A with ``prewarm = "store"`` (prescaled, the
edge cold) and B with ``prewarm = "both"`` (also pre-warmed at every POP). The measured gain is B's hit
rate minus A's over the edge logs of the run (the requests of the load; the warm requests are not
counted). The prediction is the replay's (:func:`edgeproof.rehearsal.prewarm.predict_gain`): A's logs
replayed without and with B's warm plan at every POP just before them. The ``prewarm plan`` command
makes the same prediction from a team's real logs before a launch. Also printed side by side: the
ephemeral scenario against the default on the same traffic (``--with-ephemeral``): hit rate, p99 of
misses, transforms and repeated transforms.

Target: |measured − predicted| ≤ 0.5 percentage points (``--tolerance``). Exit 0 met, 1 missed, 3 when a
rehearsal fails.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeproof.errors import EXIT_INTERNAL, EXIT_MISSED, EXIT_OK  # noqa: E402


def _rehearse(scenario: Path, out: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario),
                           "--out", str(out), "--quiet"], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"rehearsal {scenario.name} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads((out / "summary.json").read_text())


def _with_prewarm(text: str, value: str) -> str:
    if re.search(r"(?m)^prewarm\s*=", text):
        return re.sub(r'(?m)^prewarm\s*=\s*"[a-z]+"', f'prewarm = "{value}"', text)
    return f'prewarm = "{value}"\n' + text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="default", help="a built-in rehearsal scenario or a TOML file")
    ap.add_argument("--tolerance", type=float, default=0.5, help="percentage points (default 0.5)")
    ap.add_argument("--with-ephemeral", action="store_true", help="also run `ephemeral` on the same traffic")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    args = ap.parse_args()

    from edgeproof.rehearsal import prewarm
    from edgeproof.rehearsal.calibration import edge_config
    from edgeproof.rehearsal.config import BUILTIN_DIR, load_rehearsal
    from edgeproof.rehearsal.run import edge_warm_plan

    src = Path(args.scenario) if Path(args.scenario).is_file() else BUILTIN_DIR / f"{args.scenario}.toml"
    text = src.read_text()
    base = Path(args.out or tempfile.mkdtemp(prefix="edgeproof-prewarm-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    for label, value in (("A", "store"), ("B", "both")):
        path = base / f"{label}.toml"
        path.write_text(_with_prewarm(text, value))
        print(f"rehearsal {label}: prewarm = {value!r} …", file=sys.stderr, flush=True)
        runs[label] = _rehearse(path, base / label)
    a, b = runs["A"], runs["B"]
    try:
        scenario = load_rehearsal(base / "B.toml")
        pops = edge_config(scenario, base / "B").pop_list  # the POPs B's edge ran and warmed
        plan, _skus = edge_warm_plan(scenario, base / "B" / "loadtest-scenario.toml", pops)
        traffic = prewarm.observe_traffic([str(base / "A" / "logs")])
        traffic.pops = pops  # every POP of the emulator, as the rehearsal warmed them
        prediction = prewarm.predict_gain([str(base / "A" / "logs")], plan, scenario.strategy, traffic,
                                          window=max(a["duration"] * 3, 600))
    except Exception as err:  # noqa: BLE001 - a bench reports, never hides, a failure
        print(f"prewarm_bench: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_INTERNAL
    measured = (b["edge"]["hit_rate"] - a["edge"]["hit_rate"]) * 100
    predicted = (prediction.difference or 0.0) * 100
    print(f"scenario {a['scenario']} ({a['strategy']}), {a['edge']['requests']} requests, {len(pops)} POPs, "
          f"{len(plan)} warm keys × {len(pops)} POPs")
    print(f"  A prewarm=store : hit rate {a['edge']['hit_rate']:.4%} (replay without the warm list: "
          f"{prediction.without:.4%})")
    print(f"  B prewarm=both  : hit rate {b['edge']['hit_rate']:.4%} (replay of A with B's warm list: "
          f"{prediction.with_warm:.4%})")
    diff = measured - predicted
    print(f"  gain measured {measured:+.3f} pp, predicted {predicted:+.3f} pp, difference {diff:+.3f} pp "
          f"(target ±{args.tolerance:g}) → {'met' if abs(diff) <= args.tolerance else 'MISSED'}")
    same = a["client"]["sent"] == b["client"]["sent"]
    print(f"  same traffic: {a['client']['sent']} vs {b['client']['sent']} requests sent"
          + ("" if same else "  (DIFFERENT: the comparison is off)"))
    if args.with_ephemeral:
        print("rehearsal ephemeral …", file=sys.stderr, flush=True)
        e = _rehearse(BUILTIN_DIR / "ephemeral.toml", base / "E")
        print("\n| run | spike hit rate | p99 miss (client) | transforms | repeated transforms | tasks (max) | verdict |")
        print("|---|---|---|---|---|---|---|")
        for label, s in (("default (prewarm both)", b), ("ephemeral", e)):
            work = s.get("origin_work") or {}
            most = max((r.get("origin_tasks") or 0 for r in s.get("origin_timeline") or []), default=0)
            print(f"| {label} | {s['spike_hit_rate']:.2%} | {s['latency_ms']['client']['miss']['p99']:.0f} ms | "
                  f"{work.get('transforms')} | {work.get('repeat_transforms')} "
                  f"({(work.get('repeat_transform_rate') or 0):.0%}) | {most} | {'PASS' if s['passed'] else 'FAIL'} |")
    print(f"runs in {base}")
    return EXIT_OK if abs(diff) <= args.tolerance and same else EXIT_MISSED


if __name__ == "__main__":
    sys.exit(main())
