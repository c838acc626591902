"""Calibration of the rehearsal's what-if: the replay's prediction checked against real rehearsals.

    .venv/bin/python benchmarks/calibration_bench.py                 # default scenario, the three pairs
    .venv/bin/python benchmarks/calibration_bench.py --quick         # one pair, a 20 s rehearsal each
    .venv/bin/python benchmarks/calibration_bench.py --scenario ephemeral --pairs allowlist:aggressive

A pair ``SOURCE:OTHER`` runs a rehearsal under SOURCE, takes its what-if prediction for OTHER (the replay
of SOURCE's edge logs, :func:`edgeproof.analytics.replay.compare_strategies`), runs a rehearsal under OTHER on the
same traffic (same scenario, same seed: the bench checks the request sequences are identical) and
compares the prediction with the hit rate OTHER's rehearsal measured: its hit-rate gate, over the
spike's recorder rows. One rehearsal per distinct strategy serves every pair it is in. Each line also
gives the edge logs' spike hit rate (a window of log times, whole seconds) and the causes that could
separate prediction and observation: the requests of the scored window that are not a hit or a miss in
one run (errors, hung-up viewers), arrivals the load generator dropped, and the replay's own
self-calibration (its replay of the run's own strategy against what that edge logged).

Target: every difference within ±0.3 percentage points (``--tolerance``). Exit 0 when met, 1 when a pair
misses it, 2 on bad usage, 3 when a rehearsal fails, 4 when a run has no what-if to compare.
Rehearsals run one at a time (the machine's cores are shared by the stack and the load generator).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeproof.errors import EXIT_INCOMPLETE, EXIT_INTERNAL, EXIT_MISSED, EXIT_OK, EXIT_USAGE  # noqa: E402

DEFAULT_PAIRS = "passthrough:aggressive,allowlist:aggressive,aggressive:passthrough"


@dataclass
class Run:
    strategy: str
    out: Path
    summary: dict[str, Any]
    seconds: float

    @property
    def gate_hit_rate(self) -> float | None:
        """What the rehearsal measured and its verdict scored: the hit-rate gate over the spike's rows."""
        for gate in (self.summary.get("gates") or {}).get("gates") or []:
            if gate["gate"].replace(" ", "").startswith("hit_rate>"):
                return gate["value"]
        return None

    def predicted(self, strategy: str) -> float | None:
        for row in (self.summary.get("what_if") or {}).get("strategies") or []:
            if row["strategy"] == strategy:
                return row["hit_rate"]
        return None


def parse_pairs(text: str) -> list[tuple[str, str]]:
    from edgeproof.analytics.strategies import list_strategies

    known = set(list_strategies())
    pairs = []
    for item in text.split(","):
        src, sep, dst = item.strip().partition(":")
        if not sep or not src or not dst or src == dst:
            raise SystemExit(f"calibration_bench: bad pair {item!r} (use SOURCE:OTHER, e.g. passthrough:aggressive)")
        for name in (src, dst):
            if name not in known:
                raise SystemExit(f"calibration_bench: unknown strategy {name!r} (known: {', '.join(sorted(known))})")
        pairs.append((src, dst))
    return pairs


def rehearse(strategy: str, args: argparse.Namespace, work: Path) -> Run:
    from edgeproof.rehearsal.run import RehearsalOptions, run_rehearsal

    out = work / strategy
    began = time.monotonic()
    result = run_rehearsal(RehearsalOptions(scenario=args.scenario, strategy=strategy, duration=args.duration,
                                            peak_rps=args.peak_rps, out=str(out), cache_dir=args.cache_dir,
                                            quiet=True))
    return Run(strategy, out, result.summary, time.monotonic() - began)


def request_sequence(run: Run) -> tuple[list[tuple[int, str]], Counter[tuple[str, str, str]]]:
    """The load's schedule (intended offset in ms, URL) and what the edge received ((URL, POP, Accept) counts)."""
    from edgeproof.analytics.reader import read_logs
    from edgeproof.loadtest.recorder import read_records

    rows = read_records(run.out / "loadtest").to_pydict()
    t0 = min(rows["intended_start"])
    schedule = sorted((round((t - t0).total_seconds() * 1000), url) for t, url in zip(
        rows["intended_start"], rows["url"], strict=True))
    received: Counter[tuple[str, str, str]] = Counter()
    for batch in read_logs([str(run.out / "realtime-logs")],
                           columns=["cs_uri_stem", "cs_uri_query", "x_edge_location", "cs_accept"]):
        d = batch.to_pydict()
        for stem, query, pop, accept in zip(d["cs_uri_stem"], d["cs_uri_query"], d["x_edge_location"],
                                            d["cs_accept"], strict=True):
            received[(f"{stem}?{query}", pop or "", accept or "")] += 1
    return schedule, received


def causes(src: Run, dst: Run) -> list[str]:
    """What could separate SOURCE's prediction from OTHER's measurement, as measured in the two runs."""
    out = []
    for run in (src, dst):
        w = run.summary.get("what_if") or {}
        excluded = sum((w.get("excluded") or {}).values())
        client = run.summary.get("client") or {}
        cal = w.get("self_calibration") or {}
        if excluded:
            out.append(f"{run.strategy}: {excluded} requests not a hit or a miss (errors, hung up) — not replayed")
        if client.get("dropped"):
            out.append(f"{run.strategy}: {client['dropped']} arrivals dropped by the load generator")
        if cal.get("difference"):
            out.append(f"{run.strategy}: self-calibration {cal['difference'] * 100:+.3f} pp")
        order = (w.get("input") or {}).get("order", "")
        if order and not order.startswith("intended"):
            out.append(f"{run.strategy}: replay keyed by {order}, not the gates' intended start")
    return out


def pct(x: float | None) -> str:
    return "     –" if x is None else f"{x * 100:6.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default=None, help=f"SOURCE:OTHER[,…] (default {DEFAULT_PAIRS})")
    p.add_argument("--scenario", default="default", help="rehearsal scenario name or TOML file (default: default)")
    p.add_argument("--quick", action="store_true",
                   help="passthrough:aggressive only, 20 s of load (about 1 minute per rehearsal)")
    p.add_argument("--duration", type=float, default=None, help="seconds of load per rehearsal (default: the scenario's)")
    p.add_argument("--peak-rps", type=float, default=None, help="peak requests/s (default: the scenario's)")
    p.add_argument("--tolerance", type=float, default=0.3, help="allowed |predicted - observed|, pp (default 0.3)")
    p.add_argument("--work", default=None, help="folder for the rehearsals (default benchmarks/_work/calibration-STAMP)")
    p.add_argument("--cache-dir", default=None, help="sample catalog cache (default .edgeproof-cache)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs = args.pairs or "passthrough:aggressive"
        args.duration = args.duration or 20.0
    try:
        pairs = parse_pairs(args.pairs or DEFAULT_PAIRS)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(args.work or Path(__file__).resolve().parent / "_work" / f"calibration-{stamp}")
    work.mkdir(parents=True, exist_ok=True)

    runs: dict[str, Run] = {}
    for name in dict.fromkeys(s for pair in pairs for s in pair):
        print(f"rehearsal under {name} ({args.scenario}) → {work / name} …", file=sys.stderr, flush=True)
        try:
            runs[name] = rehearse(name, args, work)
        except Exception as err:  # noqa: BLE001 - a failed rehearsal ends the bench with its reason
            print(f"calibration_bench: the rehearsal under {name} failed: {type(err).__name__}: {err}",
                  file=sys.stderr)
            return EXIT_INTERNAL
        r = runs[name]
        cal = ((r.summary.get("what_if") or {}).get("self_calibration") or {}).get("difference")
        print(f"  {r.seconds:.0f}s, gate hit rate {pct(r.gate_hit_rate)} %, self-calibration "
              f"{'–' if cal is None else f'{cal * 100:+.3f} pp'}", file=sys.stderr)

    # the same seed must give the same requests: the schedule and what the edge received
    sequences = {name: request_sequence(run) for name, run in runs.items()}
    first = next(iter(sequences.values()))
    same_schedule = all(s[0] == first[0] for s in sequences.values())
    same_received = all(s[1] == first[1] for s in sequences.values())

    print(f"\ncalibration_bench — scenario {args.scenario}, {len(runs)} rehearsals, "
          f"tolerance ±{args.tolerance:g} pp")
    print(f"request schedule identical across runs: {'yes' if same_schedule else 'NO'} ({len(first[0])} arrivals); "
          f"requests received by the edge (URL, POP, Accept) identical: {'yes' if same_received else 'NO'}")
    print(f"{'source → other':<28} {'predicted':>9} {'observed':>9} {'diff pp':>8} {'edge spike':>10}  causes")
    results = []
    worst = 0.0
    incomplete = False
    for src, dst in pairs:
        predicted, observed = runs[src].predicted(dst), runs[dst].gate_hit_rate
        if predicted is None or observed is None:
            incomplete = True
            diff = None
        else:
            diff = (predicted - observed) * 100
            worst = max(worst, abs(diff))
        why = causes(runs[src], runs[dst])
        print(f"{src + ' → ' + dst:<28} {pct(predicted):>9} {pct(observed):>9} "
              f"{'–' if diff is None else f'{diff:+.3f}':>8} {pct(runs[dst].summary.get('spike_hit_rate')):>10}  "
              f"{'; '.join(why) or 'none measured'}")
        results.append({"source": src, "other": dst, "predicted": predicted, "observed": observed,
                        "difference_pp": diff, "edge_spike_hit_rate": runs[dst].summary.get("spike_hit_rate"),
                        "causes": why})
    met = not incomplete and worst <= args.tolerance
    print(f"\nworst |difference| {worst:.3f} pp: {'MET' if met else 'MISSED'} (target ±{args.tolerance:g} pp)")
    if args.json:
        print(json.dumps({"scenario": args.scenario, "pairs": results, "same_schedule": same_schedule,
                          "same_received": same_received, "worst_pp": worst, "met": met,
                          "runs": {n: {"out": str(r.out), "seconds": round(r.seconds, 1),
                                       "gate_hit_rate": r.gate_hit_rate} for n, r in runs.items()}}, indent=2))
    if incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK if met and same_schedule else EXIT_MISSED


if __name__ == "__main__":
    sys.exit(main())
