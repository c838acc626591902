"""The report document model and chart helpers: self-contained HTML, Markdown, PNG charts."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeproof.analytics.report import charts
from edgeproof.analytics.report.document import Document, fmt_bytes, fmt_pct
from edgeproof.analytics.report.store import list_json, publish_dir, read_json, write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _doc(tmp_path: Path) -> Document:
    xs = [datetime(2026, 11, 16, tzinfo=UTC) + timedelta(hours=h) for h in range(24)]
    line = charts.time_series(tmp_path / "hourly.png", xs, {"hit rate": [0.95 + h / 1000 for h in range(24)]},
                              title="Hourly", percent=True, target=0.96,
                              phases=[(xs[3], xs[6], "ramp"), (xs[6], xs[9], "peak")])
    bar = charts.bars(tmp_path / "pop.png", ["IAD", "FRA", "NRT"], [0.97, 0.91, None], title="POP",
                      percent=True, target=0.96)
    doc = Document("Weekly <report>", subtitle="2026-W47")
    doc.verdict(False, "Below target", "95.0% < 96.0%")
    doc.metrics([("hit rate", fmt_pct(0.95)), ("bytes", fmt_bytes(3 * 1024**3))])
    doc.heading("Daily")
    doc.table(["day", "hit rate", "requests"], [["2026-11-16", "95.00%", 1234]], caption="per day",
              row_classes=["fail"])
    doc.figure(line, "hourly hit rate")
    doc.figure(bar, "hit rate per POP")
    doc.figure(None, "skipped: no data")
    return doc


def test_html_is_self_contained_and_md_links_pngs(tmp_path: Path) -> None:
    html_path, md_path = _doc(tmp_path).write(tmp_path)
    html = html_path.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2
    for data in images:
        assert base64.b64decode(data).startswith(PNG_MAGIC)
    assert "Weekly &lt;report&gt;" in html  # escaped
    assert 'class="verdict fail"' in html and "<tr class=fail>" in html
    md = md_path.read_text()
    assert "![hourly hit rate](hourly.png)" in md and "![hit rate per POP](pop.png)" in md
    assert "> **FAIL: Below target**" in md
    assert "| 2026-11-16 | 95.00% | 1,234 |" in md


def test_charts_skip_empty_data(tmp_path: Path) -> None:
    assert charts.bars(tmp_path / "a.png", ["x"], [None], title="t") is None
    assert charts.time_series(tmp_path / "b.png", [], {"a": []}, title="t") is None
    assert charts.stacked_bars(tmp_path / "c.png", ["d"], {"cache": [0], "origin": [0]}, title="t") is None
    out = charts.grouped_bars(tmp_path / "d.png", ["p50", "p99"], {"hit": [3, 9], "miss": [80, 400]}, title="t")
    assert out is not None and out.read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "a.png").exists()


def test_local_store_roundtrip(tmp_path: Path) -> None:
    assert read_json(tmp_path / "hist", "2026-W46.json") is None
    write_json(tmp_path / "hist", "2026-W46.json", {"hit_rate": 0.97})
    assert read_json(tmp_path / "hist", "2026-W46.json") == {"hit_rate": 0.97}
    assert list_json(tmp_path / "hist") == ["2026-W46.json"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "report.html").write_text("x")
    assert publish_dir(tmp_path / "src", str(tmp_path / "pub")) == [str(tmp_path / "pub" / "report.html")]


def test_s3_store_roundtrip(s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    hist = f"s3://{s3_bucket}/history"
    assert read_json(hist, "2026-W46.json") is None
    write_json(hist, "2026-W46.json", {"hit_rate": 0.97})
    assert read_json(hist, "2026-W46.json") == {"hit_rate": 0.97}
    assert list_json(hist) == ["2026-W46.json"]
    (tmp_path / "report.html").write_text("<html></html>")
    written = publish_dir(tmp_path, f"s3://{s3_bucket}/reports/2026-W47")
    assert written == [f"s3://{s3_bucket}/reports/2026-W47/report.html"]
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key="reports/2026-W47/report.html")
    assert head["ContentType"].startswith("text/html")


def test_no_verdict_banner_and_no_data_slots(tmp_path: Path) -> None:
    """An amber banner for "no verdict" (incomplete data) and charts that keep a slot for a gap."""
    doc = Document("Weekly")
    doc.verdict(None, "INCOMPLETE: no verdict", "No log data for 24 of 168 hours.")
    doc.table(["day", "requests"], [["2026-11-18", "no log data"]], row_classes=["gap"])
    html = doc.to_html()
    assert 'class="verdict warn"' in html and "<tr class=gap>" in html and "tr.gap td" in html
    md = doc.to_markdown()
    assert "> **INCOMPLETE: no verdict** No log data for 24 of 168 hours." in md and "PASS" not in md
    days = ["2026-11-16", "2026-11-17", "2026-11-18"]
    with_gap = charts.bars(tmp_path / "gap.png", days, [0.97, 0.98, None], title="t", percent=True, target=0.96,
                           missing=["2026-11-18"])
    without = charts.bars(tmp_path / "plain.png", days, [0.97, 0.98, None], title="t", percent=True, target=0.96)
    assert with_gap is not None and without is not None and with_gap.read_bytes() != without.read_bytes()
    # a chart of nothing but gaps has nothing to draw
    assert charts.bars(tmp_path / "none.png", days[:1], [None], title="t", missing=days[:1]) is None
    xs = [datetime(2026, 11, 16, tzinfo=UTC) + timedelta(hours=h) for h in range(48)]
    series = [None if 20 <= h < 30 else 0.97 for h in range(48)]
    line = charts.time_series(tmp_path / "h.png", xs, {"hit rate": series}, title="t", percent=True,
                              gaps=[(xs[20], xs[30])])
    assert line is not None and line.read_bytes().startswith(PNG_MAGIC)
