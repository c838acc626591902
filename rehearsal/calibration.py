"""The what-if of a rehearsal, set up like the edge it ran: one edge config, the real-time logs, calibration.

The rehearsal builds one :class:`edgeproof.edge.config.EdgeConfig` (:func:`edge_config`); the ``edge
serve`` flags (:func:`edge_serve_args`) and the replay's settings (:func:`replay_settings`: tier,
TTL, capacity, POP layout) are both read from it, so the prediction models the cache that produced the
logs rather than a copy of its numbers.

The what-if replays the edge's **real-time** logs (CloudFront's real-time log format, "Real-time logs",
real-time-logs.html): they carry ``cs-accept``, so the replay keys each request by the Accept header
the viewer really sent instead of inferring it from the user agent, and their timestamps have
millisecond resolution (standard logs have whole seconds). Everything else in the report reads the
standard logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeproof.edge.config import EdgeConfig
    from edgeproof.rehearsal.config import RehearsalScenario

__all__ = [
    "DISTRIBUTION_ID",
    "REALTIME_DIR",
    "ReplaySettings",
    "edge_config",
    "edge_serve_args",
    "replay_settings",
    "what_if_logs",
]

DISTRIBUTION_ID = "EREHEARSAL01"
#: the rehearsal's folder of the edge's real-time log files (``DIST.realtime.YYYY-MM-DD-HH.UNIQUE.gz``)
REALTIME_DIR = "realtime-logs"


def edge_config(scenario: RehearsalScenario, out: Path) -> EdgeConfig:
    """The edge emulator the rehearsal runs: the scenario's strategy and POPs, CloudFront's defaults
    for everything else (:mod:`edgeproof.cloudfront`), real-time logs on."""
    from edgeproof.edge.config import EdgeConfig

    return EdgeConfig(strategy=scenario.strategy, pops=scenario.stack.pops, pop_ids=scenario.stack.pop_ids,
                      distribution_id=DISTRIBUTION_ID,
                      realtime_log_dir=str(out / REALTIME_DIR))


def _num(x: float) -> str:
    """A float as a flag value, exactly and without an exponent (31536000, 0.5)."""
    return f"{x:.15g}" if abs(x) < 1e15 else repr(x)


def edge_serve_args(config: EdgeConfig, *, port: int, admin_port: int, origin_group: str,
                    log_dir: Path) -> list[str]:
    """``edgeproof edge serve`` arguments for ``config`` (every cache setting spelled out, so the edge
    that runs is the config the replay reads, whatever the CLI's defaults become)."""
    ttl = config.ttl
    args = ["edge", "serve", "--port", str(port), "--admin-port", str(admin_port),
            f"--origin-group={origin_group}", "--strategy", config.strategy, "--pops", str(config.pops),
            *(f"--pop-id={p}" for p in config.pop_ids),
            "--tier", config.tier, "--capacity-mb", _num(config.capacity_mb),
            "--min-ttl", _num(ttl.min_ttl), "--default-ttl", _num(ttl.default_ttl),
            "--max-ttl", _num(ttl.max_ttl), "--error-ttl", _num(ttl.error_ttl),
            "--log-dir", str(log_dir), "--distribution-id", config.distribution_id]
    if config.tier_capacity_mb is not None:
        args += ["--tier-capacity-mb", _num(config.tier_capacity_mb)]
    if config.realtime_log_dir:
        args += ["--realtime-logs", config.realtime_log_dir]
    return args


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """What :func:`edgeproof.analytics.replay.compare_strategies` needs to model the rehearsal's edge."""

    tier: str
    #: seconds an origin image response stays fresh at the edge (the origin's Cache-Control under the
    #: edge's cache policy)
    ttl: float
    #: bytes per cache: the POP's (the replay has one capacity for every cache; the emulator's regional
    #: caches are larger, ``tier_capacity_bytes``)
    capacity: int
    tier_capacity: int
    #: the POP ids the edge ran and the regional edge cache of each
    pops: tuple[str, ...]
    regions: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "ttl_seconds": self.ttl, "capacity_bytes": self.capacity,
                "tier_capacity_bytes": self.tier_capacity, "pops": list(self.pops), "regions": dict(self.regions)}


def replay_settings(config: EdgeConfig, cache_control: str | None = None) -> ReplaySettings:
    """The replay's model of ``config``: its tier, its TTL for the origin's image responses (the
    origin's ``Cache-Control``, default :data:`edgeproof.origin.config.DEFAULT_CACHE_CONTROL`, clamped by the
    cache policy exactly as the emulator does, :meth:`TtlPolicy.ttl`), its POP capacity, its POPs."""
    from edgeproof.origin.config import DEFAULT_CACHE_CONTROL

    from edgeproof.cloudfront import region_of

    ttl = config.ttl.ttl(200, {"cache-control": cache_control or DEFAULT_CACHE_CONTROL})
    pops = tuple(config.pop_list)
    return ReplaySettings(tier=config.tier, ttl=ttl, capacity=config.capacity_bytes,
                          tier_capacity=config.tier_capacity_bytes, pops=pops,
                          regions={p: region_of(p) for p in pops})


def what_if_logs(out: Path, config: EdgeConfig | None) -> tuple[list[str], str]:
    """The logs the what-if replays and their kind: the real-time logs when the edge wrote any, else
    the standard logs (an older run, or real-time logs off)."""
    if config is not None and config.realtime_log_dir:
        folder = Path(config.realtime_log_dir)
        if folder.is_dir() and any(folder.glob("*.gz")):
            return [str(folder)], "realtime"
    return [str(out / "logs")], "standard"


@dataclass
class ReplayInput:
    """The rows the what-if replays, prepared so that it scores the requests the gates score."""

    #: the log rows, ``timestamp`` set to the request's start (see :func:`replay_input`), in that order
    table: Any
    #: seconds from the first start to the start of the scored window (the spike)
    warmup: float
    #: what was done to the log rows (for summary.json)
    info: dict[str, Any]


def _client_starts(table: Any, records: Any, arrival: Any) -> Any:
    """Each log row's intended start from the load recorder (epoch ms), or None when the rows do not pair.

    A log row and a recorder row are the same request when they have the same URL and POP; among the
    requests for one (URL, POP), the n-th to arrive at the edge is the n-th the client started. The edge
    pre-warm's requests (their own User-Agent, sent before the load) keep their arrival time."""
    import numpy as np
    import pyarrow.compute as pc
    from edgeproof.rehearsal.prewarm import USER_AGENT as WARM_AGENT

    stem = pc.fill_null(table.column("cs_uri_stem"), "").to_pylist()
    query = pc.fill_null(table.column("cs_uri_query"), "").to_pylist()
    where = pc.fill_null(table.column("x_edge_location"), "").to_pylist()
    status = pc.fill_null(records.column("status"), 0).to_pylist()
    sent = records.column("actual_start").cast("int64").to_pylist()
    intended = records.column("intended_start").cast("int64").to_pylist()
    urls, pops = records.column("url").to_pylist(), records.column("pop").to_pylist()
    queue: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in range(records.num_rows):
        if status[k] and sent[k] is not None:  # answered: the edge logged it
            queue.setdefault((urls[k], pops[k] or ""), []).append((sent[k], intended[k]))
    for starts in queue.values():
        starts.sort(reverse=True)  # pop() takes the earliest
    out = np.empty(table.num_rows, dtype=np.int64)
    unit = 1000 if records.column("intended_start").type.unit == "us" else 1
    agents = pc.fill_null(table.column("cs_user_agent"), "").to_pylist() \
        if "cs_user_agent" in table.schema.names else [""] * table.num_rows
    for j in np.argsort(arrival, kind="stable").tolist():
        if agents[j] == WARM_AGENT:
            out[j] = arrival[j]
            continue
        url = stem[j] + ("?" + query[j] if query[j] not in ("", "-") else "")
        starts = queue.get((url, where[j]))
        if not starts:
            return None
        out[j] = starts.pop()[1] // unit
    return out if not any(queue.values()) else None


def _scored_window(records: Any, phases: Sequence[str]) -> tuple[int, int] | None:
    """(first, last + 1) intended start in epoch ms of the recorder rows in ``phases``: what the gates score."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if records is None or "phase" not in records.schema.names:
        return None
    mask = pc.is_in(records.column("phase"), value_set=pa.array(list(phases), pa.string()))
    starts = records.column("intended_start").filter(mask)
    if len(starts) == 0:
        return None
    unit = 1000 if starts.type.unit == "us" else 1
    low, high = pc.min(starts.cast(pa.int64())).as_py(), pc.max(starts.cast(pa.int64())).as_py()
    return low // unit, high // unit + 1


def replay_input(logs: list[str], *, load_start: datetime, spike: tuple[float, float],
                 records: Any = None, spike_phases: Sequence[str] = ()) -> ReplayInput:
    """The edge's log rows keyed by **request start**, cut to end with the spike.

    Why: a CloudFront log line is written when the response is finished (``timestamp`` is that time,
    ``time-taken`` how long it took; standard-logs-reference.html, real-time-logs.html), while the
    cache decided the request's fate when it arrived, and the gates score requests by their
    intended start. Replayed in log order, the scored window starts ``warmup`` after the first *log
    line* and runs to the last one: it is shifted by the first response's latency at the start and
    takes in requests started after the spike at the end. Here each row's ``timestamp`` becomes the
    request's intended start, from the load recorder's rows (``records``) when every log row pairs
    with one (:func:`_client_starts`), else its arrival at the edge, ``timestamp - time_taken``
    (millisecond resolution in real-time logs); rows are sorted by it, rows started after the spike
    are left out (they cannot change what a scored request found), and ``warmup`` makes scoring start
    with the spike. The spike is the recorder rows of ``spike_phases`` (exactly the gates' rows), or
    without them ``spike`` seconds after ``load_start``, the client's first intended start.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from edgeproof.analytics.reader import read_logs
    from edgeproof.analytics.replay import COLUMNS

    stream = read_logs(logs, columns=[*COLUMNS, "time_taken"])
    batches = list(stream)
    table = pa.Table.from_batches(batches) if batches else None
    if table is None or table.num_rows == 0:
        raise ValueError("no log rows to replay")
    logged = table.column("timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
    taken = np.asarray(pc.fill_null(table.column("time_taken"), 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    arrival = logged - np.rint(taken * 1000.0).astype(np.int64)
    starts = _client_starts(table, records, arrival) if records is not None else None
    when = starts if starts is not None else arrival
    order = np.argsort(when, kind="stable")
    reordered = int(np.count_nonzero(order != np.argsort(logged, kind="stable")))
    window = _scored_window(records, spike_phases) if starts is not None else None
    if window is None:
        t0_ms = int(load_start.timestamp() * 1000)
        window = t0_ms + int(round(spike[0] * 1000)), t0_ms + int(round(spike[1] * 1000))
    spike_start, spike_end = window
    keep = order[when[order] < spike_end]
    table = table.take(pa.array(keep))
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                             pa.array(when[keep], pa.int64()).cast(pa.timestamp("ms", tz="UTC")))
    first = int(when[keep[0]]) if keep.size else spike_start
    info = {"order": "intended start (load recorder)" if starts is not None else "arrival (timestamp - time-taken)",
            "rows": int(when.size), "after_spike": int(when.size - keep.size), "reordered": reordered,
            "bad_lines": stream.bad_lines,
            "scored_from": datetime.fromtimestamp(spike_start / 1000, UTC).isoformat(),
            "scored_to": datetime.fromtimestamp(spike_end / 1000, UTC).isoformat()}
    # + 0.5 ms: the replay turns seconds back into whole milliseconds by truncation
    return ReplayInput(table, (max(0, spike_start - first) + 0.5) / 1000.0, info)


def self_calibration(result: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The replay of the run's own strategy against what its edge logged for the same scored requests.

    The replay re-keys the logged requests and runs them through its cache model; under the strategy
    that produced the logs it must find the logged hits and misses. A difference here is a modelling
    error (of the cache, or of the replay's input), and it carries over to every other prediction."""
    from edgeproof.analytics.strategies import get_strategy

    name = get_strategy(strategy).name
    row = (result.get("strategies") or {}).get(name) or {}
    observed = (result.get("observed") or {}).get("hit_rate")
    predicted = row.get("hit_rate")
    return {"strategy": name, "predicted_hit_rate": predicted, "observed_hit_rate": observed,
            "difference": None if predicted is None or observed is None else predicted - observed,
            "scored": result.get("scored")}


def calibration_lines(what_if: dict[str, Any], *, dropped: int = 0, evictions: int = 0,
                      edge_spike_hit_rate: float | None = None) -> list[str]:
    """The what-if's calibration in plain words, and a line for each cause that can still separate a
    prediction from a rehearsal under the predicted strategy (each as measured in this run).

    ``edge_spike_hit_rate``: the report's spike hit rate from the standard logs, which windows log
    times (whole seconds, response end) and so can differ from the gates' rows by a few requests."""
    cal = what_if.get("self_calibration") or {}
    settings = what_if.get("settings") or {}
    inp = what_if.get("input") or {}
    lines: list[str] = []
    diff, scored = cal.get("difference"), cal.get("scored") or 0
    if diff is not None:
        model = ""
        if settings:
            model = (f" with the edge's cache ({settings['tier']} tier, TTL {settings['ttl_seconds'] / 86400:g} d, "
                     f"{settings['capacity_bytes'] / 2**20:g} MiB per POP)")
        keyed = "the Accept the viewers sent (real-time logs)" if what_if.get("logs") == "realtime" \
            else "an Accept inferred from the user agent and the served type (standard logs)"
        verdict = "exactly what the edge logged" if abs(diff) < 5e-5 else \
            f"{cal['observed_hit_rate']:.2%} logged: {diff * 100:+.2f} pp"
        lines.append(f"Calibration: replayed{model}, keyed by {keyed}, the run's own strategy "
                     f"'{cal['strategy']}' scores {cal['predicted_hit_rate']:.2%} on the {scored:,} requests the "
                     f"gates scored — {verdict}.")
        observed = cal.get("observed_hit_rate")
        if edge_spike_hit_rate is not None and observed is not None and abs(edge_spike_hit_rate - observed) >= 5e-5:
            lines.append(f"The spike hit rate of the edge's standard logs ({edge_spike_hit_rate:.2%}) windows whole-"
                         f"second log times, written when each response ended; the gates and the what-if score the "
                         f"spike's requests by intended start ({observed:.2%}), so compare predictions with that.")
    excluded = sum((what_if.get("excluded") or {}).values())
    if excluded and scored:
        lines.append(f"{excluded:,} requests of this run were errors or hung-up viewers (neither hit nor miss), not "
                     f"replayed: under another strategy the ones that succeed would be scored, so a prediction can "
                     f"differ from a rehearsal under it by up to {excluded / (scored + excluded) * 100:.2f} pp.")
    if dropped and scored:
        lines.append(f"{dropped:,} arrivals were dropped by the load generator (never sent, so not in the logs): a "
                     f"rehearsal under another strategy may send them (up to {dropped / (scored + dropped) * 100:.2f} "
                     f"pp).")
    if inp.get("order", "").startswith("arrival"):
        lines.append("The load recorder's rows did not pair with the edge's log rows: the replay orders and scores "
                     "requests by their arrival at the edge (log time - time-taken), so requests at the edges of "
                     "the spike may be scored where the gates do not score them.")
    if evictions:
        lines.append(f"The edge evicted {evictions:,} objects for capacity; the replay gives every cache the POP's "
                     f"capacity (regional caches are larger at the edge), so evicted misses may be over-counted.")
    return lines
