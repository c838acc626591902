"""A small report document model rendered to self-contained HTML and to Markdown.

A report is a list of blocks (headings, paragraphs, a verdict banner, tables, figures) built once and
rendered twice: :meth:`Document.to_html` embeds every PNG figure as a base64 ``data:`` URI so that the
HTML file stands alone (mail it, publish it to S3, open it offline); :meth:`Document.to_markdown`
links the PNGs by their file name (they sit next to ``report.md``).

Both the weekly hit-rate report and the rehearsal report use this module.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Document", "Figure", "Table", "Banner", "fmt_ms", "fmt_pct", "fmt_count", "fmt_bytes", "fmt_delta_pp"]


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """``0.9612`` → ``96.12%``; None → ``–``."""
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def fmt_delta_pp(value: float | None) -> str:
    """A difference of two rates in percentage points, signed: ``+1.20 pp``."""
    return "–" if value is None else f"{value * 100:+.2f} pp"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def fmt_count(value: float | int | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_bytes(value: float | int | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(slots=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str | None = None
    #: per-row CSS class for HTML ("pass", "fail", "gap" (no data) or ""), same length as rows when given
    row_classes: Sequence[str] | None = None


@dataclass(slots=True)
class Figure:
    path: Path
    caption: str


@dataclass(slots=True)
class Banner:
    """The verdict banner of a report (the verdict itself is the gates' :class:`edgeproof.loadtest.gates.Verdict`
    or the weekly report's MET/MISSED/INCOMPLETE): ``passed`` True (green), False (red) or None (amber: no verdict, e.g. incomplete data)."""

    passed: bool | None
    title: str
    detail: str = ""


@dataclass(slots=True)
class _Heading:
    text: str
    level: int


@dataclass(slots=True)
class _Paragraph:
    text: str
    muted: bool = False


@dataclass(slots=True)
class _Metrics:
    items: Sequence[tuple[str, str]]


Block = _Heading | _Paragraph | _Metrics | Table | Figure | Banner

_CSS = """
:root { --fg:#1d2330; --muted:#5d6675; --line:#e3e6eb; --bg:#f6f7f9; --ok:#1f7a4d; --okbg:#e7f5ee;
        --bad:#b3261e; --badbg:#fdecea; --warn:#8a5a00; --warnbg:#fff6dc; --accent:#2f5fb3; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 32px 60px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p { margin: 8px 0; }
p.muted, .subtitle { color: var(--muted); }
.subtitle { margin: 0 0 18px; }
.verdict { border-radius: 8px; padding: 14px 18px; margin: 16px 0 20px; border: 1px solid; }
.verdict.pass { background: var(--okbg); border-color: #b7e0c9; color: var(--ok); }
.verdict.fail { background: var(--badbg); border-color: #f3c0bb; color: var(--bad); }
.verdict.warn { background: var(--warnbg); border-color: #f0d48a; color: var(--warn); }
.verdict strong { font-size: 18px; display: block; }
.verdict span { color: var(--fg); }
.metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin: 12px 0; }
.metric { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.metric .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.metric .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 14px; }
caption { text-align: left; color: var(--muted); padding: 4px 0; caption-side: top; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td code { font-size: 12.5px; word-break: break-all; }
tr.pass td:first-child { border-left: 4px solid var(--ok); }
tr.fail td:first-child { border-left: 4px solid var(--bad); }
tr.fail td { background: #fff8f7; }
tr.gap td:first-child { border-left: 4px solid #9aa1ad; }
tr.gap td { background: repeating-linear-gradient(135deg, #f4f5f7 0 6px, #eceef1 6px 12px); color: var(--muted); }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        text = value.replace(",", "").replace("%", "").replace(" ms", "").replace(" pp", "").strip()
        for unit in (" B", " KiB", " MiB", " GiB", " TiB"):
            text = text.removesuffix(unit)
        try:
            float(text)
        except ValueError:
            return False
        return True
    return False


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@dataclass
class Document:
    """An ordered list of report blocks; add blocks, then render to HTML and Markdown."""

    title: str
    subtitle: str = ""
    footer: str = "Generated by edgeproof."
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Document:
        self.blocks.append(_Heading(text, level))
        return self

    def paragraph(self, text: str, *, muted: bool = False) -> Document:
        self.blocks.append(_Paragraph(text, muted))
        return self

    def metrics(self, items: Sequence[tuple[str, str]]) -> Document:
        """A row of headline numbers (label, formatted value)."""
        self.blocks.append(_Metrics(list(items)))
        return self

    def verdict(self, passed: bool | None, title: str, detail: str = "") -> Document:
        self.blocks.append(Banner(passed, title, detail))
        return self

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        caption: str | None = None,
        row_classes: Sequence[str] | None = None,
    ) -> Document:
        self.blocks.append(Table(list(columns), [list(r) for r in rows], caption, row_classes))
        return self

    def figure(self, path: str | Path | None, caption: str) -> Document:
        """A PNG chart; ``None`` (a chart with no data) is skipped."""
        if path is not None:
            self.blocks.append(Figure(Path(path), caption))
        return self

    # -- rendering ---------------------------------------------------------------------------------

    def to_html(self) -> str:
        esc = html.escape
        out = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(self.title)}</title>",
            f"<style>{_CSS}</style></head><body><main>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        if self.subtitle:
            out.append(f'<p class="subtitle">{esc(self.subtitle)}</p>')
        for block in self.blocks:
            out.append(self._html_block(block))
        out.append(f"<footer>{esc(self.footer)}</footer></main></body></html>")
        return "\n".join(out)

    @staticmethod
    def _html_block(block: Block) -> str:
        esc = html.escape
        if isinstance(block, _Heading):
            level = min(max(block.level, 2), 4)
            return f"<h{level}>{esc(block.text)}</h{level}>"
        if isinstance(block, _Paragraph):
            cls = ' class="muted"' if block.muted else ""
            return f"<p{cls}>{esc(block.text)}</p>"
        if isinstance(block, _Metrics):
            cells = "".join(
                f'<div class="metric"><div class="label">{esc(k)}</div><div class="value">{esc(v)}</div></div>'
                for k, v in block.items
            )
            return f'<div class="metrics">{cells}</div>'
        if isinstance(block, Banner):
            cls = "warn" if block.passed is None else "pass" if block.passed else "fail"
            detail = f"<span>{esc(block.detail)}</span>" if block.detail else ""
            return f'<div class="verdict {cls}"><strong>{esc(block.title)}</strong>{detail}</div>'
        if isinstance(block, Table):
            numeric = [
                bool(block.rows) and all(_is_number(r[i]) or r[i] is None for r in block.rows)
                for i in range(len(block.columns))
            ]
            head = "".join(
                f'<th{" class=num" if numeric[i] else ""}>{esc(c)}</th>' for i, c in enumerate(block.columns)
            )
            body = []
            for n, row in enumerate(block.rows):
                cls = block.row_classes[n] if block.row_classes and n < len(block.row_classes) else ""
                tds = []
                for i, value in enumerate(row):
                    text = esc(_cell(value))
                    if isinstance(value, str) and value.startswith("/"):
                        text = f"<code>{text}</code>"
                    tds.append(f'<td{" class=num" if numeric[i] else ""}>{text}</td>')
                body.append(f'<tr{f" class={cls}" if cls else ""}>{"".join(tds)}</tr>')
            caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
            return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            return (
                f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        raise TypeError(f"unknown block {block!r}")

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [f"_{self.subtitle}_", ""]
        for block in self.blocks:
            if isinstance(block, _Heading):
                out += ["#" * min(max(block.level, 2), 4) + " " + block.text, ""]
            elif isinstance(block, _Paragraph):
                out += [f"_{block.text}_" if block.muted else block.text, ""]
            elif isinstance(block, _Metrics):
                out += ["| " + " | ".join(k for k, _ in block.items) + " |",
                        "|" + "---|" * len(block.items),
                        "| " + " | ".join(v for _, v in block.items) + " |", ""]
            elif isinstance(block, Banner):
                mark = "" if block.passed is None else "PASS" if block.passed else "FAIL"
                title = block.title if block.title.upper().startswith(mark) else f"{mark}: {block.title}"
                out += [f"> **{title}**" + (f" {block.detail.strip()}" if block.detail else ""), ""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"**{block.caption}**", ""]
                out.append("| " + " | ".join(block.columns) + " |")
                out.append("|" + "".join("---:|" if _is_number(r) else "---|" for r in (
                    block.rows[0] if block.rows else ["x"] * len(block.columns))))
                for row in block.rows:
                    out.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
                out.append("")
            elif isinstance(block, Figure):
                out += [f"![{block.caption}]({block.path.name})", "", f"_{block.caption}_", ""]
        out.append(f"_{self.footer}_")
        return "\n".join(out) + "\n"

    def write(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``report.html`` and ``report.md`` into ``out_dir``; returns both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        html_path, md_path = out / f"{stem}.html", out / f"{stem}.md"
        html_path.write_text(self.to_html(), encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return html_path, md_path
