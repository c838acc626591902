"""The spike rehearsal end to end: start the stack, play the spike and its events, stop, analyse, report.

``run_rehearsal(options)`` is what ``edgeproof rehearse`` calls:

1. the sample catalog (generated once with ``edgeproof origin sample-catalog`` and kept under
   ``.edgeproof-cache/``);
2. the warm-up the scenario asks for (``prewarm``): the launch and hottest SKUs prescaled into the
   store, and after the stack starts, one request per cache key at every POP;
3. the embedded stack on loopback (:class:`~edgeproof.rehearsal.embedded.EmbeddedStack`), each part
   through its own CLI: origin tasks (``edgeproof origin serve``, with a shared derivative-store folder
   or, in local-cache mode, private ones), the edge emulator (``edgeproof edge serve``: the scenario's
   POPs, the chosen strategy, standard logs in ``OUT/logs`` and real-time logs in
   ``OUT/realtime-logs``, its flags from one ``EdgeConfig``); with ``--target URL`` no stack is started
   and the load goes to that distribution;
4. the load (``edgeproof loadtest run``, its own process since Locust must be), while this process
   polls the edge's and origins' counters once a second, plays the scenario's scripted events and the
   autoscaler's decisions, and prints a live progress line;
5. a clean stop of everything (:class:`~edgeproof.rehearsal.stack.Processes`), even on Ctrl-C or
   failure;
6. the analysis (:mod:`edgeproof.rehearsal.analysis`) and the report
   (:mod:`edgeproof.rehearsal.report`): ``summary.json``, ``report.html``, PNG charts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeproof.rehearsal.calibration import edge_config
from edgeproof.rehearsal.config import SCENARIO_SETTINGS, RehearsalScenario, dump_toml, load_rehearsal
from edgeproof.rehearsal.embedded import EmbeddedStack
from edgeproof.rehearsal.stack import (
    Processes,
    RehearsalError,
    edgeproof_cmd,
    http_post_json,
)

from edgeproof.errors import ConfigError, UsageError
from edgeproof.progress import Progress

if TYPE_CHECKING:
    from edgeproof.loadtest.scenario import Scenario
    from edgeproof.rehearsal.analysis import RehearsalSummary

__all__ = ["RehearsalOptions", "RehearsalResult", "catalog_dir", "run_rehearsal"]


@dataclass
class RehearsalOptions:
    """What ``edgeproof rehearse`` was asked; ``strategy``, ``duration`` and ``peak_rps`` override the
    scenario's keys of the same name (None: the scenario's), checked by the scenario's table."""

    scenario: str | None = None
    strategy: str | None = None
    duration: float | None = None
    peak_rps: float | None = None
    out: str | None = None
    target: str | None = None
    logs: str | None = None
    cache_dir: str | None = None
    what_if: bool = True
    quiet: bool = False


@dataclass
class RehearsalResult:
    out_dir: Path
    summary: RehearsalSummary
    exit_code: int
    files: list[Path] = field(default_factory=list)


def catalog_dir(images: int, cache_dir: str | None = None, distinct: int = 0) -> Path:
    base = Path(cache_dir or os.environ.get("EDGEPROOF_CACHE") or ".edgeproof-cache")
    return base / (f"catalog-{images}-of-{distinct}" if 0 < distinct < images else f"catalog-{images}")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def ensure_catalog(images: int, cache_dir: str | None, quiet: bool, distinct: int = 0) -> Path:
    """The sample catalog folder (generated once, then reused); returns it (with ``catalog.txt``)."""
    folder = catalog_dir(images, cache_dir, distinct)
    if (folder / "catalog.txt").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shared = f", {distinct} drawn, the rest sharing their pixels" if 0 < distinct < images else ""
    _say(quiet, f"generating the sample catalog ({images} images{shared}) in {folder} (once; kept for later runs)…")
    proc = subprocess.run(edgeproof_cmd("origin", "sample-catalog", "--count", str(images), "--out", str(tmp),
                                        "--distinct", str(distinct)),
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (tmp / "catalog.txt").is_file():
        raise RehearsalError("could not generate the sample catalog",
                             detail=(proc.stderr or proc.stdout)[-2000:] or "no catalog.txt written")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _warm_skus(scenario: RehearsalScenario, sc: Scenario) -> tuple[list[str], list[int]]:
    """The source keys and SKU numbers warmed before the load (store or edge): the promotion's new SKUs
    (known before a launch) and the ``prescale_hottest`` most popular (rank 1 is the hottest)."""
    from edgeproof.loadtest.workload import load_keys

    st = scenario.stack
    if not (st.prescale_launch or st.prescale_hottest):
        return [], []
    groups = load_keys(sc.catalog.keys_file) if sc.catalog.keys_file else []
    promoted = min(sc.promotion.new_skus, max(len(groups) - 1, 0))
    regular = len(groups) - promoted
    skus = list(range(1, min(st.prescale_hottest, regular) + 1))
    if st.prescale_launch:
        skus += list(range(regular + 1, len(groups) + 1))
    return [k.lstrip("/") for n in skus for k in groups[n - 1]], skus


def prescale_plan(scenario: RehearsalScenario, scenario_file: Path) -> tuple[list[str], list[str], list[int]]:
    """What a prescaling rehearsal writes to the shared store before the load: ``(keys, ops, skus)``.

    The SKUs are :func:`_warm_skus`'s; the variants are the ones the edge will ask the store for: each
    role's widths and quality under each browser's ``Accept``, through the run's own strategy.
    """
    from edgeproof.analytics.strategies import get_strategy
    from edgeproof.loadtest.scenario import load_scenario

    sc = load_scenario(scenario_file)
    keys, skus = _warm_skus(scenario, sc)
    if not keys:
        return [], [], []
    strategy = get_strategy(scenario.strategy)
    ops: set[str] = set()
    for key in keys:
        for role in sc.catalog.roles:
            for width in role.widths:
                for browser in sc.clients.browsers:
                    found = strategy.apply("GET", "/" + key, f"width={width}&format=auto&q={role.quality}",
                                           {"accept": browser.accept})
                    variant = getattr(found, "variant", None)
                    if variant and variant.startswith(f"/{key}/"):
                        ops.add(variant[len(key) + 2:])
    return keys, sorted(ops), skus


def run_prescale(scenario: RehearsalScenario, scenario_file: Path, sources: Path, out: Path,
                 quiet: bool) -> dict[str, Any] | None:
    """``edgeproof origin prescale`` of the launch / hottest SKUs into the shared derivative store."""
    keys, ops, skus = prescale_plan(scenario, scenario_file)
    if not keys or not ops:
        return None
    store = out / "store" / "derivatives"
    store.mkdir(parents=True, exist_ok=True)
    keys_file = out / "prescale-keys.txt"
    keys_file.write_text("".join(k + "\n" for k in keys))
    _say(quiet, f"prescaling {len(ops) * len(keys)} variants ({len(ops)} per image × {len(keys)} images of "
                f"{len(skus)} SKUs: the launch and the hottest) into the derivative store…")
    began = time.monotonic()
    proc = subprocess.run(edgeproof_cmd("origin", "prescale", "--sources", str(sources), "--derivatives", str(store),
                                        "--variants", ";".join(ops), "--keys", str(keys_file), "--quiet"),
                          capture_output=True, text=True)
    seconds = time.monotonic() - began
    if proc.returncode != 0:
        raise RehearsalError("prescaling failed", detail=(proc.stderr or proc.stdout)[-2000:])
    made = sum(1 for f in store.rglob("*") if f.is_file())
    return {"skus": skus, "images": len(keys), "variants": ops, "written": made, "seconds": round(seconds, 2),
            "line": (proc.stdout or proc.stderr).strip().splitlines()[-1:]}


def edge_warm_plan(scenario: RehearsalScenario, scenario_file: Path, pops: list[str]) -> tuple[list[Any], list[int]]:
    """The edge pre-warm's plan: one request per cache key of :func:`_warm_skus`'s SKUs × the pages'
    variants × the clients' Accept values (:func:`edgeproof.rehearsal.prewarm.build_plan`), and the SKUs."""
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.rehearsal import prewarm

    sc = load_scenario(scenario_file)
    keys, skus = _warm_skus(scenario, sc)
    if not keys:
        return [], []
    plan = prewarm.build_plan(["/" + k for k in keys], prewarm.page_variants(sc), prewarm.scenario_traffic(sc, pops),
                              scenario.strategy)
    return plan, skus


def run_edge_prewarm(stack: EmbeddedStack, scenario_file: Path, quiet: bool) -> dict[str, Any] | None:
    """Warm the edge before the load: one request per cache key of the launch and hottest SKUs
    (:func:`_warm_skus`) × the pages' variants × the clients' Accept values, sent to every
    POP of the emulator (:mod:`edgeproof.rehearsal.prewarm`)."""
    from edgeproof.rehearsal import prewarm

    pops = stack.edge_config.pop_list
    plan, skus = edge_warm_plan(stack.scenario, scenario_file, pops)
    if not plan:
        return None
    _say(quiet, f"pre-warming the edge: {len(plan)} cache keys of {len(skus)} SKUs × {len(pops)} POPs…")
    began = time.monotonic()
    result = prewarm.run_plan(plan, stack.edge_url, pops=pops, concurrency=4, max_seconds=300)
    if result.failures:
        raise RehearsalError(f"edge pre-warming failed for {len(result.failures)} of {result.planned} requests",
                             detail="\n".join(result.failures[:10]))
    seconds = round(time.monotonic() - began, 2)
    # the load starts in the next whole second (log times have 1 s resolution): the analysis of the edge
    # logs counts from there, so the warm requests fill the caches but are not the run's traffic
    until = int(time.time()) + 1
    time.sleep(max(0.0, until - time.time()) + 0.01)
    return {"skus": skus, "keys": len(plan), "pops": len(pops), "planned": result.planned, "sent": result.sent,
            "ok": result.ok, "hits": result.hits, "misses": result.misses, "x_cache": dict(result.x_cache),
            "stopped": result.stopped or None, "seconds": seconds, "until": until}


def _resolve(options: RehearsalOptions) -> RehearsalScenario:
    """The scenario with the options' overrides, checked by the scenario's own table
    (:data:`SCENARIO_SETTINGS`), so a value the file refuses is refused as an option too."""
    scenario = load_rehearsal(options.scenario)
    given = {"strategy": options.strategy, "duration": options.duration, "peak_rps": options.peak_rps}
    changes = SCENARIO_SETTINGS.validate({k: v for k, v in given.items() if v is not None})
    return replace(scenario, **changes) if changes else scenario


def _loadtest_table(scenario: RehearsalScenario, keys_file: Path | None) -> dict[str, Any]:
    table = json.loads(json.dumps(scenario.loadtest))  # deep copy
    table.setdefault("name", f"rehearsal-{scenario.name}")
    if keys_file is not None:
        catalog = table.setdefault("catalog", {})
        for key in ("skus", "images_per_sku", "path_template"):
            catalog.pop(key, None)
        catalog["keys_file"] = str(keys_file.resolve())
        table.setdefault("clients", {}).setdefault("pops", scenario.stack.pop_count)
    return table


def _phases(table: dict[str, Any], where: Path, duration: float, peak: float) -> list[tuple[str, float, float]]:
    """The load shape's phases (name, start, end) in seconds from the first arrival."""
    from edgeproof.loadtest.scenario import scenario_from_dict
    from edgeproof.loadtest.shapes import build_shape

    sc = scenario_from_dict(table, where=str(where), base_dir=where.parent)
    shape = build_shape({**sc.shape, "duration": duration, "peak_rps": peak}, where=str(where))
    return shape.phases()


def _event_times(scenario: RehearsalScenario, phases: list[tuple[str, float, float]]) -> list[tuple[float, Any]]:
    starts = {name: start for name, start, _ in phases}
    out = []
    for ev in scenario.events:
        if isinstance(ev.at, str):
            if ev.at not in starts:
                raise ConfigError(f"{scenario.source}: event at {ev.at!r}: no such phase",
                                  detail=f"phases: {', '.join(starts)}")
            out.append((starts[ev.at], ev))
        else:
            out.append((float(ev.at), ev))
    return sorted(out, key=lambda p: p[0])


def _progress_line(t: float, duration: float, sample: dict[str, Any], phase: str) -> str:
    edge = sample.get("edge") or {}
    origin = sample.get("origin") or {}
    rate = edge.get("hit_rate")
    rate_s = "–" if rate is None else f"{rate * 100:5.1f}%"
    return (f"  t={t:5.1f}s/{duration:.0f}s [{phase:<8}] edge requests {edge.get('requests', 0):>7,}  "
            f"hit rate {rate_s}  origin tasks {sample.get('origin_tasks', 0)}  "
            f"transforms {int(origin.get('transforms_total', 0)):>5,}  503s {int(origin.get('responses_503', 0))}")


def _run_load(stack: EmbeddedStack | None, scenario: RehearsalScenario, host: str, out: Path, scenario_file: Path,
              phases: list[tuple[str, float, float]], procs: Processes, quiet: bool) -> int:
    """Run ``edgeproof loadtest run`` and, meanwhile, poll, play events and show progress."""
    load_out = out / "loadtest"
    args = ["loadtest", "run", str(scenario_file), "--host", host, "--duration", f"{scenario.duration:g}",
            "--peak-rps", f"{scenario.peak_rps:g}", "--out", str(load_out)]
    load = procs.start("loadtest", edgeproof_cmd(*args))
    events = _event_times(scenario, phases) if stack is not None else []
    t_start: float | None = None  # when the first request reached the edge
    deadline = time.monotonic() + scenario.duration + 180
    line = Progress(enabled=not quiet)  # redrawn on a terminal, a plain line every 10 s in a log
    while load.alive():
        if time.monotonic() > deadline:
            raise RehearsalError("the load test did not finish in time", detail=load.tail())
        now = time.monotonic()
        t = 0.0 if t_start is None else now - t_start
        if stack is not None:
            stack.clock = t
            sample = stack.poll(t)
            if t_start is None and (sample.get("edge") or {}).get("requests", 0) > 0:
                t_start = now
                sample["t"] = 0.0
            while events and t_start is not None and t >= events[0][0]:
                at, ev = events.pop(0)
                changed = stack.scale_out(ev.count) if ev.action == "scale_out" else stack.scale_in(ev.count)
                stack.events.append({"t": round(now - t_start, 2), "at": at, "action": ev.action, "by": "script",
                                     "urls": changed, "origin_tasks": len(stack.origins)})
                line.note(f"  event at t={now - t_start:.1f}s: {ev.action} {ev.count} → "
                          f"{len(stack.origins)} origin task(s)")
            if t_start is not None:
                stack.autoscale(line)
            phase = "starting" if t_start is None else next((name for name, a, b in phases if a <= t < b), "drain")
            line.show(_progress_line(t, scenario.duration, sample, phase))
        time.sleep(1.0)
    if stack is not None and stack.samples:
        line.close()
    if stack is not None:
        stack.poll(0.0 if t_start is None else time.monotonic() - t_start)
    return load.proc.returncode or 0


def run_rehearsal(options: RehearsalOptions) -> RehearsalResult:
    from edgeproof.rehearsal.analysis import analyse
    from edgeproof.rehearsal.report import print_verdict, write_report

    scenario = _resolve(options)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(options.out or Path("rehearsals") / stamp)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"output folder {out} is not empty", detail="choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    quiet = options.quiet
    embedded = options.target is None
    _say(quiet, f"rehearsal {scenario.name!r}: strategy {scenario.strategy}, {scenario.duration:g}s, "
                f"peak {scenario.peak_rps:g} req/s → {out}")
    keys_file = None
    sources = None
    if embedded:
        sources = ensure_catalog(scenario.stack.catalog_images, options.cache_dir, quiet,
                                 scenario.stack.catalog_distinct)
        keys_file = sources / "catalog.txt"
    table = _loadtest_table(scenario, keys_file)
    scenario_file = out / "loadtest-scenario.toml"
    scenario_file.write_text(dump_toml(table))
    phases = _phases(table, scenario_file, scenario.duration, scenario.peak_rps)

    prescaled = None
    if embedded and sources is not None and scenario.stack.shared_derivatives and scenario.prewarm in ("store", "both"):
        prescaled = run_prescale(scenario, scenario_file, sources, out, quiet)
    edge_warm = None

    stack: EmbeddedStack | None = None
    started = time.time()
    with Processes(out / "stack") as procs:
        if embedded:
            assert sources is not None
            stack = EmbeddedStack(procs, scenario, out, sources, edge_config(scenario, out))
            _say(quiet, f"starting {scenario.stack.origin_processes} origin task(s) and the edge "
                        f"({scenario.stack.pop_count} POPs)…")
            for _ in range(scenario.stack.origin_processes):
                stack.start_origin()
            stack.start_edge()
            if scenario.prewarm in ("edge", "both"):
                edge_warm = run_edge_prewarm(stack, scenario_file, quiet)
            stack.start_autoscaling()
            host = stack.edge_url
        else:
            host = str(options.target).rstrip("/")
            if scenario.prewarm != "none" or scenario.autoscaling.enabled:
                _say(quiet, "with --target nothing is started: the scenario's prewarm and autoscaling are the "
                            "distribution's own (warm its POPs first with `edgeproof prewarm run --target URL`)")
        _say(quiet, f"load: {host} (phases: " + ", ".join(f"{n} {a:.0f}-{b:.0f}s" for n, a, b in phases) + ")")
        load_began = time.time()
        load_rc = _run_load(stack, scenario, host, out, scenario_file, phases, procs, quiet)
        if stack is not None and stack.edge is not None:
            http_post_json(f"{stack.admin_url}/flush", {})
        _say(quiet, "stopping the stack…")
    finished = time.time()
    if load_rc not in (0, 1):
        tail = (out / "stack" / "loadtest.log").read_text(errors="replace")[-2000:]
        raise RehearsalError(f"the load test failed (exit {load_rc})", detail=tail)

    _say(quiet, "analysing edge logs and recorder rows…")
    summary = analyse(
        out=out, scenario=scenario, phases=phases, embedded=embedded,
        samples=stack.samples if stack else [], events=stack.events if stack else [],
        tasks=stack.task_records() if stack else [], datapoints=stack.datapoints if stack else [],
        prewarmed={"store": prescaled, "edge": edge_warm} if embedded else None,
        real_logs=options.logs, what_if=options.what_if, started=started, finished=finished,
        target_url=options.target, prescaled=prescaled, load_began=load_began,
        edge_config=stack.edge_config if stack else None,
    )
    files = write_report(summary, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not quiet:
        print_verdict(summary, out)
    return RehearsalResult(out, summary, 0 if summary["passed"] else 1, files)
