"""The spike rehearsal end to end: start the stack, play the spike and its events, stop, analyse, report.

``run_rehearsal(options)`` is what ``edgeproof rehearse`` calls:

1. the sample catalog (generated once with ``edgeproof origin sample-catalog`` and kept under
   ``.edgeproof-cache/``);
2. the embedded stack on loopback, each part through its own CLI: origin tasks (``edgeproof origin
   serve``, with a shared derivative-store folder or, in local-cache mode, private ones), the edge
   emulator (``edgeproof edge serve``: several POPs, the chosen strategy, standard logs in ``OUT/logs``
   and real-time logs in ``OUT/realtime-logs``, its flags from one ``EdgeConfig``);
   with ``--target URL`` no stack is started and the load goes to that distribution;
3. the load (``edgeproof loadtest run``, its own process since Locust must be), while this process
   polls the edge's and origins' counters once a second, plays the scenario's events (origin
   scale-out/in through the edge's admin API) and prints a live progress line;
4. a clean stop of everything (:class:`~edgeproof.rehearsal.stack.Processes`), even on Ctrl-C or
   failure;
5. the analysis (:mod:`edgeproof.rehearsal.analysis`) and the report
   (:mod:`edgeproof.rehearsal.report`): ``summary.json``, ``report.html``, PNG charts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeproof.rehearsal.calibration import edge_config, edge_serve_args
from edgeproof.rehearsal.config import SCENARIO_SETTINGS, RehearsalScenario, dump_toml, load_rehearsal
from edgeproof.rehearsal.stack import (
    Child,
    Processes,
    RehearsalError,
    edgeproof_cmd,
    free_port,
    http_get,
    http_post_json,
    wait_ready,
)

from edgeproof.errors import ConfigError, UsageError
from edgeproof.progress import Progress

if TYPE_CHECKING:
    from edgeproof.edge.config import EdgeConfig
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


def catalog_dir(images: int, cache_dir: str | None = None) -> Path:
    base = Path(cache_dir or os.environ.get("EDGEPROOF_CACHE") or ".edgeproof-cache")
    return base / f"catalog-{images}"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def ensure_catalog(images: int, cache_dir: str | None, quiet: bool) -> Path:
    """The sample catalog folder (generated once, then reused); returns it (with ``catalog.txt``)."""
    folder = catalog_dir(images, cache_dir)
    if (folder / "catalog.txt").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _say(quiet, f"generating the sample catalog ({images} images) in {folder} (once; kept for later runs)…")
    proc = subprocess.run(edgeproof_cmd("origin", "sample-catalog", "--count", str(images), "--out", str(tmp)),
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (tmp / "catalog.txt").is_file():
        raise RehearsalError("could not generate the sample catalog",
                             detail=(proc.stderr or proc.stdout)[-2000:] or "no catalog.txt written")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


@dataclass
class _Stack:
    """The running embedded stack: origin tasks, the edge, and what the poller collected."""

    procs: Processes
    scenario: RehearsalScenario
    out: Path
    sources: Path
    #: the edge that runs (its flags and the what-if's cache model both come from it)
    edge_config: EdgeConfig
    edge: Child | None = None
    edge_url: str = ""
    admin_url: str = ""
    origins: list[Child] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    task_seq: int = 0
    task_counters: dict[str, dict[str, float]] = field(default_factory=dict)

    def derivatives_for(self, n: int) -> Path:
        store = self.out / "store"
        return store / "derivatives" if self.scenario.stack.shared_derivatives else store / f"task-{n}"

    def start_origin(self, wait: bool = True) -> Child:
        self.task_seq += 1
        n = self.task_seq
        port = free_port()
        deriv = self.derivatives_for(n)
        deriv.mkdir(parents=True, exist_ok=True)
        args = ["origin", "serve", "--port", str(port), "--sources", str(self.sources), "--derivatives", str(deriv),
                "--workers", str(self.scenario.stack.origin_workers)]
        if self.scenario.stack.local_cache_mb:
            args += ["--local-cache-mb", str(self.scenario.stack.local_cache_mb)]
        child = self.procs.start(f"origin-{n}", edgeproof_cmd(*args), url=f"http://127.0.0.1:{port}", task=n)
        if wait:
            wait_ready(child, f"{child.url}/readyz", timeout=90)
        self.origins.append(child)
        return child

    def start_edge(self) -> None:
        port, admin = free_port(), free_port()
        primary = str(self.out / "store" / "derivatives") if self.scenario.stack.shared_derivatives else "-"
        group = ",".join([primary, *(o.url or "" for o in self.origins)])
        args = edge_serve_args(self.edge_config, port=port, admin_port=admin, origin_group=group,
                               log_dir=self.out / "logs")
        self.edge = self.procs.start("edge", edgeproof_cmd(*args), url=f"http://127.0.0.1:{port}")
        self.edge_url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin}"
        wait_ready(self.edge, f"{self.admin_url}/readyz", timeout=60)

    def scale_out(self, count: int) -> list[str]:
        added = []
        for _ in range(count):
            child = self.start_origin()
            status, body = http_post_json(f"{self.admin_url}/backends", {"url": child.url})
            if status >= 300:
                raise RehearsalError(f"the edge refused the new origin backend {child.url}: {body}")
            added.append(child.url or "")
        return added

    def scale_in(self, count: int) -> list[str]:
        removed = []
        for _ in range(min(count, len(self.origins) - 1)):  # keep at least one task
            child = self.origins.pop()
            http_post_json(f"{self.admin_url}/backends", {"url": child.url}, method="DELETE")
            self._poll_origin(child)  # its counters up to its removal
            self.procs.stop(child)
            removed.append(child.url or "")
        return removed

    def _poll_origin(self, child: Child) -> None:
        try:
            status, body = http_get(f"{child.url}/metrics", timeout=2.0)
        except OSError:
            return
        if status == 200:
            self.task_counters[child.url or child.name] = parse_prometheus(body.decode(errors="replace"))

    def poll(self, t: float) -> dict[str, Any]:
        """One sample of the edge's /stats and every origin's /metrics (counters, summed)."""
        sample: dict[str, Any] = {"t": t, "origin_tasks": len(self.origins)}
        try:
            status, body = http_get(f"{self.admin_url}/stats", timeout=2.0)
            if status == 200:
                sample["edge"] = json.loads(body)
        except (OSError, ValueError):
            pass
        for child in self.origins:
            self._poll_origin(child)
        totals: dict[str, float] = {}
        # every task ever started, a stopped one frozen at its last poll: the sums never go backwards
        for counters in self.task_counters.values():
            for key, value in counters.items():
                totals[key] = totals.get(key, 0.0) + value
        sample["origin"] = totals
        self.samples.append(sample)
        return sample


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """The origin's counters we chart: transforms, 503s, requests, shed (summed over labels)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        short = name.removeprefix("edgeproof_origin_")
        if short in ("transforms_total", "shed_total", "local_cache_hits_total", "store_writes_total"):
            out[short] = out.get(short, 0.0) + value
        elif short == "requests_total":
            out["requests_total"] = out.get("requests_total", 0.0) + value
            if 'status="503"' in labels:
                out["responses_503"] = out.get("responses_503", 0.0) + value
            m_source = re.search(r'source="([a-z_]+)"', labels)
            if m_source:  # where the origin's answer came from: local_cache, derivative_store, transform
                key = f"from_{m_source.group(1)}"
                out[key] = out.get(key, 0.0) + value
    return out


def prescale_plan(scenario: RehearsalScenario, scenario_file: Path) -> tuple[list[str], list[str], list[int]]:
    """What a prescaling rehearsal writes to the shared store before the load: ``(keys, ops, skus)``.

    The SKUs are the promotion's new ones (known before a launch) and the ``prescale_hottest`` most
    popular (rank 1 is the hottest); the variants are the ones the edge will ask the store for: each
    role's widths and quality under each browser's ``Accept``, through the run's own strategy.
    """
    from edgeproof.analytics.strategies import get_strategy
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.loadtest.workload import load_keys

    st = scenario.stack
    if not (st.prescale_launch or st.prescale_hottest):
        return [], [], []
    sc = load_scenario(scenario_file)
    groups = load_keys(sc.catalog.keys_file) if sc.catalog.keys_file else []
    promoted = min(sc.promotion.new_skus, max(len(groups) - 1, 0))
    regular = len(groups) - promoted
    skus = list(range(1, min(st.prescale_hottest, regular) + 1))
    if st.prescale_launch:
        skus += list(range(regular + 1, len(groups) + 1))
    keys = [k.lstrip("/") for n in skus for k in groups[n - 1]]
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
        table.setdefault("clients", {}).setdefault("pops", scenario.stack.pops)
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


def _run_load(stack: _Stack | None, scenario: RehearsalScenario, host: str, out: Path, scenario_file: Path,
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
            sample = stack.poll(t)
            if t_start is None and (sample.get("edge") or {}).get("requests", 0) > 0:
                t_start = now
                sample["t"] = 0.0
            while events and t_start is not None and t >= events[0][0]:
                at, ev = events.pop(0)
                changed = stack.scale_out(ev.count) if ev.action == "scale_out" else stack.scale_in(ev.count)
                stack.events.append({"t": round(now - t_start, 2), "at": at, "action": ev.action, "urls": changed,
                                     "origin_tasks": len(stack.origins)})
                line.note(f"  event at t={now - t_start:.1f}s: {ev.action} {ev.count} → "
                          f"{len(stack.origins)} origin task(s)")
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
        sources = ensure_catalog(scenario.stack.catalog_images, options.cache_dir, quiet)
        keys_file = sources / "catalog.txt"
    table = _loadtest_table(scenario, keys_file)
    scenario_file = out / "loadtest-scenario.toml"
    scenario_file.write_text(dump_toml(table))
    phases = _phases(table, scenario_file, scenario.duration, scenario.peak_rps)

    prescaled = None
    if embedded and sources is not None and scenario.stack.shared_derivatives:
        prescaled = run_prescale(scenario, scenario_file, sources, out, quiet)

    stack: _Stack | None = None
    started = time.time()
    with Processes(out / "stack") as procs:
        if embedded:
            assert sources is not None
            stack = _Stack(procs, scenario, out, sources, edge_config(scenario, out))
            _say(quiet, f"starting {scenario.stack.origin_processes} origin task(s) and the edge "
                        f"({scenario.stack.pops} POPs)…")
            for _ in range(scenario.stack.origin_processes):
                stack.start_origin()
            stack.start_edge()
            host = stack.edge_url
        else:
            host = str(options.target).rstrip("/")
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
        real_logs=options.logs, what_if=options.what_if, started=started, finished=finished,
        target_url=options.target, prescaled=prescaled, load_began=load_began,
        edge_config=stack.edge_config if stack else None,
    )
    files = write_report(summary, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not quiet:
        print_verdict(summary, out)
    return RehearsalResult(out, summary, 0 if summary["passed"] else 1, files)
