"""``edgeproof prewarm plan|run``: warm every POP's cache for a launch, one request per cache key.

The work is :mod:`edgeproof.rehearsal.prewarm`; this module only parses and prints. See
docs/rehearsal.md, "Pre-warming the edge".
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

_EPILOG = """\
examples:
  edgeproof prewarm plan --launch 1981-2000 --strategy aggressive --logs s3://my-cf-logs/E2ABC/ -o plan.jsonl
  edgeproof prewarm plan --launch launch.txt --strategy canonical --widths 320,640,1280 -o plan.jsonl
  edgeproof prewarm run plan.jsonl --target http://127.0.0.1:8080 --pops 8     # the edge emulator's POPs
  edgeproof prewarm run plan.jsonl --target https://dxxxx.cloudfront.net --rate 20
"""


def _widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad widths {text!r}: use e.g. 320,640,1280") from None


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Pre-warm the edge before a launch: plan one request per cache key (launch images x "
                          "the pages' variants x the Accept values and DPRs of the logs), predict the gain by "
                          "replay, and send the plan to every POP. See docs/rehearsal.md.")
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="prewarm_command", metavar="{plan,run}", required=True)

    p = sub.add_parser("plan", help="the warm list (JSON lines) and its predicted hit-rate gain",
                       description="Write the warm list: one canonical request per cache key of the strategy, for "
                                   "each launch image x variant x Accept x DPR, most popular first; with --logs, "
                                   "replay the logs' first hour with and without the list at every POP and print "
                                   "the predicted hit-rate difference.")
    p.add_argument("--launch", required=True, metavar="SKUS|FILE",
                   help="SKU numbers and ranges (1981-2000,42), 'promoted' (the scenario's new SKUs), or a file of "
                        "such lines and/or source paths (/images/sku-01981-1.jpg)")
    p.add_argument("--strategy", required=True, help="the cache-key strategy of the distribution (edgeproof strategies list)")
    p.add_argument("--logs", nargs="+", default=[], metavar="PATH",
                   help="CloudFront logs (files, folders, s3://): Accept values, DPRs, POPs and the replay")
    p.add_argument("--scenario", default="spike", metavar="NAME|FILE",
                   help="load-test scenario whose catalog (SKU paths) and roles (srcset widths) are used (default spike)")
    p.add_argument("--widths", type=_widths, default=[], metavar="W,W…",
                   help="srcset widths instead of the scenario's roles (one role, q=--quality)")
    p.add_argument("--quality", type=int, default=80, help="q= with --widths (default 80)")
    p.add_argument("--min-share", type=float, default=0.0, metavar="S",
                   help="leave out keys expected to serve less than this share of the launch's traffic")
    p.add_argument("--window", default="1h", help="the replayed window from the logs' first request (default 1h)")
    p.add_argument("--ttl", default="30d", help="cache TTL for the replay (default 30d)")
    p.add_argument("--tier", default=None, help="replay tier: pop, regional (default) or shield")
    p.add_argument("--json", action="store_true", help="print the prediction as one JSON object")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the plan (JSON lines)")
    p.set_defaults(func=_plan)

    r = sub.add_parser("run", help="send the plan to every POP; exit 0 when every request got 2xx/304",
                       description="Send the plan with its headers: to the edge emulator once per POP id (X-Edge-Pop), "
                                   "or to a real distribution under a rate limit. Reports hits and misses seen "
                                   "(X-Cache). Exit 0 when every request got a 2xx or 304, 1 otherwise.")
    r.add_argument("plan", metavar="PLAN", help="a plan written by 'edgeproof prewarm plan'")
    r.add_argument("--target", required=True, metavar="URL", help="the edge (http://127.0.0.1:PORT) or distribution")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--pops", type=int, metavar="N",
                       help="the edge emulator's --pops N: send each request once per POP id in X-Edge-Pop")
    where.add_argument("--pop-header", metavar="ID[,ID…]",
                       help="send each request once per given POP id (or index) in X-Edge-Pop")
    r.add_argument("--rate", type=float, default=0.0, metavar="R",
                   help="at most R requests/s (0: as fast as --concurrency allows; use it for a real distribution)")
    r.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    r.add_argument("--max-requests", type=int, default=100_000, metavar="N", help="send at most N requests (default 100000)")
    r.add_argument("--max-time", type=float, default=600.0, metavar="S", help="start no request after S seconds (default 600)")
    r.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per-request timeout (default 30)")
    r.add_argument("--json", action="store_true", help="print the result as one JSON object")
    r.set_defaults(func=_run)


def _plan(args: argparse.Namespace) -> int:
    import json

    from edgeproof.analytics.strategies import get_strategy
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.rehearsal import prewarm

    from edgeproof.cloudfront import DEFAULT_TIER
    from edgeproof.errors import EXIT_OK

    strategy = get_strategy(args.strategy)
    scenario = load_scenario(args.scenario)
    sources = prewarm.launch_sources(args.launch, scenario)
    variants = prewarm.page_variants(None if args.widths else scenario, args.widths, args.quality)
    traffic = prewarm.observe_traffic(args.logs) if args.logs else None
    plan = prewarm.build_plan(sources, variants, traffic, strategy, min_share=args.min_share)
    prewarm.write_plan(args.out, plan)
    prediction = None
    if traffic is not None and traffic.rows:
        prediction = prewarm.predict_gain(args.logs, plan, strategy, traffic, window=args.window, ttl=args.ttl,
                                          tier=args.tier or DEFAULT_TIER)
    if args.json:
        print(json.dumps({
            "plan": args.out, "requests": len(plan), "images": len(sources), "strategy": strategy.name,
            "accept": traffic.accept_shares if traffic else None, "dpr": traffic.dpr_shares if traffic else None,
            "pops": traffic.pops if traffic else [],
            "prediction": None if prediction is None else {
                "window_seconds": prediction.window_seconds, "scored": prediction.scored,
                "warm_rows": prediction.warm_rows, "hit_rate_without": prediction.without,
                "hit_rate_with": prediction.with_warm, "difference": prediction.difference},
        }, indent=2))
        return EXIT_OK
    print(f"{args.out}: {len(plan)} requests (one per cache key of {strategy.name}) for {len(sources)} images")
    if traffic is None:
        print("no --logs: every Accept class counted equally, DPR 1; no prediction")
    elif prediction is None:
        print("the logs hold no GET/HEAD hit or miss: no prediction")
    else:
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{x:.2%}"

        diff = prediction.difference
        print(f"predicted hit rate over the first {prediction.window_seconds:g} s of the logs "
              f"({prediction.scored} requests, {prediction.pops} POPs, {prediction.warm_rows} warm requests): "
              f"{pct(prediction.without)} without, {pct(prediction.with_warm)} with the warm list "
              f"({'-' if diff is None else f'{diff * 100:+.2f} points'})")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import json

    from edgeproof.rehearsal import prewarm

    from edgeproof.errors import EXIT_MISSED, EXIT_OK

    plan = prewarm.read_plan(args.plan)
    pops: list[str | None]
    if args.pops is not None:
        pops = list(prewarm.emulator_pops(args.pops))
    elif args.pop_header:
        pops = [p.strip() for p in args.pop_header.split(",") if p.strip()]
    else:
        pops = [None]
    result = prewarm.run_plan(plan, args.target, pops=pops, rate=args.rate, concurrency=args.concurrency,
                              max_requests=args.max_requests, max_seconds=args.max_time, timeout=args.timeout)
    if args.json:
        print(json.dumps({"planned": result.planned, "sent": result.sent, "ok": result.ok, "hits": result.hits,
                          "misses": result.misses, "x_cache": dict(result.x_cache), "failures": result.failures,
                          "stopped": result.stopped or None}, indent=2))
    else:
        seen = ", ".join(f"{n} {v}" for v, n in result.x_cache.most_common()) or "-"
        print(f"sent {result.sent} of {result.planned} ({len(plan)} keys x {len(pops)} POPs): {result.ok} 2xx/304, "
              f"{result.hits} hits, {result.misses} misses (X-Cache: {seen})")
        for line in result.failures[:20]:
            print(f"  failed: {line}", file=sys.stderr)
        if len(result.failures) > 20:
            print(f"  … and {len(result.failures) - 20} more", file=sys.stderr)
        if result.stopped:
            print(f"  stopped: {result.stopped}", file=sys.stderr)
    return EXIT_OK if result.all_ok else EXIT_MISSED
