"""Tab-separated CloudFront logs: standard (legacy, W3C) files and real-time (Kinesis) records.

The input arrives as blocks of complete lines; each block is parsed by Arrow's CSV parser (tab
delimiter, no quoting, ``-`` → null, only the columns asked for), several blocks at once on several
threads when asked, and the results are merged in file order. Lines it cannot take (``#`` headers,
wrong field count) go through a small Python path that knows CloudFront's oddities:

- a ``#Fields`` header (spaces or tabs, trailing spaces) names the fields; a new header mid-file
  switches the layout (concatenated files);
- no header: the 33-field layout, or the historical layout that matches the line's field count
  (12, 15, 18, 19, 23, 24, 26 — each is a prefix of the 33 fields);
- a trailing tab (one empty extra field) is tolerated;
- a line with no tab at all is split on runs of whitespace when that gives the right count;
- anything else is a bad line, reported as ``file:line: reason``.

Every line is accounted for (:mod:`edgeproof.analytics.reader_accounting`): each data line becomes a request or
a bad line, and one bad line costs exactly that line. Arrow's parser is fast but not exact on damaged
input (it stops at invalid UTF-8, splits lines at a lone ``\\r``, and cannot tell an empty line from a
row of empty fields), so a block it cannot parse exactly is parsed again by :func:`_parse_exact`, a
plain line-by-line model of the same rules: clean blocks keep the fast path, only damaged blocks pay.
Bytes that are not UTF-8 are kept as the text ``\\xNN`` (CloudFront percent-encodes every byte
outside printable ASCII — AWS CloudFront Developer Guide, "Standard logging reference", section "Log
file fields" — so such bytes come from damage or another tool; the line's other fields are still good).
"""

from __future__ import annotations

import bisect
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from edgeproof.analytics._arrow import scalar, to_numpy
from edgeproof.analytics.inputs import Block, CutLine
from edgeproof.analytics.reader_accounting import FileStats
from edgeproof.analytics.reader_convert import columns_needed, convert, field_column
from edgeproof.analytics.schema import LEGACY_FIELDS_33

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
_SAMPLES = 20  # data lines of a file's head that vote on its layout
_EMPTY = scalar("", pa.string())
_FALSE = scalar(False, pa.bool_())
_BLANK = " \t\r"


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
    samples: list[str] = field(default_factory=list)  # the first few data lines (they vote on the layout)

    def field_count(self, known: Callable[[int], object]) -> int | None:
        """The field count of the first sample line whose count is ``known`` (else of the first line).

        The first lines vote, so that one damaged first line does not choose the layout of the file.
        """
        counts = []
        for line in self.samples:
            parts = line.split("\t")
            counts.append(len(parts) if len(parts) > 1 else len(line.split()))
        return next((c for c in counts if known(c)), counts[0] if counts else None)


def _fields_header(text: str) -> tuple[str, ...] | None:
    """The field names of a ``#Fields:`` line (None for any other ``#`` line)."""
    key, _, rest = text[1:].partition(":")
    return tuple(rest.split()) if key.strip().lower() == "fields" else None


def parse_header(head: bytes) -> Header:
    """Parse the leading ``#`` lines and the first data lines from the first bytes of a file."""
    fields: tuple[str, ...] | None = None
    samples: list[str] = []
    for line in head.decode("utf-8", "replace").split("\n")[:400]:
        line = line.rstrip("\r")
        if line.startswith("#"):
            if not samples:
                fields = _fields_header(line) or fields
            continue
        if line.strip(_BLANK):
            samples.append(line)
            if len(samples) >= _SAMPLES:
                break
    return Header(fields, samples[0] if samples else None, samples)


@dataclass(frozen=True)
class _Layout:
    fields: tuple[str, ...]
    headerless: bool
    realtime: bool


@dataclass
class _Block:
    """What parsing one block of complete lines produced (merged into FileStats in file order).

    ``lines`` counts every physical line of the block; ``header_lines`` and ``blank_lines`` are the
    ones that are not data, and each data line is in ``requests`` (rows of ``batches``) or ``bad``.
    """

    batches: list[pa.RecordBatch] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # block-relative line numbers
    whitespace_lines: int = 0
    lines: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    new_layout: _Layout | None = None  # a #Fields header in this block switched the layout

    @property
    def requests(self) -> int:
        return sum(b.num_rows for b in self.batches)

    @property
    def balanced(self) -> bool:
        return self.requests + len(self.bad) == self.lines - self.header_lines - self.blank_lines


def _strings(values: Sequence[str | None]) -> pa.Array:
    """A string array from Python values, built from buffers (``pa.array`` would import pandas)."""
    data = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    if offsets[-1] >= 1 << 31:
        raise ValueError("a block of log lines over 2 GiB")
    valid = np.packbits(np.array([v is not None for v in values], dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.string(), len(data), [
        pa.py_buffer(valid.tobytes()), pa.py_buffer(offsets.astype(np.int32).tobytes()), pa.py_buffer(b"".join(data)),
    ])


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
        self.take(number, row.text)
        return "skip"

    def take(self, number: int, text: str) -> bool:
        """Sort one line: blank, ``#`` header or data (pending). True when it switches the layout."""
        if not text.strip(_BLANK):
            self.out.blank_lines += 1
        elif text.startswith("#"):
            self.out.header_lines += 1
            new = None if self.realtime else _fields_header(text)
            if new and new != self.fields and self.relayout is None:
                self.relayout = (number, new)
                return True
        else:
            self.pending.append((number, text))
        return False

    def _layout(self, parts: list[str]) -> tuple[str, ...] | None:
        if len(parts) == len(self.fields):
            return self.fields
        if self.headerless and not self.realtime:
            return legacy_fields_for_count(len(parts))
        return None

    def _expected(self, count: int, kind: str) -> str:
        if not self.fields:
            return (f"{count} {kind} field{'s' if count != 1 else ''}: no real-time layout has {count} fields "
                    "(name them with --realtime-fields)")
        return f"{count} {kind} field{'s' if count != 1 else ''}, expected {len(self.fields)}"

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
            self.out.bad.append((number, self._expected(len(words), "whitespace-separated")))
            return None
        mixed = " (tabs and spaces mixed)" if self._layout(text.split()) is not None else ""
        self.out.bad.append((number, self._expected(len(parts), "tab-separated") + mixed))
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
                raw[col] = _strings([None if r[i] == "-" else r[i] for r in rows])
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


def _block_lines(block: Block) -> list[bytes]:
    """The physical lines of a block, as ``grep -n`` counts them: split at ``\\n``, one ``\\r`` dropped."""
    lines = bytes(block).split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the block ends with a newline: no line after it
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _line_start(block: Block, line: int) -> int:
    """Byte offset where (1-based) ``line`` starts in ``block``."""
    data = bytes(block)
    pos = 0
    for _ in range(line - 1):
        pos = data.index(b"\n", pos) + 1
    return pos


def _valid_utf8(block: Block) -> bool:
    """Whether the whole block is UTF-8 (Arrow's validator; asked only when the fast parse failed)."""
    buf = pa.py_buffer(block)
    offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int64).tobytes())
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, buf]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _sanitize(block: Block) -> bytes:
    """The block with every byte of invalid UTF-8 written as the 4-character text ``\\xNN``.

    No newline or tab is added or removed, so the lines, their numbers and their fields stay the same.
    """
    return bytes(block).decode("utf-8", "backslashreplace").encode("utf-8")


def _empty_lines(block: Block) -> int:
    """How many lines of the block are empty (``\r`` alone counts as empty: CRLF)."""
    lines = bytes(block).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return sum(1 for line in lines if not line or line == b"\r")


def _lone_cr(block: Block) -> bool:
    """Whether a ``\\r`` not followed by ``\\n`` is in the block (Arrow would end a line there)."""
    obj = block.obj if isinstance(block, memoryview) else block
    if b"\r" not in obj:  # memchr over the whole chunk: the usual answer, almost free
        return False
    data = bytes(block)
    return data.count(b"\r") != data.count(b"\r\n")


def _parse_block(block: Block, layout: _Layout, columns: Sequence[str]) -> _Block:
    """Parse one block of complete lines; line numbers in the result are relative to the block.

    The fast parser's result is used only when it is exact; otherwise the block is parsed line by
    line (:func:`_parse_exact`). Either way ``requests + bad == data lines`` for the block.
    """
    if not layout.fields:
        return _parse_exact(block, layout, columns)
    out = _parse_fast(block, layout, columns)
    if out is None and not _valid_utf8(block):  # Arrow stops at invalid UTF-8: make it text, try again
        block = _sanitize(block)
        out = _parse_fast(block, layout, columns)
    return out if out is not None else _parse_exact(block, layout, columns)


_QUIET = threading.local()  # .on: this thread is inside Arrow's parse of a block
_previous_hook: Callable[[Any], object] | None = None


def _unraisable(args: Any) -> None:
    """Drop the UnicodeDecodeError pyarrow raises (and cannot raise) for a refused row that is not UTF-8.

    pyarrow decodes a refused row for the invalid-row handler itself; on invalid UTF-8 that fails
    before our handler runs, Python prints "Exception ignored … UnicodeDecodeError" and Arrow fails
    the block. The block is then read again (sanitized), so the message is noise on the user's
    terminal. Only that error, only inside a parse in this thread; everything else goes on to the
    hook that was there before.
    """
    if getattr(_QUIET, "on", False) and isinstance(args.exc_value, UnicodeDecodeError):
        return
    (_previous_hook or sys.__unraisablehook__)(args)


def _quiet_undecodable_rows() -> None:
    global _previous_hook
    current = sys.unraisablehook
    if current is not _unraisable:  # (re)installed when someone (pytest) replaced it meanwhile
        _previous_hook = current
        sys.unraisablehook = _unraisable


def _parse_fast(block: Block, layout: _Layout, columns: Sequence[str]) -> _Block | None:
    """Arrow's CSV parser on a UTF-8 block; None when its reading of the lines would not be exact."""
    out = _Block()
    fields = layout.fields
    names = [f"c{i}" for i in range(len(fields))]
    wanted = set(columns_needed(fields, columns))
    include = [names[i] for i, f in enumerate(fields) if f in wanted or i == 0]
    slow = _SlowLines(out, fields, layout.headerless, layout.realtime)
    _quiet_undecodable_rows()
    _QUIET.on = True
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
    except pa.ArrowInvalid:  # invalid UTF-8 (in a column read, or a refused row), an empty block…
        return None
    finally:
        _QUIET.on = False
    # A lone \r always makes Arrow split a line into a refused row (the handler ran) or an empty
    # row, so clean blocks never pay for this check.
    first = table.column(0)
    if pc.any(pc.fill_null(pc.starts_with(first, pattern="#"), _FALSE)).as_py():  # a '#' line with N fields
        return None
    empty = pc.fill_null(pc.equal(first, _EMPTY), _FALSE)
    blanks = pc.sum(empty).as_py() or 0
    if blanks and blanks != _empty_lines(block):  # a row with an empty first field is not always an empty line
        return None
    if (slow.handled or blanks) and _lone_cr(block):
        return None
    out.lines = table.num_rows + len(slow.handled)
    out.blank_lines += blanks
    if slow.relayout is not None:  # a new #Fields header: what follows it uses the new layout
        line, new = slow.relayout
        cut = _line_start(block, line)
        head = _parse_block(block[:cut], layout, columns) if cut else _Block()
        tail = _parse_block(block[cut:], _Layout(new, False, False), columns)
        return _joined(head, tail, line - 1, tail.new_layout or _Layout(new, False, False))
    rows = None  # the row index (among accepted rows) of each row kept, when empty lines were dropped
    if blanks:
        keep = pc.invert(empty)
        rows = np.nonzero(to_numpy(keep))[0]
        table = table.filter(keep)
    col_of = {names[i]: field_column(fields[i]) for i in range(len(fields))}
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
    return out if out.balanced else None


def _joined(head: _Block, tail: _Block, shift: int, layout: _Layout | None) -> _Block:
    """``head`` followed by ``tail`` (whose line numbers start after ``shift`` lines)."""
    head.batches += tail.batches
    head.bad += [(n + shift, why) for n, why in tail.bad]
    head.whitespace_lines += tail.whitespace_lines
    head.header_lines += tail.header_lines
    head.blank_lines += tail.blank_lines
    head.lines = shift + tail.lines
    head.new_layout = layout
    return head


def _parse_exact(block: Block, layout: _Layout, columns: Sequence[str]) -> _Block:
    """The plain model of the reading rules: one line at a time, lines split at ``\\n`` only.

    Used for the blocks the fast parser cannot read exactly (and, in the tests, as the reference
    the fast path must agree with).
    """
    out = _Block()
    lines = _block_lines(block)
    out.lines = len(lines)
    slow = _SlowLines(out, layout.fields, layout.headerless, layout.realtime)
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", "backslashreplace")
        if slow.take(number, text):  # a new #Fields header: the lines after it use the new layout
            slow.drain(columns)
            new = _Layout(slow.relayout[1], False, False)  # type: ignore[index]
            out.new_layout = new
            slow = _SlowLines(out, new.fields, False, False)
    slow.drain(columns)
    return out


class _Excerpts:
    """The raw bytes of a few lines of one block (split once, only when a bad line needs its excerpt)."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self.lines: list[bytes] | None = None

    def __call__(self, line: int) -> bytes:
        if self.lines is None:
            self.lines = _block_lines(self.block)
        return self.lines[line - 1] if 0 < line <= len(self.lines) else b""


def _layout_of(stats: FileStats, header: Header, *, realtime: bool,
               realtime_fields: Sequence[str] | None) -> _Layout:
    """The layout a file starts with: its ``#Fields``, the caller's real-time fields, or a guess."""
    if realtime:
        fields = tuple(realtime_fields or header.fields or ())
        if not fields:
            count = header.field_count(realtime_fields_for_count) or 0
            fields = realtime_fields_for_count(count) or ()
            if not fields:
                stats.fail("format", f"real-time records with {count} fields: name them with --realtime-fields "
                                     "(AWS's canonical order is built in)")
        return _Layout(fields, False, True)
    if header.fields:
        return _Layout(header.fields, False, False)
    count = header.field_count(legacy_fields_for_count) or 33
    return _Layout(legacy_fields_for_count(count) or LEGACY_FIELDS_33, True, False)


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
    their results are merged in file order, so line numbers in bad-line reports are exact. The
    accounting (lines, requests, bad lines, headers) is added to ``stats`` as blocks are merged.
    """
    first = _layout_of(stats, header, realtime=realtime, realtime_fields=realtime_fields)
    stats.fields = len(first.fields) or None
    state = {"layout": first, "offset": 0}
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
            future, block, _ = inflight.popleft()
            result = future.result()
            if result.new_layout is not None:
                state["layout"] = result.new_layout
                for entry in inflight:  # parsed ahead with the old layout: parse again
                    if entry[2] != result.new_layout:
                        entry[0].cancel()
                        entry[0], entry[2] = start(entry[1], result.new_layout), result.new_layout
            offset = state["offset"]
            raw = _Excerpts(block)
            for line, why in sorted(result.bad):
                stats.bad(offset + line, why, raw(line) if stats.wants_examples else None)
            stats.whitespace_lines += result.whitespace_lines
            stats.header_lines += result.header_lines
            stats.blank_lines += result.blank_lines
            stats.lines += result.lines - result.header_lines - result.blank_lines
            stats.requests += result.requests
            state["offset"] = offset + result.lines
            yield from result.batches

    try:
        for block in blocks:
            if isinstance(block, CutLine):  # the incomplete line where a damaged stream broke off
                yield from collect(0)
                stats.lines += 1
                state["offset"] += 1
                stats.bad(state["offset"], block.reason, bytes(block))
                continue
            layout = state["layout"]
            inflight.append([start(block, layout), block, layout])
            yield from collect(threads)
        yield from collect(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
