"""Edge pre-warming: the warm list for a launch, its predicted gain by replay, and sending it.

Why: ``edgeproof origin prescale`` fills the derivative store, but CloudFront caches per edge location,
so the first request for a new SKU at every POP is still a miss that travels to the origin ("How
CloudFront delivers content", HowCloudFrontWorks.html; the regional edge caches only soften it,
HowCloudFrontWorks.html#CloudFrontRegionaledgecaches). And when the cache key carries the negotiated
format, warming with one ``Accept`` warms one format only ("Cache content based on request headers",
header-caching.html): a Chrome viewer asking for AVIF still misses after a warm-up done with curl.

So the plan is one request per *cache key* (not per URL: the strategy — the viewer-request function —
decides what a POP caches by, and two spellings that it folds into one key need one warm request), for
each launch image × the variants its pages use (the load-test scenario's catalog roles and their srcset
widths, or ``--widths``) × the Accept values and DPRs the logs show, ordered by the share of traffic
each key is expected to serve. The gain is predicted by the one replay
(:func:`edgeproof.analytics.replay.compare_strategies`): the logs' first hour with and without the warm
requests prepended as synthetic log rows at every POP the logs saw.

Sending (:func:`run_plan`) goes either to the edge emulator, once per POP id through its ``X-Edge-Pop``
header (:mod:`edgeproof.edge.pops`), or to a real distribution (the network picks the POP) under a rate
limit bounded in count and time.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics.metrics import classify_arrays
from edgeproof.analytics.replay import (
    ACCEPT_BY_CLASS,
    COLUMNS,
    accept_class_for_user_agent,
    compare_strategies,
    parse_duration,
)
from edgeproof.analytics.schema import LOG_SCHEMA
from edgeproof.analytics.strategies import Strategy, get_strategy
from edgeproof.loadtest.scenario import Role, Scenario
from edgeproof.loadtest.workload import load_keys

from edgeproof.cloudfront import DEFAULT_TIER
from edgeproof.errors import BadRequest, UsageError

__all__ = [
    "PageVariant",
    "Prediction",
    "RunResult",
    "Traffic",
    "WarmRequest",
    "build_plan",
    "emulator_pops",
    "launch_sources",
    "observe_traffic",
    "page_variants",
    "predict_gain",
    "read_plan",
    "run_plan",
    "scenario_traffic",
    "write_plan",
]

#: the spelling of a page's image URL: the load-test workload's noise-free form (``Request.clean_url``)
QUERY_TEMPLATE = "width={width}&format=auto&q={quality}"
#: the User-Agent of warm requests (a plan line's own header wins): they can be told apart in the logs
USER_AGENT = "edgeproof-prewarm"
#: how the X-Cache values a POP answers with are counted (edge/edge.py, "X-Cache by result type")
_HIT_PREFIXES = ("Hit", "RefreshHit")
_DPR_RE = r"(?:^|&)(?i:dpr)=(?P<dpr>[^&]*)"


@dataclass(frozen=True, slots=True)
class WarmRequest:
    """One line of the plan: the request to send, the cache key it fills, the traffic share it serves."""

    url: str  # path?query, as the front end spells it
    headers: dict[str, str]
    cache_key: str
    expected_share: float

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "headers": self.headers, "cache_key": self.cache_key,
                           "expected_share": round(self.expected_share, 9)}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PageVariant:
    """One srcset width of one role; ``share`` is the role's share spread evenly over its widths."""

    role: str
    width: int
    quality: int
    share: float


@dataclass(slots=True)
class Traffic:
    """What the logs say about the viewers: Accept values and DPRs with their shares, POPs, the start."""

    accept_shares: dict[str, float]
    dpr_shares: dict[str, float]
    pops: list[str]
    start_ms: int | None
    rows: int
    accept_from_log: int = 0
    accept_from_user_agent: int = 0
    accept_unknown: int = 0
    median_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Prediction:
    """The replay's hit rate over the window without and with the warm list (``difference`` = with − without)."""

    strategy: str
    window_seconds: float
    start_ms: int
    pops: int
    warm_rows: int
    scored: int
    without: float | None
    with_warm: float | None

    @property
    def difference(self) -> float | None:
        return None if self.without is None or self.with_warm is None else self.with_warm - self.without


@dataclass(slots=True)
class RunResult:
    """What sending the plan saw: counts by X-Cache value and by status class, failures, what was left."""

    planned: int
    sent: int = 0
    ok: int = 0
    hits: int = 0
    misses: int = 0
    x_cache: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stopped: str = ""

    @property
    def all_ok(self) -> bool:
        return self.sent == self.planned and self.ok == self.planned


# ---------------------------------------------------------------------------------------------- inputs

def launch_sources(spec: str, scenario: Scenario) -> list[str]:
    """The launch's source paths, in launch order: ``SPEC`` is SKU numbers and ranges (``1981-2000,7``),
    ``promoted`` (the scenario's new SKUs), or a file of such lines and/or source paths (``/images/…``).

    SKU numbers map to paths through the scenario's catalog (its keys file groups, or ``path_template`` ×
    ``images_per_sku``), so a plan names the same images the load test and the sample catalog do."""
    items: list[str]
    path = Path(spec)
    if spec != "promoted" and path.is_file():
        try:
            items = [ln.strip() for ln in path.read_text().splitlines()]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read launch file {spec}: {err}") from err
        items = [i for i in items if i and not i.startswith("#")]
    else:
        items = [p.strip() for p in spec.split(",") if p.strip()]
    cat = scenario.catalog
    groups = load_keys(cat.keys_file) if cat.keys_file else None
    skus = len(groups) if groups is not None else cat.skus
    out: list[str] = []
    for item in items:
        if item.startswith("/") or "/" in item:
            out.append("/" + item.lstrip("/"))
            continue
        for sku in _sku_numbers(item, skus, scenario.promotion.new_skus):
            if groups is not None:
                out.extend("/" + k.lstrip("/") for k in groups[sku - 1])
            else:
                out.extend(cat.path_template.format(sku=sku, image=i) for i in range(1, cat.images_per_sku + 1))
    if not out:
        raise UsageError(f"the launch {spec!r} names no image", detail="give SKU numbers (1-20,42), 'promoted' or a file")
    return list(dict.fromkeys(out))


def _sku_numbers(item: str, skus: int, new_skus: int) -> range:
    if item == "promoted":
        promoted = min(new_skus, max(skus - 1, 0))  # as the workload's Catalog counts them
        return range(skus - promoted + 1, skus + 1)
    lo, sep, hi = item.partition("-")
    try:
        first, last = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise UsageError(f"bad launch item {item!r}", detail="use SKU numbers, ranges (1981-2000) or source paths") from None
    if not 1 <= first <= last <= skus:
        raise UsageError(f"launch SKUs {item} outside the catalog", detail=f"the scenario's catalog has SKUs 1..{skus}")
    return range(first, last + 1)


def page_variants(scenario: Scenario | None = None, widths: Sequence[int] = (), quality: int = 80) -> list[PageVariant]:
    """The variants the pages use: each role's srcset widths (share = role share / widths), or ``widths``
    as one role ``page``."""
    roles: Sequence[Role]
    if widths:
        if any(w < 1 or w > 10_000 for w in widths):
            raise UsageError("--widths must be 1..10000 px")
        roles = (Role("page", 1.0, tuple(widths), 1.0, quality),)
    elif scenario is not None:
        roles = scenario.catalog.roles
    else:
        raise UsageError("no variants", detail="give --scenario or --widths")
    total = sum(r.share for r in roles) or 1.0
    return [PageVariant(r.name, w, r.quality, r.share / total / len(r.widths)) for r in roles for w in r.widths]


def observe_traffic(log_paths: Sequence[str], *, strict: bool = False) -> Traffic:
    """Accept values, DPRs, POPs and the first timestamp of the requests the replay scores (GET/HEAD hits
    and misses, :func:`edgeproof.analytics.metrics.classify_arrays`).

    The Accept is the logged ``cs-accept`` (real-time logs) where present, else the user agent's class
    (:func:`edgeproof.analytics.replay.accept_class_for_user_agent` → ``ACCEPT_BY_CLASS``), as the replay
    takes it; a user agent naming no known browser is counted as unknown and left out of the shares."""
    from edgeproof.analytics.reader import read_logs

    accepts: Counter[str] = Counter()
    dprs: Counter[str] = Counter()
    pops: Counter[str] = Counter()
    sizes: list[np.ndarray] = []
    start: int | None = None
    rows = from_log = from_ua = unknown = 0
    stream = read_logs(list(log_paths), columns=list(COLUMNS), strict=strict)
    for batch in stream:
        sub = _replayable(batch)
        if sub is None:
            continue
        rows += sub.num_rows
        t = int(pc.min(sub.column("timestamp").cast(pa.int64())).as_py())
        start = t if start is None else min(start, t)
        logged = _strings(sub, "cs_accept")
        has = pc.and_(pc.not_equal(logged, ""), pc.not_equal(logged, "-"))
        for value, n in _counts(logged.filter(has)):
            accepts[value] += n
            from_log += n
        for ua, n in _counts(_strings(sub, "cs_user_agent").filter(pc.invert(has))):
            k = accept_class_for_user_agent(ua)
            if k < 0:
                unknown += n
            else:
                accepts[ACCEPT_BY_CLASS[k]] += n
                from_ua += n
        dpr = pc.fill_null(pc.extract_regex(_strings(sub, "cs_uri_query"), _DPR_RE).field("dpr"), "1")
        for value, n in _counts(pc.if_else(pc.equal(dpr, ""), "1", dpr)):
            dprs[_dpr_text(value)] += n
        loc = _strings(sub, "x_edge_location")
        loc = pc.if_else(pc.equal(loc, ""), _strings(sub, "pop"), loc)
        for value, n in _counts(loc):
            if value:
                pops[value] += n
        if "sc_bytes" in sub.schema.names:
            sizes.append(pc.fill_null(sub.column("sc_bytes"), 0).to_numpy(zero_copy_only=False))
    median = int(np.median(np.concatenate(sizes))) if sizes and sum(s.size for s in sizes) else 0
    return Traffic(_shares(accepts), _shares(dprs), sorted(pops), start, rows, from_log, from_ua, unknown, median)


def _replayable(batch: pa.RecordBatch | pa.Table) -> pa.Table | None:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    names = table.schema.names
    cls = classify_arrays(table.column("x_edge_result_type") if "x_edge_result_type" in names else None,
                          table.column("cs_method") if "cs_method" in names else None)
    keep = (np.asarray(cls) < 2) & ~np.asarray(table.column("timestamp").is_null().to_numpy(zero_copy_only=False),
                                               dtype=bool)
    return table.filter(pa.array(keep)) if keep.any() else None


def _strings(table: pa.Table, name: str) -> pa.Array:
    if name not in table.schema.names:
        return pa.array([""] * table.num_rows, pa.string())
    return pc.fill_null(table.column(name).combine_chunks().cast(pa.string()), "")


def _counts(values: pa.Array) -> Iterable[tuple[str, int]]:
    vc = pc.value_counts(values)
    return zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)


def _dpr_text(value: str) -> str:
    """One spelling per DPR (``2.0`` and ``2`` are one), kept as the front end writes it otherwise."""
    try:
        number = float(value)
    except ValueError:
        return "1"
    if not math.isfinite(number) or number <= 0:
        return "1"
    return f"{number:g}"


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: n / total for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))} if total else {}


# ---------------------------------------------------------------------------------------------- the plan

def build_plan(sources: Sequence[str], variants: Sequence[PageVariant], traffic: Traffic | None,
               strategy: Strategy | str, *, min_share: float = 0.0) -> list[WarmRequest]:
    """One request per cache key, most popular first.

    A candidate is image × variant × Accept × DPR; its share is (1 / images) × variant share × Accept share
    × DPR share. Candidates the strategy gives one cache key are one line, the first (most popular)
    spelling kept, their shares summed. A request the strategy refuses is left out. Without logs every
    Accept class of :data:`~edgeproof.analytics.replay.ACCEPT_BY_CLASS` counts equally, DPR 1 only."""
    strat = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
    accepts = traffic.accept_shares if traffic and traffic.accept_shares else \
        {a: 1 / len(ACCEPT_BY_CLASS) for a in ACCEPT_BY_CLASS}
    dprs = traffic.dpr_shares if traffic and traffic.dpr_shares else {"1": 1.0}
    per_image = 1.0 / len(sources) if sources else 0.0
    keyed: dict[str, list[Any]] = {}
    order = 0
    for src in sources:
        for v in variants:
            for dpr, dpr_share in dprs.items():
                query = QUERY_TEMPLATE.format(width=_css_width(v.width, dpr), quality=v.quality)
                if dpr != "1":
                    query += f"&dpr={dpr}"
                for accept, acc_share in accepts.items():
                    share = per_image * v.share * dpr_share * acc_share
                    try:
                        key = strat.apply("GET", src, query, {"Accept": accept}).cache_key
                    except BadRequest:
                        continue
                    found = keyed.get(key)
                    if found is None:
                        keyed[key] = [share, order, share, f"{src}?{query}", accept]
                        order += 1
                    else:
                        found[0] += share
                        if share > found[2]:  # the most popular spelling stands for the key
                            found[2:] = [share, f"{src}?{query}", accept]
    lines = sorted(keyed.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [WarmRequest(url, {"Accept": accept}, key, share)
            for key, (share, _o, _best, url, accept) in lines if share >= min_share]


def _css_width(width: int, dpr: str) -> int:
    """The CSS width a front end that sends ``dpr=`` separately asks for, for ``width`` device pixels
    (as the load-test workload's odd-DPR spelling does)."""
    return max(1, round(width / max(float(dpr), 1.0)))


def write_plan(path: str | Path, plan: Sequence[WarmRequest]) -> None:
    try:
        Path(path).write_text("".join(line.to_json() + "\n" for line in plan))
    except OSError as err:
        raise UsageError(f"cannot write plan {path}: {err.strerror or err}") from err


def read_plan(path: str | Path) -> list[WarmRequest]:
    """A plan file → its lines; a missing file or a malformed line is bad input (exit 2)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read plan {path}: {err}") from err
    out: list[WarmRequest] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            url, headers = d["url"], d.get("headers") or {}
            if not isinstance(url, str) or not url.startswith("/") or not isinstance(headers, dict) or \
                    not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
                raise ValueError("url must be a path, headers a string map")
            out.append(WarmRequest(url, headers, str(d.get("cache_key", "")), float(d.get("expected_share", 0))))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UsageError(f"{path}:{no}: not a plan line", detail=str(err)) from err
    if not out:
        raise UsageError(f"plan {path} holds no request")
    return out


# ---------------------------------------------------------------------------------------------- prediction

def predict_gain(log_paths: Sequence[str], plan: Sequence[WarmRequest], strategy: Strategy | str, traffic: Traffic,
                 *, window: float | str = 3600, ttl: float | str = 30 * 86400, tier: str = DEFAULT_TIER) -> Prediction:
    """Replay the window's requests with and without the plan's requests at every POP just before them.

    The warm rows are log rows (a ``Miss`` each, with the plan's Accept as ``cs-accept``) one millisecond
    before the window's first request; a 1 ms warm-up keeps them out of the score, so both replays score
    exactly the logged requests of the window."""
    from edgeproof.analytics.reader import read_logs

    strat = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
    if traffic.start_ms is None or not traffic.pops:
        raise UsageError("the logs hold no request to replay", detail="no GET/HEAD hit or miss with a timestamp")
    span_ms = int(parse_duration(window) * 1000)
    if span_ms <= 0:
        raise UsageError("--window must be positive")
    lo, hi = traffic.start_ms, traffic.start_ms + span_ms
    tables: list[pa.Table] = []
    for batch in read_logs(list(log_paths), columns=list(COLUMNS)):
        ts = batch.column("timestamp").cast(pa.int64())
        mask = pc.fill_null(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)), False)
        if pc.any(mask).as_py():
            tables.append(pa.Table.from_batches([batch]).filter(mask))
    warm = _warm_rows(plan, traffic, lo - 1)
    opts: dict[str, Any] = {"ttl": ttl, "tier": tier, "calibrate": False}
    base = compare_strategies(tables, [strat], **opts)
    warmed = compare_strategies([warm, *tables], [strat], warmup=0.001, **opts)
    return Prediction(strat.name, span_ms / 1000, lo, len(traffic.pops), warm.num_rows, base["scored"],
                      base["strategies"][strat.name]["hit_rate"], warmed["strategies"][strat.name]["hit_rate"])


def _warm_rows(plan: Sequence[WarmRequest], traffic: Traffic, t_ms: int) -> pa.Table:
    n = len(plan) * len(traffic.pops)
    paths, queries, accepts = [], [], []
    for line in plan:
        path, _, query = line.url.partition("?")
        paths.append(path)
        queries.append(query or "-")
        accepts.append(line.headers.get("Accept") or line.headers.get("accept") or "-")
    k = len(traffic.pops)
    cols = {
        "timestamp": pa.array(np.full(n, t_ms, dtype=np.int64)).cast(LOG_SCHEMA.field("timestamp").type),
        "x_edge_location": pa.array([p for p in traffic.pops for _ in plan], pa.string()),
        "pop": pa.array([p[:3] for p in traffic.pops for _ in plan], pa.string()),
        "sc_bytes": pa.array(np.full(n, traffic.median_bytes, dtype=np.int64)),
        "cs_method": pa.array(["GET"] * n, pa.string()),
        "cs_uri_stem": pa.array(paths * k, pa.string()),
        "cs_uri_query": pa.array(queries * k, pa.string()),
        "cs_user_agent": pa.array([USER_AGENT] * n, pa.string()),
        "x_edge_result_type": pa.array(["Miss"] * n, pa.string()),
        "sc_content_type": pa.array(["-"] * n, pa.string()),
        "cs_accept": pa.array(accepts * k, pa.string()),
    }
    return pa.table(cols)


# ---------------------------------------------------------------------------------------------- sending

def run_plan(plan: Sequence[WarmRequest], target: str, *, pops: Sequence[str | None] = (None,),
             pop_header: str = "X-Edge-Pop", rate: float = 0.0, concurrency: int = 8,
             max_requests: int = 100_000, max_seconds: float = 600.0, timeout: float = 30.0) -> RunResult:
    """Send every plan line once per entry of ``pops`` (a POP id put in ``pop_header``; None: no header,
    the network picks the POP). ``rate`` > 0 caps requests per second; at most ``max_requests`` are sent
    and none is started after ``max_seconds`` (what was not sent is named in ``stopped``)."""
    if rate < 0 or concurrency < 1 or max_requests < 1 or max_seconds <= 0:
        raise UsageError("--rate must be >= 0, --concurrency, --max-requests and --max-time positive")
    work = [(line, pop) for pop in pops for line in plan]
    result = RunResult(planned=len(work))
    if len(work) > max_requests:
        result.stopped = f"{len(work) - max_requests} of {len(work)} requests over --max-requests {max_requests}"
        work = work[:max_requests]
    asyncio.run(_send_all(work, target.rstrip("/"), pop_header, rate, concurrency, max_seconds, timeout, result))
    return result


async def _send_all(work: list[tuple[WarmRequest, str | None]], base: str, pop_header: str, rate: float,
                    concurrency: int, max_seconds: float, timeout: float, result: RunResult) -> None:
    import aiohttp

    from edgeproof.errors import RequestError

    if not base.startswith(("http://", "https://")):
        raise UsageError(f"--target {base!r} is not an http(s) URL")
    queue: asyncio.Queue[tuple[WarmRequest, str | None]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    start = time.monotonic()
    deadline = start + max_seconds
    interval = 1.0 / rate if rate > 0 else 0.0
    slot = [start]  # the next send time the rate allows (one shared clock for every sender)

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            line, pop = queue.get_nowait()
            if interval:
                at, slot[0] = slot[0], max(slot[0], time.monotonic()) + interval
                await asyncio.sleep(max(0.0, at - time.monotonic()))
            if time.monotonic() >= deadline:
                queue.put_nowait((line, pop))
                return
            headers = {"User-Agent": USER_AGENT, **line.headers}
            if pop is not None:
                headers[pop_header] = pop
            result.sent += 1
            where = f"{line.url}" + (f" at {pop}" if pop is not None else "")
            try:
                async with session.get(base + line.url, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    x_cache = resp.headers.get("X-Cache", "-")
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as err:
                result.failures.append(f"{where}: {type(err).__name__}: {err}")
                continue
            result.x_cache[x_cache] += 1
            if x_cache.startswith(_HIT_PREFIXES):
                result.hits += 1
            elif x_cache.startswith("Miss"):
                result.misses += 1
            if 200 <= status < 300 or status == 304:
                result.ok += 1
            else:
                result.failures.append(f"{where}: HTTP {status} ({x_cache})")

    try:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    except ValueError as err:  # a URL aiohttp cannot parse
        raise RequestError(f"cannot send to {base}: {err}") from err
    if not queue.empty():
        left = queue.qsize()
        result.stopped = "; ".join(filter(None, [result.stopped, f"{left} requests not sent: --max-time {max_seconds:g}s"]))


def scenario_traffic(scenario: Scenario, pops: Sequence[str]) -> Traffic:
    """The viewers a load-test scenario sends, as the plan's :class:`Traffic`: its browsers' Accept values
    with their shares (device pixels are already in the srcset widths the workload picks: DPR 1)."""
    total = sum(b.share for b in scenario.clients.browsers) or 1.0
    accepts: dict[str, float] = {}
    for b in scenario.clients.browsers:
        accepts[b.accept] = accepts.get(b.accept, 0.0) + b.share / total
    return Traffic(accept_shares=accepts, dpr_shares={"1": 1.0}, pops=list(pops), start_ms=None, rows=0)


def emulator_pops(n: int) -> list[str]:
    """The POP ids of an edge emulator started with ``--pops n`` (the ids its X-Edge-Pop header takes)."""
    from edgeproof.edge.pops import pop_ids  # the edge package imports aiohttp: only for sending

    if n < 1:
        raise UsageError("--pops must be at least 1")
    return pop_ids(n)
