"""The analyst notebooks run top to bottom, headless (nbclient, the venv's python3 kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from _rehearsal_helpers import small_rehearsal
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _run(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # committed stripped: no outputs, no execution counts
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not stripped"
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_01_explore_cloudfront_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROOF_LOGS", raising=False)
    text = _text(_run("01-explore-cloudfront-logs.ipynb", tmp_path))
    assert "hit rate" in text and "2026-11-16" in text


def test_02_compare_strategies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROOF_LOGS", raising=False)
    text = _text(_run("02-compare-normalization-strategies.ipynb", tmp_path))
    assert "aggressive" in text and "fragmented" in text


@pytest.mark.slow
def test_03_review_spike_rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, proc = small_rehearsal()
    assert (out / "summary.json").is_file(), proc.stderr[-2000:]
    monkeypatch.setenv("EDGEPROOF_REHEARSAL", str(out))
    text = _text(_run("03-review-spike-rehearsal.ipynb", tmp_path))
    assert "test-bad-strategy with strategy passthrough" in text
