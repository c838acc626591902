"""The cost model: dollars per month of a traffic's CloudFront, Origin Shield, S3 and transformer bills.

Pure functions over plain counts (:class:`Traffic`), priced by the one price table
(:mod:`edgeproof.analytics.prices`). What is counted (docs/strategies.md, "Cost"):

- **CloudFront requests** and **data transfer out**, per pricing geography of the edge location that
  served them (:func:`edgeproof.cloudfront.geography_of`, ``edgeproof/data/regions.toml``), each
  geography with the smallest price class that serves it. Data transfer is tiered *per geography* on the
  month's volume ("Usage tiers for data transfer are measured separately for each geographic region",
  CloudFront FAQ); requests are HTTPS, at one price per geography.
- **CloudFront Functions** invocations: every viewer request of a strategy that needs a viewer-request
  function (canonical mode: the one ``export-cf-function`` writes).
- **Origin Shield** requests (tier ``shield``): each request a regional edge cache sends to the shield.
- **S3**: a GET per origin request (the origin group's primary is the derivative bucket; a 404 is a GET
  too) and one per transform (the source read); a PUT per transform (the derivative written);
  **derivative storage**, the bytes of the distinct variants, per GB-month (a stock: not scaled).
- **Transformer compute** on Fargate: transforms × CPU per transform, on tasks of ``vcpu`` and
  ``memory_gb`` at ``utilization`` → vCPU-seconds and GB-seconds, x86 or Graviton prices.

Free: data from an AWS origin (S3, Fargate) to CloudFront, and S3 → Fargate in one region (CloudFront
pricing page). Not counted: the sources' own storage (the same under every strategy), invalidations,
logs, and the account-wide always-free tier (1 TB, 10 M requests, 2 M function invocations a month).

**The month.** Counts cover an observed window; every flow is scaled to ``[model] month_hours``
(730 h) by ``scale = month / window``, stated in every output. Storage is not scaled. Transforms are
scaled like the rest: an upper bound when the month repeats the window's variants.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from edgeproof.analytics.prices import Prices, load_prices

from edgeproof.cloudfront import PRICE_CLASSES, geographies, geography_of
from edgeproof.errors import UsageError

__all__ = [
    "GB",
    "ITEMS",
    "CostReport",
    "Traffic",
    "add_cost_arguments",
    "cost_options",
    "geography_table",
    "items_table",
    "money",
    "monthly_cost",
    "price_line",
    "rehearsal_cost",
    "replay_costs",
    "saving",
    "scale_line",
    "tiered",
    "uses_viewer_function",
]

#: AWS's GB for billing: 2^30 bytes (1 TB = 1,024 GB)
GB = float(1 << 30)
#: the line items of every report, in order, with their labels
ITEMS: tuple[tuple[str, str], ...] = (
    ("cloudfront_requests", "CloudFront requests"),
    ("cloudfront_data_transfer", "CloudFront data transfer out"),
    ("cloudfront_functions", "CloudFront Functions"),
    ("origin_shield", "Origin Shield requests"),
    ("s3_requests", "S3 GET/PUT"),
    ("s3_storage", "S3 derivative storage"),
    ("transformer_compute", "transformer compute (Fargate)"),
)


@dataclass(frozen=True, slots=True)
class Traffic:
    """What one scenario (observed traffic, or a strategy's replay) did over an observed window.

    ``requests_by_pop``/``bytes_by_pop``: viewer requests and response bytes by edge location (``IAD89-C1``
    or ``IAD``); ``origin_requests``: requests that reached the origin; ``shield_requests``: requests
    regional edge caches sent to Origin Shield (0 without it); ``function_invocations``: viewer-request
    function runs; ``transforms``: renders; ``stored_bytes``: bytes of the distinct variants the
    derivative store holds. None = unknown (the item is left out and a note says so).
    ``transform_cpu_ms``: CPU per transform when measured or given (None: the price table's default),
    with where it came from in ``cpu_source``."""

    window_seconds: float
    requests_by_pop: Mapping[str, int]
    bytes_by_pop: Mapping[str, int]
    origin_requests: int
    shield_requests: int = 0
    function_invocations: int = 0
    transforms: int | None = None
    stored_variants: int | None = None
    stored_bytes: int | None = None
    transform_cpu_ms: float | None = None
    cpu_source: str | None = None
    notes: tuple[str, ...] = field(default=())


class CostLine(TypedDict, total=False):
    item: str
    geography: str
    price_class: str
    quantity: float
    unit: str
    unit_price: float
    per: float
    tiers: list[dict[str, float]]
    dollars: float


class CostReport(TypedDict, total=False):
    """One scenario's bill per month (see the module docstring); ``saving_over`` only for strategies."""

    total: float
    items: dict[str, float]
    lines: list[CostLine]
    by_price_class: dict[str, dict[str, float]]
    window_seconds: float
    month_hours: float
    scale: float
    transformer: dict[str, Any]
    pops_without_geography: list[str]
    notes: list[str]
    saving_over: dict[str, float]


def tiered(quantity: float, widths: Sequence[float], prices: Sequence[float]) -> list[tuple[float, float]]:
    """``quantity`` split over volume tiers: ``(amount in the tier, its price)`` for each tier it reaches.

    ``widths``: the tiers' sizes in the quantity's unit, the last price applies above their sum
    (``len(prices) == len(widths) + 1``)."""
    out: list[tuple[float, float]] = []
    left = quantity
    for width, price in zip((*widths, float("inf")), prices, strict=True):
        if left <= 0:
            break
        take = min(left, width)
        out.append((take, price))
        left -= take
    return out


def _by_geography(counts: Mapping[str, int], unknown: str) -> tuple[dict[str, int], set[str]]:
    """Counts by POP → by pricing geography; POP codes without one go to ``unknown`` and are listed."""
    out: dict[str, int] = {}
    stray: set[str] = set()
    for pop, n in counts.items():
        geo = geography_of(pop)
        if geo is None:
            stray.add(pop[:3].upper())
            geo = unknown
        out[geo] = out.get(geo, 0) + int(n)
    return out, stray


def monthly_cost(traffic: Traffic, prices: Prices) -> CostReport:
    """The month's bill of ``traffic`` at ``prices`` (see the module docstring for what is counted)."""
    model, cf = prices["model"], prices["cloudfront"]
    if traffic.window_seconds <= 0:
        raise UsageError("the observed window is empty: no month to scale it to",
                         detail="the counts need a first and a last request at least a second apart")
    scale = model["month_hours"] * 3600.0 / traffic.window_seconds
    geos = geographies()
    requests, stray = _by_geography(traffic.requests_by_pop, model["unknown_geography"])
    volume, stray_b = _by_geography(traffic.bytes_by_pop, model["unknown_geography"])
    lines: list[CostLine] = []
    items = dict.fromkeys((k for k, _ in ITEMS), 0.0)
    classes = {c: {"requests": 0.0, "gb": 0.0, "dollars": 0.0} for c in PRICE_CLASSES}
    for geo in geos.values():
        if geo.key not in requests and geo.key not in volume:
            continue
        n = requests.get(geo.key, 0) * scale
        price = prices["cloudfront.https_requests_per_10k"][geo.key]
        req = CostLine(item="cloudfront_requests", geography=geo.key, price_class=geo.price_class, quantity=n,
                       unit="requests", unit_price=price, per=10_000, dollars=n / 10_000 * price)
        gb = volume.get(geo.key, 0) * scale / GB
        parts = tiered(gb, [w * 1024 for w in cf["data_transfer_tiers_tb"]],
                       prices["cloudfront.data_transfer_per_gb"][geo.key])
        dto = CostLine(item="cloudfront_data_transfer", geography=geo.key, price_class=geo.price_class, quantity=gb,
                       unit="GB", tiers=[{"gb": a, "per_gb": p, "dollars": a * p} for a, p in parts],
                       dollars=sum(a * p for a, p in parts))
        lines += [req, dto]
        items["cloudfront_requests"] += req["dollars"]
        items["cloudfront_data_transfer"] += dto["dollars"]
        row = classes[geo.price_class]
        row["requests"] += n
        row["gb"] += gb
        row["dollars"] += req["dollars"] + dto["dollars"]
    notes = list(traffic.notes)
    if traffic.function_invocations:
        n = traffic.function_invocations * scale
        lines.append(CostLine(item="cloudfront_functions", quantity=n, unit="invocations",
                              unit_price=cf["functions_per_million"], per=1e6,
                              dollars=n / 1e6 * cf["functions_per_million"]))
    if traffic.shield_requests:
        geo = model["origin_shield_geography"]
        price = prices["cloudfront.origin_shield_requests_per_10k"][geo]
        n = traffic.shield_requests * scale
        lines.append(CostLine(item="origin_shield", geography=geo, quantity=n, unit="requests", unit_price=price,
                              per=10_000, dollars=n / 10_000 * price))
    lines += _s3_lines(traffic, prices, scale, notes)
    compute, transformer = _compute(traffic, prices, scale)
    lines += compute
    for line in lines:
        if line["item"] not in ("cloudfront_requests", "cloudfront_data_transfer"):
            items[line["item"]] += line["dollars"]
    if traffic.transforms is None:
        notes.append("transforms unknown: no S3 PUT, source GET or transformer compute counted")
    unknown = sorted(stray | stray_b)
    if unknown:
        notes.append(f"edge locations not in regions.toml, priced as {model['unknown_geography']}: "
                     + ", ".join(unknown))
    return CostReport(total=sum(items.values()), items=items, lines=lines,
                      by_price_class={c: v for c, v in classes.items() if v["requests"] or v["gb"]},
                      window_seconds=traffic.window_seconds, month_hours=model["month_hours"], scale=scale,
                      transformer=transformer, pops_without_geography=unknown, notes=notes)


def _s3_lines(traffic: Traffic, prices: Prices, scale: float, notes: list[str]) -> list[CostLine]:
    s3 = prices["s3"]
    transforms = traffic.transforms or 0
    gets = (traffic.origin_requests + transforms) * scale
    out = [CostLine(item="s3_requests", quantity=gets, unit="GET requests", unit_price=s3["get_per_1000"], per=1000,
                    dollars=gets / 1000 * s3["get_per_1000"])]
    if transforms:
        puts = transforms * scale
        out.append(CostLine(item="s3_requests", quantity=puts, unit="PUT requests", unit_price=s3["put_per_1000"],
                            per=1000, dollars=puts / 1000 * s3["put_per_1000"]))
    if traffic.stored_bytes is None:
        notes.append("derivative bytes unknown: no S3 storage counted")
        return out
    gb = traffic.stored_bytes / GB
    parts = tiered(gb, [w * 1024 for w in s3["storage_tiers_tb"]], s3["storage_per_gb_month"])
    out.append(CostLine(item="s3_storage", quantity=gb, unit="GB-month",
                        tiers=[{"gb": a, "per_gb": p, "dollars": a * p} for a, p in parts],
                        dollars=sum(a * p for a, p in parts)))
    return out


def _compute(traffic: Traffic, prices: Prices, scale: float) -> tuple[list[CostLine], dict[str, Any]]:
    """Fargate vCPU- and GB-seconds for the month's transforms, and the transformer settings used."""
    t, fargate = prices["transformer"], prices["fargate"]
    arch = t["architecture"]
    cpu_ms = traffic.transform_cpu_ms if traffic.transform_cpu_ms is not None else t["cpu_ms"]
    source = traffic.cpu_source if traffic.transform_cpu_ms is not None else "price table [transformer] cpu_ms"
    cpu_s = (traffic.transforms or 0) * scale * cpu_ms / 1000.0
    task_s = cpu_s / (t["vcpu"] * t["utilization"])
    vcpu_s, gb_s = task_s * t["vcpu"], task_s * t["memory_gb"]
    vcpu_price, gb_price = fargate[f"{arch}_vcpu_per_hour"], fargate[f"{arch}_gb_per_hour"]
    settings = {"architecture": arch, "cpu_ms": cpu_ms, "cpu_source": source, "vcpu": t["vcpu"],
                "memory_gb": t["memory_gb"], "utilization": t["utilization"], "vcpu_seconds": vcpu_s,
                "gb_seconds": gb_s}
    if not traffic.transforms:
        return [], settings
    return [CostLine(item="transformer_compute", quantity=vcpu_s, unit="vCPU-seconds", unit_price=vcpu_price,
                     per=3600, dollars=vcpu_s / 3600 * vcpu_price),
            CostLine(item="transformer_compute", quantity=gb_s, unit="GB-seconds", unit_price=gb_price, per=3600,
                     dollars=gb_s / 3600 * gb_price)], settings


def saving(base: CostReport, other: CostReport) -> float:
    """Dollars per month ``other`` saves over ``base`` (negative: it costs more)."""
    return base["total"] - other["total"]


def uses_viewer_function(strategy: Any) -> bool:
    """Whether a strategy is deployed with a viewer-request CloudFront Function (run on every viewer
    request): canonical mode (``export-cf-function``); query-mode strategies are cache-policy settings."""
    return getattr(getattr(strategy, "config", None), "mode", None) == "canonical"


def _window_seconds(result: Mapping[str, Any]) -> float:
    window = result.get("window") or {}
    end, start = window.get("end_ms"), window.get("scored_from_ms", window.get("start_ms"))
    if end is None or start is None:
        return 0.0
    return (end - start) / 1000.0


def replay_costs(result: Mapping[str, Any], prices: Prices, *, functions: Iterable[str] = (),
                 transform_cpu_ms: float | None = None, cpu_source: str | None = None) -> dict[str, Any]:
    """The observed traffic's and every replayed strategy's bill, from a replay result
    (:func:`edgeproof.analytics.replay.compare_strategies`), each strategy with ``saving_over`` every other
    scenario (``observed`` included). ``functions``: the names of the strategies that run a viewer-request
    function (:func:`uses_viewer_function`).

    Viewer requests and bytes are the log's for every scenario (the replay changes what the caches hold,
    not what viewers ask for); origin requests, Origin Shield requests, transforms and stored variants are
    each strategy's. The observed traffic's origin requests are the log's misses, its renders and stored
    variants those of the calibration replay (passthrough: the log does not say what the origin made)."""
    window = _window_seconds(result)
    observed_by_pop = result.get("observed_by_pop") or {}
    requests = {pop: int(c["hits"]) + int(c["misses"]) for pop, c in observed_by_pop.items()}
    nbytes = {pop: int(c.get("bytes", 0)) for pop, c in observed_by_pop.items()}
    shield = (result.get("settings") or {}).get("tier") == "shield"
    observed = result.get("observed") or {}
    cal = result.get("calibration") or {}
    cpu = {"transform_cpu_ms": transform_cpu_ms, "cpu_source": cpu_source}
    scope = ("viewer requests and bytes: the log's GET/HEAD hits and misses in the scored window (excluded "
             "requests, errors among them, are not in the cost)")
    base = Traffic(window, requests, nbytes, origin_requests=int(observed.get("misses", 0)),
                   shield_requests=int(observed.get("misses", 0)) if shield else 0, transforms=cal.get("transforms"),
                   stored_variants=cal.get("unique_variants"), stored_bytes=cal.get("variant_bytes"),
                   notes=(scope, "observed: origin requests are the log's misses; transforms and stored variants "
                          "are the passthrough replay's; no viewer-request function assumed"), **cpu)
    costs: dict[str, CostReport] = {"observed": monthly_cost(base, prices)}
    wants_function = set(functions)
    for name, row in (result.get("strategies") or {}).items():
        fn = name in wants_function
        traffic = Traffic(window, requests, nbytes, origin_requests=int(row["origin_requests"]),
                          shield_requests=int(row["origin_requests"]) + int(row.get("shield_hits", 0)) if shield else 0,
                          function_invocations=int(row["requests"]) + int(row.get("refused", 0)) if fn else 0,
                          transforms=int(row["transforms"]), stored_variants=int(row["unique_variants"]),
                          stored_bytes=row.get("variant_bytes"), notes=(scope,), **cpu)
        costs[name] = monthly_cost(traffic, prices)
    for name, cost in costs.items():
        if name != "observed":
            cost["saving_over"] = {other: saving(c, cost) for other, c in costs.items() if other != name}
    return {"observed": costs.pop("observed"), "strategies": costs, "prices": prices.sources(),
            "price_files": list(prices.files)}


def money(dollars: float | None) -> str:
    """``$1,234.56`` (``$0.0012`` below a cent, ``–`` for None)."""
    if dollars is None:
        return "–"
    sign = "-" if dollars < 0 else ""
    d = abs(dollars)
    return f"{sign}${d:,.2f}" if d >= 0.01 or d == 0 else f"{sign}${d:.4f}"


def scale_line(cost: CostReport) -> str:
    """How the window became a month, and the transformer compute's basis, in one sentence."""
    t = cost["transformer"]
    hours = cost["window_seconds"] / 3600
    return (f"per month: the {hours:,.2f} h window scaled ×{cost['scale']:,.2f} to {cost['month_hours']:g} h "
            f"(derivative storage not scaled); transforms at {t['cpu_ms']:g} ms CPU each ({t['cpu_source']}) on "
            f"{t['architecture']} Fargate tasks of {t['vcpu']:g} vCPU / {t['memory_gb']:g} GB at "
            f"{t['utilization']:.0%} utilization")


def price_line(costs: Mapping[str, Any]) -> str:
    """Where the prices came from: each table's page and date, and the files read."""
    parts = [f"{table} {src['source']} ({src['taken']})" for table, src in costs["prices"].items()]
    return "prices: " + "; ".join(parts) + " — from " + ", ".join(costs["price_files"])


def items_table(costs: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the line items per scenario: observed first, then each strategy, with totals."""
    header = ["", *(label for _, label in ITEMS), "$/month", "saving vs observed"]
    rows = []
    scenarios = [("observed", costs["observed"]), *costs["strategies"].items()]
    for name, cost in scenarios:
        save = (cost.get("saving_over") or {}).get("observed")
        rows.append([name, *(money(cost["items"][k]) for k, _ in ITEMS), money(cost["total"]),
                     "–" if name == "observed" else money(save)])
    return header, rows


def geography_table(cost: CostReport) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of one scenario's CloudFront lines per geography: requests and GB a month, dollars."""
    header = ["geography", "price class", "requests/month", "GB/month", "requests $", "data transfer $"]
    names = geographies()
    by_geo: dict[str, dict[str, Any]] = {}
    for line in cost["lines"]:
        if line["item"] in ("cloudfront_requests", "cloudfront_data_transfer"):
            row = by_geo.setdefault(line["geography"], {"price_class": line["price_class"]})
            row[line["item"]] = line
    rows = []
    for geo, row in by_geo.items():
        req, dto = row["cloudfront_requests"], row["cloudfront_data_transfer"]
        rows.append([names[geo].name if geo in names else geo, row["price_class"], f"{req['quantity']:,.0f}",
                     f"{dto['quantity']:,.2f}", money(req["dollars"]), money(dto["dollars"])])
    return header, rows


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    """The cost model's flags (``strategies compare`` and ``report weekly``)."""
    group = parser.add_argument_group("cost per month (docs/strategies.md, Cost)")
    group.add_argument("--prices", metavar="FILE",
                       help="a TOML file overriding any figure of the built-in price table "
                            "(analytics/data/prices.toml; unknown keys are errors)")
    group.add_argument("--graviton", action="store_true",
                       help="price the transformer tasks on Graviton (ARM) Fargate instead of x86")
    group.add_argument("--transform-cpu-ms", type=float, metavar="MS",
                       help="CPU milliseconds per transform (default: the price table's [transformer] cpu_ms)")


def cost_options(args: argparse.Namespace) -> dict[str, Any]:
    """The price table (built-in, ``--prices``, ``--graviton``) and the transform CPU for :func:`replay_costs`."""
    prices = load_prices(args.prices)
    if args.graviton:
        prices = prices.with_values("transformer", architecture="graviton")
    cpu = args.transform_cpu_ms
    if cpu is not None and not cpu > 0:
        raise UsageError(f"--transform-cpu-ms must be > 0, got {cpu:g}")
    return {"prices": prices, "transform_cpu_ms": cpu, "cpu_source": "--transform-cpu-ms" if cpu is not None else None}


def _spike_seconds(summary: Mapping[str, Any]) -> float:
    """The span of the scored (spike) phases, the window of the summary's per-POP counts."""
    names = set(summary.get("spike_phases") or [])
    spans = [(p["start"], p["end"]) for p in summary.get("phases") or [] if p["name"] in names]
    return max(b for _, b in spans) - min(a for a, _ in spans) if spans else float(summary.get("duration") or 0)


def rehearsal_cost(summary: Mapping[str, Any], prices: Prices | None = None) -> CostReport | None:
    """The month's bill of a rehearsal's traffic, from its ``summary.json`` (None without edge-log counts).

    The scored (spike) window's requests, bytes and misses per edge location (``by_pop``, from the edge
    logs), the origin's transforms (its counters, the whole run) at the CPU per transform the origin measured
    (``origin_work.transform_seconds`` / ``timed_transforms``, its ``transform_duration_seconds`` histogram;
    the price table's default when the run has none), derivative storage for the distinct variants made at
    the mean response size, and a viewer-request function when the run's strategy is canonical-mode."""
    from edgeproof.analytics.strategies import get_strategy

    from edgeproof.errors import EdgeproofError

    pops = [p for p in summary.get("by_pop") or [] if p.get("requests")]
    window = _spike_seconds(summary)
    if not pops or window <= 0:
        return None
    prices = prices or load_prices()
    notes = ["the scored (spike) window's requests at the edge, scaled to a month (the spike's rate held a whole "
             "month: an upper bound); transforms are the origin's over the whole run"]
    requests = {p["pop"]: int(p["requests"]) for p in pops}
    total = sum(requests.values())
    run_bytes = int(((summary.get("what_if") or {}).get("observed") or {}).get("bytes") or 0)
    if all(p.get("bytes") is not None for p in pops):
        nbytes = {p["pop"]: int(p["bytes"]) for p in pops}
    elif run_bytes:  # a summary without per-POP bytes: the replayed bytes split by each POP's share of requests
        nbytes = {pop: round(run_bytes * n / total) for pop, n in requests.items()}
        notes.append("bytes per POP estimated from the replayed bytes by each POP's share of requests")
    else:
        nbytes = {}
        notes.append("response bytes unknown (no per-POP bytes, no what-if): no data transfer or storage counted")
    work = summary.get("origin_work") or {}
    transforms = summary.get("transforms")
    cpu_ms, source = None, None
    if work.get("transform_seconds") and work.get("timed_transforms"):
        cpu_ms = 1000.0 * work["transform_seconds"] / work["timed_transforms"]
        source = f"measured: the origin's transform_duration_seconds over {work['timed_transforms']:,} transforms"
    variants = work.get("distinct_variants")
    stored = round(variants * sum(nbytes.values()) / total) if variants and nbytes else None
    if stored is not None:
        notes.append("derivative storage: the distinct variants made × the mean response size")
    try:
        function = uses_viewer_function(get_strategy(str(summary.get("strategy"))))
    except EdgeproofError:  # a strategy file that is no longer there: no function counted, and said
        function = False
        notes.append(f"strategy {summary.get('strategy')!r} not found: no viewer-request function counted")
    traffic = Traffic(window, requests, nbytes, origin_requests=sum(int(p.get("misses") or 0) for p in pops),
                      function_invocations=total if function else 0, transforms=transforms,
                      stored_variants=variants, stored_bytes=stored, transform_cpu_ms=cpu_ms, cpu_source=source,
                      notes=tuple(notes))
    return monthly_cost(traffic, prices)
