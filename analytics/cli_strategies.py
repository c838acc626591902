"""``edgeproof strategies …``: list, show, apply, compare (replay) and export-cf-function."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgeproof.analytics.cost import add_cost_arguments
from edgeproof.analytics.strategies import get_strategy, list_strategies

from edgeproof.cloudfront import DEFAULT_TIER, TIERS
from edgeproof.errors import EXIT_MISSED, EXIT_OK, EXIT_USAGE, BadRequest, UsageError

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="strategies_command", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="list the registered strategies")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="print a strategy's declaration (TOML)")
    p.add_argument("name", help="a strategy name or a .toml file")
    p.set_defaults(func=_show)

    p = sub.add_parser("apply", help="print the cache key (canonical request) of each URL, one per line",
                       description="Apply a strategy to URLs by hand. Prints one cache key per URL, one per line; "
                       "a refused URL prints '400 MESSAGE' and the exit code is 2 (bad input).")
    p.add_argument("name", help="a strategy name or a .toml file")
    p.add_argument("urls", nargs="+", metavar="URL", help="https://host/path?query or /path?query")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'",
                   help="a request header, e.g. -H 'Accept: image/avif,image/webp' (repeatable)")
    p.add_argument("--method", default="GET")
    p.add_argument("--json", action="store_true", help="print cache_key, origin_uri and variant as JSON lines")
    p.set_defaults(func=_apply)

    p = sub.add_parser("compare", help="replay logs under strategies: predicted hit rate and miss anatomy",
                       description="Replay CloudFront logs through a model of CloudFront's caches (POPs, regional "
                       "edge caches, optionally Origin Shield; TTL with revalidation; LRU capacity) under each "
                       "strategy. Exit 0 when a strategy meets --target, 1 when none does.")
    p.add_argument("--logs", nargs="+", required=True, metavar="PATH",
                   help="log files, folders, globs or s3://bucket/prefix")
    p.add_argument("--strategy", action="append", default=None, metavar="NAME|FILE",
                   help="a strategy name or .toml file (repeatable; default: every registered strategy)")
    p.add_argument("--ttl", default="30d", help="cache TTL, e.g. 30d, 24h; 0 = no expiry (default 30d)")
    p.add_argument("--capacity", default=None, metavar="BYTES",
                   help="byte capacity per cache, LRU, e.g. 50GB (default: unbounded)")
    p.add_argument("--warmup", default="0", help="leading period that fills caches but is not scored, e.g. 6h")
    p.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER,
                   help="regional (default; every distribution has regional edge caches): POP + regional edge "
                   "cache; shield: + Origin Shield; pop: POP caches only")
    p.add_argument("--no-revalidate", dest="revalidate", action="store_false",
                   help="count an expired copy as a miss instead of a revalidation (CloudFront revalidates: "
                   "a 304 is logged RefreshHit, a hit)")
    p.add_argument("--no-accept-range", dest="accept_range", action="store_false",
                   help="skip the second replay that gives the range over Accept inferences (requests whose "
                   "log line has no Accept header)")
    p.add_argument("--model", choices=("fast", "reference"), default="fast",
                   help="the cache model: fast (compiled) or reference (plain Python, the oracle; slow)")
    p.add_argument("--target", type=float, default=0.96, help="hit-rate target (default 0.96)")
    add_cost_arguments(p)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=_compare)

    p = sub.add_parser("export-cf-function", help="write a cloudfront-js-2.0 viewer-request function")
    p.add_argument("name", help="a canonical-mode strategy name or .toml file")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.set_defaults(func=_export)

    from edgeproof.analytics.cli_deploy import add_commands  # deploy, export-cloudformation

    add_commands(sub)


def _list(args: argparse.Namespace) -> int:
    for name in list_strategies():
        config = get_strategy(name).config
        print(f"{name:<12} {config.mode:<9} {config.description}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from edgeproof.tomlfile import dump_toml

    print(dump_toml(get_strategy(args.name).config.to_dict()), end="")
    return 0


def _headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"bad header {item!r}", detail="use -H 'Name: value'")
        headers[name.strip().lower()] = value.strip()
    return headers


def _apply(args: argparse.Namespace) -> int:
    strategy = get_strategy(args.name)
    headers = _headers(args.header)
    status = 0
    for url in args.urls:
        parts = urlsplit(url)
        path = parts.path or "/"
        try:
            res = strategy.apply(args.method.upper(), path, parts.query, headers)
        except BadRequest as err:
            status = EXIT_USAGE
            if args.json:
                print(json.dumps({"url": url, "status": 400, "error": err.message, "detail": err.detail}))
            else:
                print(f"400 {err.message}")
            continue
        if args.json:
            print(json.dumps({"url": url, "cache_key": res.cache_key, "origin_uri": res.origin_uri,
                              "variant": res.variant}))
        else:
            print(res.cache_key)
    return status


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _compare(args: argparse.Namespace) -> int:
    from edgeproof.analytics.cost import cost_options, replay_costs, uses_viewer_function
    from edgeproof.analytics.replay import compare_strategies

    names = args.strategy or list_strategies()
    options = cost_options(args)  # a bad price file stops the command before the replay
    strategies = [get_strategy(n) for n in names]
    result = compare_strategies(args.logs, strategies, ttl=args.ttl, capacity=args.capacity, warmup=args.warmup,
                                tier=args.tier, target=args.target, revalidate=args.revalidate,
                                accept_range=args.accept_range, model=args.model)
    if result["scored"] == 0:
        raise UsageError("no request to replay", detail="the logs hold no GET/HEAD hit or miss after the warm-up")
    costs = replay_costs(result, functions=[s.name for s in strategies if uses_viewer_function(s)], **options)
    if args.json:
        out: dict[str, Any] = {**result, "strategies": {name: {**row, "cost": costs["strategies"][name]}
                                                        for name, row in result["strategies"].items()},
                               "cost": {"observed": costs["observed"], "prices": costs["prices"],
                                        "price_files": costs["price_files"]}}
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        print(format_compare(result, costs))
    met = any(r["meets_target"] for r in result["strategies"].values())
    return EXIT_OK if met else EXIT_MISSED


def format_compare(result: dict[str, Any], costs: dict[str, Any] | None = None) -> str:
    """The human-readable compare report (what ``strategies compare`` prints without ``--json``), with
    the $/month and saving-vs-observed columns when ``costs`` (:func:`edgeproof.analytics.cost.replay_costs`)
    is given, and the cost's line items below the table."""
    s = result["settings"]
    lines = [
        f"replayed {result['replayed']:,} GET/HEAD hit/miss requests of {result['requests']:,} log rows; "
        f"scored {result['scored']:,} (warm-up {_duration(s['warmup_seconds'])}, TTL {_duration(s['ttl_seconds'])}, "
        f"capacity {s['capacity_bytes'] or 'unbounded'}, tier {s['tier']}, "
        f"{'revalidation' if s.get('revalidate', True) else 'no revalidation'})",
        "excluded from the replay: " + ", ".join(f"{k} {v:,}" for k, v in result["excluded"].items() if v)
        if any(result["excluded"].values()) else "excluded from the replay: none",
        f"NOTE: {result['accept_inference']['note']}",
    ]
    cal = result["calibration"]
    diff = cal["difference"]
    lines.append(
        f"calibration: observed hit rate {_pct(cal['observed_hit_rate'])} (the log's own Hit/Miss) vs "
        f"predicted {_pct(cal['predicted_hit_rate'])} (passthrough replay)"
        + ("" if diff is None else f", difference {100 * diff:+.2f} pp")
    )
    inf = result["accept_inference"]
    guessed = result["replayed"] - inf.get("from_log", 0)
    if guessed > 0:
        lines.append(
            f"calibration: the Accept of {guessed:,} of {result['replayed']:,} requests is inferred (no cs-accept "
            "logged). Under a deployed key without Accept (passthrough, allowlist) the origin serves one format "
            "to every viewer, so the content-type end of the range over-predicts normalizing strategies "
            "(rehearsal: +1.7 pp); with real-time logs' cs-accept the prediction matched rehearsals exactly "
            "(benchmarks/calibration_bench.py)")
    if result.get("bad_lines"):
        lines.append(f"bad log lines skipped: {result['bad_lines']:,} (e.g. {result['bad_line_examples'][:1]})")
    from edgeproof.analytics.cost import items_table, money, price_line, scale_line

    header = ("strategy", "hit_rate", "range", "target", "refresh", "origin_req", "transforms", "keys", "keys/var",
              "cold", "expired", "evicted", "fragmented", "refused")
    if costs is not None:
        header += ("$/month", "saving_vs_observed")
    rows = [header]
    for name, r in result["strategies"].items():
        kpv = r["keys_per_variant"]
        rng = r.get("hit_rate_range")
        row: tuple[str, ...] = (
            name, _pct(r["hit_rate"]), "-" if not rng else f"{_pct(rng[0])}..{_pct(rng[1])}",
            "meets" if r["meets_target"] else "below", f"{r.get('refresh_hits', 0):,}",
            f"{r['origin_requests']:,}", f"{r['transforms']:,}", f"{r['unique_keys']:,}",
            "-" if kpv is None else f"{kpv:.2f}", f"{r['cold']:,}", f"{r['expired']:,}",
            f"{r['evicted']:,}", f"{r['fragmented']:,}", f"{r['refused']:,}")
        if costs is not None:
            cost = costs["strategies"][name]
            row += (money(cost["total"]), money(cost["saving_over"]["observed"]))
        rows.append(row)
    lines.append("")
    lines += _aligned(rows)
    lines.append(f"target: hit rate >= {100 * s['target']:.1f}%")
    if costs is not None:
        observed = costs["observed"]
        lines.append(f"cost: observed traffic {money(observed['total'])}/month; saving_vs_observed > 0 is cheaper")
        lines.append(scale_line(observed))
        header_i, rows_i = items_table(costs)
        lines.append("")
        lines += _aligned([tuple(header_i), *(tuple(r) for r in rows_i)])
        lines.append(price_line(costs))
        for note in observed["notes"]:
            lines.append(f"cost note: {note}")
    if any(r.get("hit_rate_range") for r in result["strategies"].values()):
        lines.append("range: the hit rate with the Accept of unlogged requests inferred from the user agent first "
                     "and from the served content type first")
    if result.get("pops_without_region"):
        lines.append("POP codes not in the region table (each its own regional cache): "
                     + ", ".join(result["pops_without_region"]))
    return "\n".join(lines)


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                      enumerate(zip(row, widths, strict=True))) for row in rows]


def _export(args: argparse.Namespace) -> int:
    from edgeproof.analytics.strategies import export_cf_function

    code = export_cf_function(get_strategy(args.name))
    if args.output == "-":
        sys.stdout.write(code)
    else:
        Path(args.output).write_text(code)
        print(f"wrote {args.output} ({len(code.encode()):,} bytes, cloudfront-js-2.0 viewer-request)",
              file=sys.stderr)
    return 0
