"""The analyst notebooks run top to bottom, headless (nbclient, the venv's python3 kernel), and show their charts.

A chart cell is found by what it calls: the chart library (``charts.<kind>_figure(...)``), ``display(fig)``,
or pandas / pyplot drawing (``.plot``, ``plt.``). Each must leave one ``image/png`` output per chart it
draws: under ``matplotlib.use('Agg')`` (what the notebooks once did) a cell drew into nothing.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from _rehearsal_helpers import small_rehearsal
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: a cell that draws: the chart library, a displayed figure, or pandas / pyplot plotting
_DRAWS = re.compile(r"\bcharts\.\w+\(|\bdisplay\(\s*fig\b|\.plot\b|\bplt\.")
#: one chart per call of the library's Figure form
_CHART_CALL = re.compile(r"\bcharts\.\w+_figure\(")


def _run(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # committed stripped: no outputs, no execution counts; and no backend forced on Jupyter
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not stripped"
            assert "matplotlib.use(" not in cell.source, f"{name}: forces a backend, Jupyter shows no chart"
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _check_charts(nb: nbformat.NotebookNode, name: str, chart_cells: int) -> None:
    """No cell errored, and every chart cell displayed a PNG for each chart it draws."""
    drawing = []
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name} cell {n}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        if not _DRAWS.search(cell.source):
            continue
        drawing.append(n)
        pngs = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        wanted = max(1, len(_CHART_CALL.findall(cell.source)))
        assert len(pngs) >= wanted, f"{name} cell {n} drew {wanted} chart(s) but shows {len(pngs)} image(s)"
        for png in pngs:
            assert base64.b64decode(png).startswith(PNG_MAGIC), f"{name} cell {n}: not a PNG"
    assert len(drawing) == chart_cells, f"{name}: chart cells {drawing}, expected {chart_cells}"


def test_01_explore_cloudfront_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROOF_LOGS", raising=False)
    nb = _run("01-explore-cloudfront-logs.ipynb", tmp_path)
    _check_charts(nb, "01", chart_cells=2)
    text = _text(nb)
    assert "hit rate" in text and "2026-11-16" in text


def test_02_compare_strategies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROOF_LOGS", raising=False)
    nb = _run("02-compare-normalization-strategies.ipynb", tmp_path)
    _check_charts(nb, "02", chart_cells=2)
    text = _text(nb)
    assert "aggressive" in text and "fragmented" in text


@pytest.mark.slow
def test_03_review_spike_rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, proc = small_rehearsal()
    assert (out / "summary.json").is_file(), proc.stderr[-2000:]
    monkeypatch.setenv("EDGEPROOF_REHEARSAL", str(out))
    nb = _run("03-review-spike-rehearsal.ipynb", tmp_path)
    _check_charts(nb, "03", chart_cells=2)
    text = _text(nb)
    assert "test-bad-strategy with strategy passthrough" in text
