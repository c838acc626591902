"""``edgeproof loadtest …``: run scenarios under Locust (in a subprocess) and judge them by gates.

Never imports Locust: the run happens in ``python -m locust`` started by :mod:`edgeproof.loadtest.runner`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from edgeproof.errors import UsageError

__all__ = ["register"]

_OVERRIDES = ("flags that mirror a scenario key (--duration, --peak-rps, --gate, --replay-speed, --keys-file) "
              "override it, checked the same way; --gate is repeatable and replaces [gates] rules; a path given "
              "as a flag is relative to the current folder.")


def _flag_tables() -> dict[str, Any]:
    """The scenario tables whose settings are also ``run``/``show``/``verdict`` flags, with the flags'
    names (help, check and default stay the one declaration's)."""
    from edgeproof.loadtest.scenario import SETTINGS
    from edgeproof.loadtest.shapes import SHAPE_SETTINGS

    return {
        "shape": SHAPE_SETTINGS,
        "catalog": SETTINGS["catalog"],
        "gates": SETTINGS["gates"].with_flags(rules={"flag": "--gate", "metavar": "EXPR"}),
        "replay": SETTINGS["replay"].with_flags(speed="--replay-speed"),
    }


def _scenario_help() -> str:
    """Every key of a scenario file, for the ``run`` epilog (docs/loadtest.md has the same)."""
    from edgeproof.loadtest.scenario import SETTINGS
    from edgeproof.loadtest.shapes import PHASE_SETTINGS, SHAPE_SETTINGS, STAGE_SETTINGS

    tables = [*SETTINGS.values(), SHAPE_SETTINGS, PHASE_SETTINGS, STAGE_SETTINGS]
    return "scenario files (docs/loadtest.md):\n" + "\n\n".join(t.help_text() for t in tables)


def _overrides(args: argparse.Namespace, tables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The flags given that override scenario keys, by table, checked by their tables."""
    return {name: t.from_args(args) for name, t in tables.items()}


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="loadtest_command", metavar="SUBCOMMAND")
    tables = _flag_tables()

    p = sub.add_parser("run", help="run a scenario headless under Locust and print the verdict",
                       description="Run a scenario (open-model arrival rate) under Locust in a subprocess, "
                                   "record every request to Parquet, then evaluate the gates. Exit code 1 "
                                   "when a gate fails.",
                       epilog=textwrap.fill(_OVERRIDES, 100) + "\n\n" + _scenario_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="spike", help="built-in name (see 'scenarios') or a TOML path")
    p.add_argument("--host", required=True, help="target base URL, e.g. http://127.0.0.1:8080")
    tables["shape"].add_arguments(p, only=("duration", "peak_rps"), defaults=False)
    p.add_argument("--out", help="output folder (default loadtest-runs/<timestamp>)")
    p.add_argument("--processes", type=int, default=0,
                   help="Locust worker processes on this machine (one schedule lane each); -1 = one per core")
    tables["gates"].add_arguments(p, only=("rules",), defaults=False)
    p.add_argument("--replay", action="append", metavar="LOG",
                   help="replay this CloudFront log's requests (file, folder or s3://; repeatable)")
    tables["replay"].add_arguments(p, only=("speed",), defaults=False)
    tables["catalog"].add_arguments(p, only=("keys_file",), defaults=False)
    p.add_argument("--json", action="store_true", help="print the verdict JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)

    s = sub.add_parser("scenarios", help="list the built-in scenarios")
    s.set_defaults(func=_scenarios)

    sh = sub.add_parser("show", help="print a scenario's phases and sample URLs (no traffic sent)")
    sh.add_argument("scenario", nargs="?", default="spike")
    tables["shape"].add_arguments(sh, only=("duration", "peak_rps"), defaults=False)
    sh.add_argument("--sample", type=int, default=10, help="how many example requests to print")
    tables["catalog"].add_arguments(sh, only=("keys_file",), defaults=False)
    sh.set_defaults(func=_show)

    v = sub.add_parser("verdict", help="evaluate gates over recorded rows (e.g. parts gathered from several hosts)")
    v.add_argument("paths", nargs="+", help="run folders (with records/) or part files")
    tables["gates"].add_arguments(v, only=("rules",), defaults=False)
    v.add_argument("--out", help="folder for verdict.json and whose run.json gives scope/gates (default: first path)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_verdict)

    c = sub.add_parser("compare", help="two run folders side by side (A, B, Δ); exit 1 when B regressed",
                       description="Compare two 'loadtest run' folders: every gate value, the hit rates, p99 by "
                                   "class (hit / miss) and 503s side by side (A, B, Δ). Exit 1 when B's hit rate "
                                   "fell or a p99 rose beyond the thresholds, 2 when a folder is unreadable or "
                                   "the runs are of different kinds. See docs/loadtest.md.")
    from edgeproof.loadtest.compare import add_arguments

    add_arguments(c)
    c.set_defaults(func=_compare)

    r = sub.add_parser("prepare-traffic", aliases=["prepare-replay"],
                       help="read CloudFront logs into a compact traffic file the locustfile sends again")
    r.add_argument("logs", nargs="+")
    r.add_argument("--out", required=True, help="replay file to write (.parquet)")
    r.add_argument("--max-requests", type=int, default=2_000_000)
    r.set_defaults(func=_prepare)


def _print_verdict(verdict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        t = verdict.totals
        print(f"requests {t.get('requests')}  sent {t.get('sent')}  dropped {t.get('dropped')}  "
              f"late {t.get('late')}  errors {t.get('errors')}  hit_rate {t.get('hit_rate')}")
        print(verdict.table())


def _run(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.runner import run

    if args.processes < -1:
        raise UsageError("--processes must be -1, 0 or a positive count")
    given = _overrides(args, _flag_tables())
    shape = given["shape"]
    verdict = run(args.scenario, args.host, shape.get("duration"), shape.get("peak_rps"), args.out, args.processes,
                  gates=given["gates"].get("rules"), replay=args.replay, replay_speed=given["replay"].get("speed"),
                  keys_file=given["catalog"].get("keys_file"), **({"events_callback": None} if args.quiet else {}))
    _print_verdict(verdict, args.json)
    return verdict.exit_code


def _scenarios(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.scenario import list_builtin_scenarios, load_scenario

    for name in list_builtin_scenarios():
        sc = load_scenario(name)
        print(f"{name:<10} {sc.description}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import dataclasses

    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.loadtest.shapes import build_shape
    from edgeproof.loadtest.workload import Workload

    given = _overrides(args, _flag_tables())
    sc = load_scenario(args.scenario)
    keys_file = given["catalog"].get("keys_file")
    if keys_file:
        sc = dataclasses.replace(sc, catalog=dataclasses.replace(sc.catalog, keys_file=str(Path(keys_file).resolve())))
    shape = build_shape(sc.shape, where=sc.source, **given["shape"])
    print(f"scenario {sc.name}: {sc.description}")
    print(f"shape {shape.kind}: {shape.duration:.1f} s, peak {shape.peak_rps:.1f} req/s, "
          f"{shape.expected(0, shape.duration):.0f} requests; scored phases: {', '.join(shape.scored)}")
    for name, start, end in shape.phases():
        print(f"  {name:<10} {start:7.1f} → {end:7.1f} s   {shape.rate(start):7.1f} → "
              f"{shape.rate(max(end - 1e-6, start)):7.1f} req/s")
    spike = next((s for n, s, _ in shape.phases() if n in shape.scored), 0.0) if shape.kind == "spike" else 0.0
    wl = Workload(sc, spike_start=spike)
    for i in range(args.sample):
        req = wl.next(spike + i)
        print(f"  {req.url}  [{req.role}, pop {req.pop}, {req.headers['User-Agent'][:40]}]")
    return 0


def _verdict(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.config import RunConfig
    from edgeproof.loadtest.runner import judge

    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    if out.name == "records" and not (out / "run.json").is_file():
        out = out.parent
    config = RunConfig.read(out / "run.json") if (out / "run.json").is_file() else None
    verdict = judge(out, _overrides(args, _flag_tables())["gates"].get("rules"), config=config, records=args.paths)
    _print_verdict(verdict, args.json)
    return verdict.exit_code


def _compare(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.compare import load_loadtest_run, run_command

    return run_command(args, load_loadtest_run)


def _prepare(args: argparse.Namespace) -> int:
    from edgeproof.loadtest.traffic import prepare_traffic

    n = prepare_traffic(args.logs, args.out, max_requests=args.max_requests)
    print(f"wrote {n} requests to {args.out}", file=sys.stderr)
    return 0
