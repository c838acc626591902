"""Matplotlib charts shared by the weekly and rehearsal reports and the analyst notebooks.

Why no pyplot: pyplot is process-wide state (the backend, the registry of open figures) and so are
``rcParams``; all three belong to the host (a notebook's inline backend, an analyst's script, a GUI). This
module used to call ``matplotlib.use("Agg")`` and ``rcParams.update(...)`` when imported, which switched the
host for good: a notebook that imported it showed no chart. So every chart is a plain
:class:`matplotlib.figure.Figure` (never registered with pyplot, nothing left open) whose drawing, layout
and rendering run inside :func:`matplotlib.rc_context` with matplotlib's defaults plus the report style.
Importing or calling this module leaves the host's rcParams, backend and open figures as they were, and a
chart looks the same whatever the host's style: a report PNG written from a notebook is the CLI's PNG.

Each chart kind comes in two forms with the same arguments:

- ``time_series(path, ...)``, ``bars(path, ...)``, ``grouped_bars(path, ...)``, ``stacked_bars(path, ...)``
  write one PNG and return its path (the reports);
- ``time_series_figure(...)``, ``bars_figure(...)``, ... return the Figure: a notebook displays it (the
  inline backend's formatter, or the Figure's own ``_repr_png_`` where none is registered), a script can
  ``savefig`` it.

Both return ``None`` when there is nothing to draw (so a report can skip an empty chart instead of showing
a blank frame). Rates are given as fractions (0..1) and drawn as percentages.
"""

from __future__ import annotations

import functools
import inspect
import io
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

import matplotlib
import matplotlib.dates as mdates
import matplotlib.style
from matplotlib.artist import setp
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = [
    "PALETTE",
    "Phase",
    "bars",
    "bars_figure",
    "grouped_bars",
    "grouped_bars_figure",
    "stacked_bars",
    "stacked_bars_figure",
    "time_series",
    "time_series_figure",
]

PALETTE = ["#2f5fb3", "#e07b39", "#3a9a5b", "#b3261e", "#7a4fb3", "#8c6d31", "#1a9bb3", "#d4a017"]
_TARGET = "#b3261e"
_PHASE_COLOURS = {"baseline": "#f2f2f2", "ramp": "#fff1d6", "peak": "#fde0dc", "hold": "#fde0dc",
                  "decay": "#e6f0fb"}
#: the report style, applied on top of matplotlib's defaults only while a chart is drawn or saved
_STYLE = {"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
          "grid.alpha": 0.3, "axes.titleweight": "bold", "axes.titlesize": 11}

#: (start, end, name): a shaded span on a time axis (x values of the same kind as the series)
Phase = tuple[Any, Any, str]
#: how a span or a slot without data is drawn: hatched grey, so it cannot pass for a low or a zero
_GAP = {"facecolor": "#eceef1", "edgecolor": "#9aa1ad", "hatch": "///", "linewidth": 0}
_GAP_TEXT = "#5d6675"

_pct = FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%")
_pct_fine = FuncFormatter(lambda v, _pos: f"{v * 100:.1f}%")

_P = ParamSpec("_P")


@contextmanager
def _styled() -> Iterator[None]:
    """matplotlib's defaults plus :data:`_STYLE`, restored to the host's rcParams on exit.

    The defaults (not the host's current values) are the base so that a chart does not change with the
    host's style; ``matplotlib.style.use("default")`` leaves out the keys that are not style (the backend,
    ``interactive``), and ``rc_context`` never restores or touches the backend.
    """
    with matplotlib.rc_context():
        matplotlib.style.use(["default", _STYLE])
        yield


class _Chart(Figure):
    """A Figure that renders in the report style wherever it is drawn: a PNG file or a notebook's display.

    Ticks and their labels are made lazily, at draw time, from the rcParams of that moment; drawing inside
    :func:`_styled` keeps a notebook's inline display identical to the report's PNG.
    """

    def draw(self, renderer: Any) -> None:
        with _styled():
            super().draw(renderer)

    def _repr_png_(self) -> bytes:
        """The report PNG, for IPython's display when no inline backend has registered a Figure formatter.

        A notebook that never imports pyplot (charts do not) has no such formatter even under ipykernel's
        default inline backend, and would print ``<Figure size 1000x360 ...>`` instead of the chart.
        """
        buf = io.BytesIO()
        with _styled():
            self.savefig(buf, format="png")
        return buf.getvalue()


def _new(figsize: tuple[float, float] = (10, 3.6)) -> tuple[Figure, Any]:
    fig = _Chart(figsize=figsize, dpi=100)
    ax = fig.subplots()
    return fig, ax


def _figure_kind(draw: Callable[_P, Figure | None]) -> Callable[_P, Figure | None]:
    """A chart kind's drawing run in the report style and laid out: the form that returns the Figure."""

    @functools.wraps(draw)
    def figure(*args: _P.args, **kwargs: _P.kwargs) -> Figure | None:
        with _styled():
            fig = draw(*args, **kwargs)
            if fig is not None:
                fig.tight_layout()
        return fig

    return figure


def _png_kind(figure: Callable[_P, Figure | None]) -> Callable[Concatenate[str | Path, _P], Path | None]:
    """The form of a chart kind that the reports use: draw it, write it to ``path`` as PNG, return the path."""
    name = figure.__name__.removesuffix("_figure")

    def write(path: str | Path, /, *args: _P.args, **kwargs: _P.kwargs) -> Path | None:
        fig = figure(*args, **kwargs)
        return None if fig is None else _save(fig, path)

    sig = inspect.signature(figure)
    path_param = inspect.Parameter("path", inspect.Parameter.POSITIONAL_ONLY, annotation="str | Path")
    write.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[path_param, *sig.parameters.values()], return_annotation="Path | None")
    write.__name__ = write.__qualname__ = name
    write.__module__ = figure.__module__
    write.__doc__ = (f"Write :func:`{figure.__name__}` to ``path`` as a PNG and return ``path`` (made with its "
                     f"parents), or ``None`` when there is nothing to draw.\n\n{figure.__doc__ or ''}")
    return write


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _styled():
        fig.savefig(out, format="png")
    return out


def _rate_axis(ax: Any, values: Sequence[float | None], target: float | None) -> None:
    finite = [v for v in values if v is not None]
    if target is not None:
        finite.append(target)
    low = min(finite) if finite else 0.0
    # zoom in when everything is high (hit rates live near the top), keep 0 otherwise
    bottom = 0.0 if low < 0.5 else max(0.0, low - (1.0 - low) * 0.6 - 0.01)
    ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.04)
    ax.yaxis.set_major_formatter(_pct_fine if bottom > 0.8 else _pct)


def _target_line(ax: Any, target: float | None) -> None:
    if target is not None:
        ax.axhline(target, color=_TARGET, linestyle="--", linewidth=1.2, label=f"target {target * 100:.1f}%")


@_figure_kind
def time_series_figure(
    x: Sequence[Any],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str = "",
    percent: bool = False,
    target: float | None = None,
    phases: Sequence[Phase] = (),
    right: Mapping[str, Sequence[float | None]] | None = None,
    right_label: str = "",
    right_percent: bool = False,
    right_target: float | None = None,
    log_y: bool = False,
    step: bool = False,
    markers: Sequence[tuple[Any, str]] = (),
    gaps: Sequence[tuple[Any, Any]] = (),
) -> Figure | None:
    """Lines over time (datetimes or seconds) with optional shaded phases, event markers and a second y axis.

    With ``log_y``, values ≤ 0 are drawn at the axis floor (0.5) instead of vanishing. ``gaps`` are
    ``(start, end)`` spans without data, drawn hatched grey and labelled "no data" (give the series
    ``None`` there so the lines break instead of bridging the hole).
    """
    if not len(x) or not any(any(v is not None for v in s) for s in series.values()):
        return None
    fig, ax = _new()
    for name_start_end in phases:
        start, end, name = name_start_end
        colour = next((c for key, c in _PHASE_COLOURS.items() if key in name.lower()), "#f4f4f4")
        ax.axvspan(start, end, color=colour, alpha=0.9, zorder=0, linewidth=0)
        ax.text(start, 1.0, f" {name}", transform=ax.get_xaxis_transform(), va="top", ha="left",
                fontsize=8, color="#5d6675")
    for n, (start, end) in enumerate(gaps):
        ax.axvspan(start, end, zorder=0, label="no data" if n == 0 else "_gap", **_GAP)
        ax.text(start, 0.98, " no data", transform=ax.get_xaxis_transform(), va="top", ha="left",
                fontsize=8, color=_GAP_TEXT, fontweight="bold")
    colours = itertools.cycle(PALETTE)  # more series than colours: they repeat, never run out
    drawn = []
    for at, label in markers:
        ax.axvline(at, color="#444", linestyle=":", linewidth=1.1)
        ax.text(at, 0.02, f" {label}", transform=ax.get_xaxis_transform(), rotation=90, va="bottom",
                ha="right", fontsize=8, color="#444")
    for name, values in series.items():
        ys = [float("nan") if v is None else (max(v, 0.5) if log_y else v) for v in values]
        kw = {"drawstyle": "steps-post"} if step else {}
        drawn += ax.plot(x, ys, label=name, color=next(colours), linewidth=1.6, **kw)
    if percent:
        _rate_axis(ax, [v for s in series.values() for v in s], target)
    _target_line(ax, target)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if right:
        ax2 = ax.twinx()
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        for name, values in right.items():
            ys = [float("nan") if v is None else v for v in values]
            drawn += ax2.plot(x, ys, label=name, color=next(colours), linewidth=1.6)
        if right_percent:
            _rate_axis(ax2, [v for s in right.values() for v in s], right_target)
        if right_target is not None:
            drawn.append(ax2.axhline(right_target, color=_TARGET, linestyle="--", linewidth=1.2,
                                     label=f"target {right_target * 100:.1f}%"))
        ax2.set_ylabel(right_label)
    handles = drawn + [h for h in ax.get_lines() if h not in drawn and not h.get_label().startswith("_")]
    handles += [p for p in ax.patches if p.get_label() == "no data"]
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.9)
    if len(x) and hasattr(x[0], "year"):
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    return fig


@_figure_kind
def bars_figure(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    ylabel: str = "",
    percent: bool = False,
    target: float | None = None,
    annotate: bool = True,
    horizontal: bool = False,
    highlight: str | None = None,
    missing: Sequence[str] = (),
) -> Figure | None:
    """One bar per label; bars under ``target`` are drawn in red, ``highlight`` in green.

    Labels in ``missing`` (no data, e.g. a day whose logs are absent) keep their slot as a hatched grey
    bar marked "no data" instead of silently disappearing from the axis (vertical bars only).
    """
    gap_labels = set(missing) if not horizontal else set()
    slots = [(lab, v) for lab, v in zip(labels, values, strict=True) if v is not None or lab in gap_labels]
    pairs = [(i, lab, float(v)) for i, (lab, v) in enumerate(slots) if v is not None]
    if not pairs:
        return None
    labs = [lab for lab, _ in slots]
    xs = [i for i, _, _ in pairs]
    vals = [v for _, _, v in pairs]
    height = max(3.0, 0.35 * len(labs) + 1.2) if horizontal else 3.6
    fig, ax = _new((10, height))
    colours = []
    for _, lab, v in pairs:
        if highlight is not None and lab == highlight:
            colours.append(PALETTE[2])
        elif target is not None and v < target:
            colours.append(PALETTE[3])
        else:
            colours.append(PALETTE[0])
    if horizontal:
        rects = ax.barh([lab for _, lab, _ in pairs], vals, color=colours)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        if target is not None:
            ax.axvline(target, color=_TARGET, linestyle="--", linewidth=1.2, label=f"target {target * 100:.1f}%")
            ax.legend(loc="lower right", fontsize=8)
        if percent:
            ax.set_xlim(0, 1.08)
            ax.xaxis.set_major_formatter(_pct)
    else:
        rects = ax.bar(xs, vals, color=colours)
        ax.set_xticks(range(len(labs)), labs)
        ax.grid(axis="x", visible=False)
        if percent:
            _rate_axis(ax, vals, target)
        bottom, top = ax.get_ylim()
        for n, i in enumerate(i for i, (_, v) in enumerate(slots) if v is None):
            ax.bar(i, top - bottom, bottom=bottom, label="no data" if n == 0 else "_gap", **_GAP)
            ax.text(i, bottom + (top - bottom) / 2, "no data", rotation=90, ha="center", va="center",
                    fontsize=9, color=_GAP_TEXT, fontweight="bold")
        ax.set_ylim(bottom, top)
        _target_line(ax, target)
        if target is not None or len(slots) > len(pairs):
            ax.legend(loc="lower right", fontsize=8)
        if len(labs) > 8 or max(len(lab) for lab in labs) > 10:
            setp(ax.get_xticklabels(), rotation=30, ha="right")
    if annotate:
        fmt = (lambda v: f"{v * 100:.1f}%") if percent else (lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.3g}")
        ax.bar_label(rects, labels=[fmt(v) for v in vals], fontsize=8, padding=2)
    ax.set_title(title)
    if horizontal:
        ax.set_xlabel(ylabel)
    else:
        ax.set_ylabel(ylabel)
    return fig


@_figure_kind
def grouped_bars_figure(
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str = "",
    log_y: bool = False,
) -> Figure | None:
    """Side-by-side bars: one cluster per label, one bar per group."""
    if not labels or not any(any(v is not None for v in g) for g in groups.values()):
        return None
    fig, ax = _new()
    n = max(len(groups), 1)
    width = 0.8 / n
    for i, (name, values) in enumerate(groups.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        vals = [0.0 if v is None else float(v) for v in values]
        rects = ax.bar(xs, vals, width=width, label=name, color=PALETTE[i % len(PALETTE)])
        ax.bar_label(rects, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.2g}" for v in vals], fontsize=7, padding=2)
    ax.set_xticks(range(len(labels)), labels)
    ax.grid(axis="x", visible=False)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return fig


@_figure_kind
def stacked_bars_figure(
    labels: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "",
    horizontal: bool = False,
) -> Figure | None:
    """Stacked bars (e.g. bytes from cache vs origin per day, misses by class per strategy)."""
    if not labels or not any(any(v for v in s) for s in stacks.values()):
        return None
    fig, ax = _new((10, max(3.0, 0.4 * len(labels) + 1.4)) if horizontal else (10, 3.6))
    base = [0.0] * len(labels)
    for i, (name, values) in enumerate(stacks.items()):
        vals = [float(v or 0) for v in values]
        if horizontal:
            ax.barh(labels, vals, left=base, label=name, color=PALETTE[i % len(PALETTE)])
        else:
            ax.bar(labels, vals, bottom=base, label=name, color=PALETTE[i % len(PALETTE)])
        base = [b + v for b, v in zip(base, vals, strict=True)]
    if horizontal:
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(ylabel)
    else:
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(ylabel)
        if len(labels) > 8:
            setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


time_series = _png_kind(time_series_figure)
bars = _png_kind(bars_figure)
grouped_bars = _png_kind(grouped_bars_figure)
stacked_bars = _png_kind(stacked_bars_figure)
