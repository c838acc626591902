"""The chart library changes nothing in its host: rcParams, the backend and pyplot's open figures.

Each check runs in a fresh interpreter (a subprocess) because matplotlib's state is per process and
pytest's process may already hold charts from other tests. The host picks a backend the library must not
override (``svg``), sets a style of its own and keeps a pyplot figure open; then every chart kind is drawn
in both forms (PNG file and Figure).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from edgeproof.analytics.report import charts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: every chart kind with the options that take a different drawing path
_DRAW_EVERY_KIND = r'''
from datetime import datetime, timedelta
from io import BytesIO

xs = [datetime(2026, 11, 16) + timedelta(hours=h) for h in range(24)]
secs = list(range(0, 300, 10))
KINDS = [
    ("time_series", (xs, {"hit rate": [0.95 + h / 1000 if h != 5 else None for h in range(24)]}),
     dict(title="Hourly", percent=True, target=0.96, right={"requests/h": [100 + h for h in range(24)]},
          gaps=[(xs[5], xs[6])])),
    ("time_series", (secs, {"p99": [0 if s < 30 else s * 2 for s in secs]}),
     dict(title="Latency", log_y=True, step=True, phases=[(0, 100, "baseline"), (100, 200, "peak")],
          markers=[(150, "scale out")], right={"hit": [0.9] * len(secs)}, right_percent=True, right_target=0.96)),
    ("bars", (["IAD", "FRA", "NRT"], [0.97, 0.91, None]),
     dict(title="POP", percent=True, target=0.96, highlight="IAD", missing=["NRT"])),
    ("bars", ([f"label-{i:02d}" for i in range(10)], [float(i) for i in range(10)]), dict(title="Many")),
    ("bars", (["image/webp", "image/jpeg"], [0.97, 0.5]), dict(title="CT", percent=True, target=0.96,
                                                               horizontal=True)),
    ("grouped_bars", (["p50", "p99"], {"hit": [3, 9], "miss": [80, 400]}), dict(title="Latency", log_y=True)),
    ("stacked_bars", ([f"11-{d}" for d in range(10, 20)], {"cache": [5.0] * 10, "origin": [1.0] * 10}),
     dict(title="Bytes")),
    ("stacked_bars", (["passthrough", "aggressive"], {"cold": [10, 10], "fragmented": [50, 0]}),
     dict(title="Misses", horizontal=True)),
]


def draw_every_kind(out):
    """Import the library, then draw both forms of every kind: {file name: PNG bytes}.

    The Figure form is rendered by the host's own ``savefig``.
    """
    from edgeproof.analytics.report import charts

    pngs = {}
    for n, (kind, args, kwargs) in enumerate(KINDS):
        path = getattr(charts, kind)(out / f"{n}-{kind}.png", *args, **kwargs)
        pngs[path.name] = path.read_bytes()
        fig = getattr(charts, kind + "_figure")(*args, **kwargs)
        buf = BytesIO()
        fig.savefig(buf, format="png")
        pngs[f"{n}-{kind}-figure.png"] = buf.getvalue()
    return pngs
'''

_HOST = _DRAW_EVERY_KIND + r'''
import hashlib, json, sys
from pathlib import Path
import matplotlib

mode, out = sys.argv[1], Path(sys.argv[2])
report = {}
if mode == "host":
    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    matplotlib.rcParams.update({"font.size": 7, "axes.grid": False, "axes.spines.top": True,
                                "axes.titlesize": 20, "lines.linewidth": 4, "axes.prop_cycle":
                                matplotlib.cycler(color=["k"])})
    host_figure = plt.figure()
    before = dict(matplotlib.rcParams.copy())
    pngs = draw_every_kind(out)
    after = dict(matplotlib.rcParams.copy())
    report["changed"] = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    report["backend"] = matplotlib.get_backend()
    report["open_figures"] = plt.get_fignums()
    report["host_figure"] = host_figure.number
else:  # a host that never chose a backend nor imported pyplot
    pngs = draw_every_kind(out)
    report["pyplot_loaded"] = "matplotlib.pyplot" in sys.modules
report["sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in pngs.items()}
report["magic_ok"] = all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in pngs.values())
print(json.dumps(report))
'''


def _run_host(mode: str, out: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MPLCONFIGDIR")}
    env["MPLCONFIGDIR"] = str(out / "mplconfig")  # no user matplotlibrc, a private font cache
    proc = subprocess.run([sys.executable, "-c", _HOST, mode, str(out)], capture_output=True, text=True,
                          env=env, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_drawing_every_kind_leaves_the_hosts_rcparams_backend_and_figures(tmp_path: Path) -> None:
    host = _run_host("host", tmp_path)
    assert host["changed"] == [], f"rcParams changed by the chart library: {host['changed']}"
    assert host["backend"] == "svg"
    assert host["open_figures"] == [host["host_figure"]], "a chart was left open in pyplot (or the host's closed)"
    assert host["magic_ok"]


def test_charts_never_load_pyplot_and_ignore_the_hosts_style(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    (tmp_path / "styled").mkdir()
    bare = _run_host("bare", tmp_path / "bare")
    styled = _run_host("host", tmp_path / "styled")
    # importing and drawing never resolves a backend for a host that has not chosen one
    assert bare["pyplot_loaded"] is False
    assert bare["magic_ok"] and styled["magic_ok"]
    bare_sha = bare["sha256"]
    assert isinstance(bare_sha, dict) and len(bare_sha) == 16
    # a report PNG is the same in a host with its own style and backend as in a bare one ...
    assert styled["sha256"] == bare_sha
    # ... and a Figure rendered by the host's own savefig is that PNG too (drawn in the report style)
    for name, digest in bare_sha.items():
        if name.endswith("-figure.png"):
            assert digest == bare_sha[name.replace("-figure.png", ".png")], name


def test_figure_form_returns_an_unregistered_figure_or_none(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = charts.bars_figure(["IAD", "FRA"], [0.97, 0.91], title="POP", percent=True, target=0.96)
    assert isinstance(fig, Figure) and fig.get_axes()[0].get_title() == "POP"
    assert fig.canvas.manager is None  # not a pyplot figure: nothing to close, no window, no inline echo
    assert charts.bars_figure(["x"], [None], title="t") is None
    assert charts.time_series_figure([], {"a": []}, title="t") is None
    assert charts.stacked_bars_figure(["d"], {"cache": [0]}, title="t") is None
    assert charts.grouped_bars_figure([], {"hit": []}, title="t") is None
    path = charts.bars(tmp_path / "sub" / "pop.png", ["IAD", "FRA"], [0.97, 0.91], title="POP", percent=True,
                       target=0.96)
    assert path == tmp_path / "sub" / "pop.png" and path.read_bytes().startswith(PNG_MAGIC)
    # what IPython shows for the Figure when no inline backend formatter is registered: the report's PNG
    assert fig._repr_png_() == path.read_bytes()


def test_png_form_keeps_the_report_signature() -> None:
    for kind in ("time_series", "bars", "grouped_bars", "stacked_bars"):
        png, figure = getattr(charts, kind), getattr(charts, kind + "_figure")
        params = list(inspect.signature(png).parameters)
        assert params[0] == "path" and params[1:] == list(inspect.signature(figure).parameters), kind
        assert png.__name__ == kind and kind + "_figure" in (png.__doc__ or "")


def test_time_series_with_more_series_than_colours(tmp_path: Path) -> None:
    """A rehearsal with many origin tasks draws a line per task: more series than the palette has colours."""
    n = len(charts.PALETTE) + 3
    xs = list(range(5))
    path = charts.time_series(tmp_path / "many.png", xs, {f"task {i}": [float(i)] * 5 for i in range(n)},
                              title="many", right={"tasks": [1, 2, 3, 3, 2]}, right_label="tasks")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
