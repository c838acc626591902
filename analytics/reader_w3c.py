"""Tab-separated CloudFront logs: standard (legacy, W3C) files and real-time (Kinesis) records.

The input arrives as blocks of complete lines; each block is parsed by Arrow's CSV parser (tab
delimiter, no quoting, ``-`` → null, only the columns asked for), several blocks at once on several
threads when asked, and the results are merged in file order. Lines it cannot take (``#`` headers, wrong field count) go through a small
Python path that knows CloudFront's oddities:

- a ``#Fields`` header (spaces or tabs, trailing spaces) names the fields; a new header mid-file
  switches the layout (concatenated files);
- no header: the 33-field layout, or the historical layout that matches the line's field count
  (12, 15, 18, 19, 23, 24, 26 — each is a prefix of the 33 fields);
- a trailing tab (one empty extra field) is tolerated;
- a line with no tab at all is split on runs of whitespace when that gives the right count;
- anything else is a bad line, reported as ``file:line: reason``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analytics._arrow import scalar, to_numpy
from analytics.inputs import Block
from analytics.reader_convert import columns_needed, convert, field_column
from analytics.schema import LEGACY_FIELDS_33

__all__ = [
    "HISTORICAL_COUNTS",
    "REALTIME_FIELDS",
    "FileStats",
    "Header",
    "legacy_fields_for_count",
    "parse_header",
    "read_tsv",
    "realtime_fields_for_count",
]

#: field counts of the standard log's historical layouts (each a prefix of the 33 fields)
HISTORICAL_COUNTS: tuple[int, ...] = (12, 15, 18, 19, 23, 24, 26, 33)

#: AWS's canonical order of real-time log fields; a record carries a subset, in this order.
REALTIME_FIELDS: tuple[str, ...] = (
    "timestamp", "c-ip", "s-ip", "time-to-first-byte", "sc-status", "sc-bytes", "cs-method", "cs-protocol",
    "cs-host", "cs-uri-stem", "cs-bytes", "x-edge-location", "x-edge-request-id", "x-host-header",
    "time-taken", "cs-protocol-version", "c-ip-version", "cs-user-agent", "cs-referer", "cs-cookie",
    "cs-uri-query", "x-edge-response-result-type", "x-forwarded-for", "ssl-protocol", "ssl-cipher",
    "x-edge-result-type", "fle-encrypted-fields", "fle-status", "sc-content-type", "sc-content-len",
    "sc-range-start", "sc-range-end", "c-port", "x-edge-detailed-result-type", "c-country",
    "cs-accept-encoding", "cs-accept", "cache-behavior-path-pattern", "cs-headers", "cs-header-names",
    "cs-headers-count", "primary-distribution-id", "primary-distribution-dns-name", "origin-fbl",
    "origin-lbl", "asn",
)
_RT_2020 = tuple(f for f in REALTIME_FIELDS[:41] if f != "s-ip")  # the 40 fields offered at launch
_MAX_EXAMPLES = 10
_EMPTY = scalar("", pa.string())
_FALSE = scalar(False, pa.bool_())


def legacy_fields_for_count(n: int) -> tuple[str, ...] | None:
    """The historical standard-log layout with ``n`` fields, or None."""
    return LEGACY_FIELDS_33[:n] if n in HISTORICAL_COUNTS else None


def realtime_fields_for_count(n: int) -> tuple[str, ...] | None:
    """A real-time layout guessed from a record's field count: all 46, all but ``s-ip``, or the 2020 40."""
    for layout in (REALTIME_FIELDS, tuple(f for f in REALTIME_FIELDS if f != "s-ip"), _RT_2020):
        if len(layout) == n:
            return layout
    return None


@dataclass
class Header:
    """What the top of a tab-separated log says about its layout."""

    fields: tuple[str, ...] | None  # from #Fields, or None (headerless)
    sample: str | None  # the first data line


def parse_header(head: bytes) -> Header:
    """Parse the leading ``#`` lines and the first data line from the first bytes of a file."""
    fields: tuple[str, ...] | None = None
    sample = None
    for line in head.decode("utf-8", "replace").splitlines()[:200]:
        if line.startswith("#"):
            key, _, rest = line[1:].partition(":")
            if key.strip().lower() == "fields":
                fields = tuple(rest.split())
            continue
        if line.strip():
            sample = line
            break
    return Header(fields, sample)


@dataclass
class FileStats:
    """Per-file reading statistics (filled while reading)."""

    name: str
    format: str = ""
    fields: int | None = None
    rows: int = 0
    bad_lines: int = 0
    examples: list[str] = field(default_factory=list)
    error: str | None = None
    whitespace_lines: int = 0

    def bad(self, line: int | None, reason: str) -> None:
        self.bad_lines += 1
        if len(self.examples) < _MAX_EXAMPLES:
            where = f"{self.name}:{line}" if line is not None else self.name
            self.examples.append(f"{where}: {reason}")


@dataclass
class _Block:
    """What parsing one block of complete lines produced (merged into FileStats in file order)."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    bad: list[tuple[int | None, str]] = field(default_factory=list)  # block-relative line numbers
    whitespace_lines: int = 0
    lines: int = 0
    new_layout: _Layout | None = None  # a #Fields header in this block switched the layout


class _SlowLines:
    """Lines the fast parser refused, parsed by rules; grouped by layout into batches."""

    def __init__(self, out: _Block, fields: tuple[str, ...], headerless: bool, realtime: bool) -> None:
        self.out = out
        self.fields = fields
        self.headerless = headerless
        self.realtime = realtime
        self.handled: list[int] = []  # block-relative line numbers the handler saw (sorted)
        self.pending: list[tuple[int, str]] = []
        self.relayout: tuple[int, tuple[str, ...]] | None = None

    def handler(self, row: pacsv.InvalidRow) -> str:
        number = int(row.number) if row.number is not None else -1
        self.handled.append(number)
        text = row.text
        if not text.startswith("#"):
            self.pending.append((number, text))
        elif not self.realtime and self.relayout is None:
            key, _, rest = text[1:].partition(":")
            new = tuple(rest.split())
            if key.strip().lower() == "fields" and new and new != self.fields:
                self.relayout = (number, new)
        return "skip"

    def _layout(self, parts: list[str]) -> tuple[str, ...] | None:
        if len(parts) == len(self.fields):
            return self.fields
        if self.headerless and not self.realtime:
            return legacy_fields_for_count(len(parts))
        return None

    def split(self, number: int, text: str) -> tuple[tuple[str, ...], list[str]] | None:
        text = text.rstrip("\r\n")
        parts = text.split("\t")
        while len(parts) > len(self.fields) and parts[-1] == "":
            parts.pop()  # trailing tab(s)
        layout = self._layout(parts)
        if layout is not None:
            return layout, parts
        if "\t" not in text:
            words = text.split()
            layout = self._layout(words)
            if layout is not None:
                self.out.whitespace_lines += 1
                return layout, words
            self.out.bad.append((number, f"{len(words)} whitespace-separated fields, expected {len(self.fields)}"))
            return None
        mixed = " (tabs and spaces mixed)" if self._layout(text.split()) is not None else ""
        self.out.bad.append((number, f"{len(parts)} tab-separated fields, expected {len(self.fields)}{mixed}"))
        return None

    def drain(self, columns: Sequence[str]) -> None:
        groups: dict[tuple[str, ...], tuple[list[int], list[list[str]]]] = {}
        for number, text in self.pending:
            got = self.split(number, text)
            if got is not None:
                numbers, rows = groups.setdefault(got[0], ([], []))
                numbers.append(number)
                rows.append(got[1])
        self.pending = []
        for layout, (numbers, rows) in groups.items():
            raw: dict[str, pa.Array] = {}
            for i, name in enumerate(layout):
                col = field_column(name)
                if col is None or col in raw:
                    continue
                raw[col] = pa.array([None if r[i] == "-" else r[i] for r in rows], pa.string())
            done = convert(raw, len(rows), columns)
            for idx in done.bad_rows:
                self.out.bad.append((numbers[int(idx)], done.reasons.get(int(idx), "bad value")))
            if done.batch.num_rows:
                self.out.batches.append(done.batch)

    def line_of(self, valid_index: int) -> int:
        """Physical line number of the ``valid_index``-th row (block-relative) the fast parser accepted."""
        handled = self.handled
        x = valid_index + 1
        while True:
            nx = valid_index + 1 + bisect.bisect_right(handled, x)
            if nx == x:
                return x
            x = nx


@dataclass(frozen=True)
class _Layout:
    fields: tuple[str, ...]
    headerless: bool
    realtime: bool


def _line_start(block: Block, line: int) -> int:
    """Byte offset where (1-based) ``line`` starts in ``block``."""
    data = bytes(block)
    pos = 0
    for _ in range(line - 1):
        pos = data.index(b"\n", pos) + 1
    return pos


def _parse_block(block: Block, layout: _Layout, columns: Sequence[str]) -> _Block:
    """Parse one block of complete lines; line numbers in the result are relative to the block."""
    out = _Block()
    fields = layout.fields
    names = [f"c{i}" for i in range(len(fields))]
    wanted = set(columns_needed(fields, columns))
    include = [names[i] for i, f in enumerate(fields) if f in wanted or i == 0]
    slow = _SlowLines(out, fields, layout.headerless, layout.realtime)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(block) + 1),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=slow.handler,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in include}, include_columns=include,
                null_values=["-"], strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as err:
        out.lines = bytes(block).count(b"\n") + (0 if bytes(block[-1:]) == b"\n" else 1)
        if "Empty CSV file" not in str(err):
            out.bad.append((None, f"cannot parse: {err}"))
        slow.drain(columns)
        return out
    out.lines = table.num_rows + len(slow.handled)
    if slow.relayout is not None:  # a new #Fields header: what follows it uses the new layout
        line, new = slow.relayout
        cut = _line_start(block, line)
        head = _parse_block(block[:cut], layout, columns) if cut else _Block()
        tail = _parse_block(block[cut:], _Layout(new, False, False), columns)
        head.batches += tail.batches
        head.bad += [(None if n is None else n + line - 1, why) for n, why in tail.bad]
        head.whitespace_lines += tail.whitespace_lines
        head.lines = out.lines
        head.new_layout = tail.new_layout or _Layout(new, False, False)
        return head
    col_of = {names[i]: field_column(fields[i]) for i in range(len(fields))}
    rows = None  # original row index of each kept row, when empty lines were dropped
    empty = pc.fill_null(pc.equal(table.column(0), _EMPTY), _FALSE)
    if pc.any(empty).as_py():  # an empty line parses as a row of empty strings: not data, skip it
        keep = pc.invert(empty)
        rows = np.nonzero(to_numpy(keep))[0]
        table = table.filter(keep)
    raw: dict[str, pa.Array] = {}
    for name in table.schema.names:
        col = col_of[name]
        if col is not None and col not in raw:
            raw[col] = table.column(name).combine_chunks()
    done = convert(raw, table.num_rows, columns)
    for idx in done.bad_rows:
        orig = int(idx) if rows is None else int(rows[int(idx)])
        out.bad.append((slow.line_of(orig), done.reasons.get(int(idx), "bad value")))
    if done.batch.num_rows:
        out.batches.append(done.batch)
    slow.drain(columns)
    return out


def read_tsv(
    blocks: Iterator[Block],
    stats: FileStats,
    header: Header,
    *,
    columns: Sequence[str],
    realtime_fields: Sequence[str] | None = None,
    realtime: bool = False,
    threads: int = 1,
) -> Iterator[pa.RecordBatch]:
    """Stream typed batches (``columns``) from the line-aligned blocks of one tab-separated log.

    Blocks are parsed independently (by ``threads`` threads when > 1; Arrow releases the GIL), and
    their results are merged in file order, so line numbers in bad-line reports are exact.
    """
    headerless = header.fields is None
    if realtime:
        fields = tuple(realtime_fields or header.fields or ())
        if not fields:
            count = len(header.sample.split("\t")) if header.sample else 0
            fields = realtime_fields_for_count(count) or ()
            if not fields:
                stats.error = (
                    f"real-time records with {count} fields: name them with --realtime-fields "
                    "(AWS's canonical order is built in)"
                )
                stats.bad(None, stats.error)
                return
        headerless = False
    elif header.fields:
        fields = header.fields
    else:
        parts = header.sample.split("\t") if header.sample else []
        count = len(parts) if len(parts) > 1 else len(header.sample.split()) if header.sample else 33
        fields = legacy_fields_for_count(count) or LEGACY_FIELDS_33
    stats.fields = len(fields)
    state = {"layout": _Layout(fields, headerless, realtime), "offset": 0}
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="parse") if threads > 1 else None
    inflight: deque[list] = deque()  # [future, block, layout it was parsed with]

    def start(block: Block, layout: _Layout) -> Future[_Block]:
        if pool is not None:
            return pool.submit(_parse_block, block, layout, columns)
        done: Future[_Block] = Future()
        done.set_result(_parse_block(block, layout, columns))
        return done

    def collect(limit: int) -> Iterator[pa.RecordBatch]:
        while len(inflight) > limit:
            future, _, _ = inflight.popleft()
            result = future.result()
            if result.new_layout is not None:
                state["layout"] = result.new_layout
                for entry in inflight:  # parsed ahead with the old layout: parse again
                    if entry[2] != result.new_layout:
                        entry[0].cancel()
                        entry[0], entry[2] = start(entry[1], result.new_layout), result.new_layout
            offset = state["offset"]
            for line, why in result.bad:
                stats.bad(None if line is None else offset + line, why)
            stats.whitespace_lines += result.whitespace_lines
            state["offset"] = offset + result.lines
            yield from result.batches

    try:
        for block in blocks:
            layout = state["layout"]
            inflight.append([start(block, layout), block, layout])
            yield from collect(threads)
        yield from collect(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
