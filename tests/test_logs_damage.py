"""Damaged inputs: the reader accounts for every line, and one bad line costs exactly that line.

Every damaged input is made here, in tmp_path, from good lines written by edgeproof.analytics.synthetic (binary
lines, latin-1 lines, NULs, CRC damage, bit flips, truncation, bzip2 or random bytes named .gz, empty
files, a #Fields change). The expected counts come from how the input was built, and for gzip damage
from a plain reference: a byte-at-a-time zlib inflate (what zcat keeps), read back as a plain file.
"""

from __future__ import annotations

import bz2
import gzip
import random
import zlib
from pathlib import Path

import pytest
from edgeproof.analytics import read_logs
from edgeproof.analytics.reader_accounting import FileStats, excerpt
from edgeproof.analytics.schema import LEGACY_FIELDS_33
from edgeproof.analytics.synthetic import generate_hour
from edgeproof.analytics.writer import encode_columns, w3c_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_logs_samples import EXPECTED

from edgeproof.errors import StrictModeError

UA = LEGACY_FIELDS_33.index("cs(User-Agent)")
HEADER = w3c_header().encode()  # 2 lines: #Version, #Fields


def _good(n: int, seed: int = 4) -> list[bytes]:
    from datetime import UTC, datetime

    cols = generate_hour(datetime(2024, 5, 1, tzinfo=UTC), n, seed=seed)
    return [line.encode() for line in encode_columns(cols, n, LEGACY_FIELDS_33)]


GOOD = _good(3000)


def _write(path: Path, lines: list[bytes], *, compress: bool = False, header: bool = True) -> Path:
    body = (HEADER if header else b"") + b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(body, mtime=0) if compress else body)
    return path


def _read(path: Path, **kw) -> tuple[FileStats, int]:
    stream = read_logs(path, **kw)
    rows = stream.read_all().num_rows
    (stats,) = stream.files
    assert stats.balanced, (stats.requests, stats.bad_lines, stats.lines)
    assert stream.lines == stream.requests + stream.bad_lines
    return stats, rows


def _binary(rng: random.Random, size: int = 60) -> bytes:
    """A line of invalid UTF-8 with the wrong field count (and perhaps NUL, \\r, control bytes)."""
    body = bytes(rng.choice([*range(0x80, 0x100), 0, 1, 13, 27, 32, 9]) for _ in range(size))
    return b"\xff" + body.replace(b"\n", b"")


# ------------------------------------------------------------------ one bad line, exactly one
@pytest.mark.parametrize("threads", [1, 2])
def test_a_binary_line_costs_exactly_that_line(tmp_path: Path, threads: int, capfd: pytest.CaptureFixture[str]) -> None:
    lines = list(GOOD)
    lines[1500] = _binary(random.Random(1))
    path = _write(tmp_path / "E1.2024-05-01-00.bin.log", lines)
    stats, rows = _read(path, threads=threads, block_bytes=64 << 10)
    assert (stats.lines, stats.requests, stats.bad_lines, rows) == (3000, 2999, 1, 2999)
    assert stats.errors == [] and stats.header_lines == 2
    (bad,) = stats.bad_examples
    assert bad.line == 1503 and str(bad).startswith(f"{path}:1503: ")
    assert bad.excerpt.startswith("\\xff") and bad.excerpt.isprintable() and "\ufffd" not in bad.excerpt
    assert "Traceback" not in capfd.readouterr().err  # pyarrow's handler used to print one


def test_a_small_file_with_one_binary_line_keeps_the_rest(tmp_path: Path) -> None:
    lines = list(GOOD[:200])
    lines[0] = _binary(random.Random(2))  # also the line the layout would be guessed from
    stats, rows = _read(_write(tmp_path / "small.log", lines))
    assert (stats.requests, stats.bad_lines, rows, stats.fields) == (199, 1, 199, 33)


def test_latin1_lines_are_requests_with_their_bytes_visible(tmp_path: Path) -> None:
    lines = list(GOOD[:500])
    for i in (0, 250, 499):
        parts = lines[i].split(b"\t")
        parts[UA] = "Mozilla/5.0 (Mac; Français; Überall)".encode("latin-1")
        lines[i] = b"\t".join(parts)
    path = _write(tmp_path / "latin1.log", lines)
    stats, rows = _read(path)
    assert (stats.requests, stats.bad_lines, rows) == (500, 0, 500)
    table = read_logs(path).read_all()
    agents = table["cs_user_agent_raw"].to_pylist()
    assert agents[250] == "Mozilla/5.0 (Mac; Fran\\xe7ais; \\xdcberall)"
    assert agents[1] == GOOD[1].split(b"\t")[UA].decode()
    # a summary reads fewer columns: the same lines are requests there too
    summary = read_logs(path, columns=["timestamp", "x_edge_result_type"])
    assert summary.read_all().num_rows == 500 and summary.bad_lines == 0


def test_nul_bytes(tmp_path: Path) -> None:
    lines = list(GOOD[:400])
    lines[10] = b"\0" * 40  # a run of NULs: a bad line
    parts = lines[20].split(b"\t")
    parts[UA] = b"Mozilla\0" + parts[UA]  # one NUL inside a text field: still 33 fields, a request
    lines[20] = b"\t".join(parts)
    lines[30] = b"\0" * 8 + lines[30]  # NULs before the date: unparsable date
    stats, rows = _read(_write(tmp_path / "nul.log", lines))
    assert (stats.requests, stats.bad_lines, rows) == (398, 2, 398)
    assert [b.line for b in stats.bad_examples] == [13, 33]
    assert stats.bad_examples[0].excerpt == "\\x00" * 40
    assert all("\0" not in b.reason and "\0" not in str(b) for b in stats.bad_examples)


def test_blank_lines_crlf_and_a_lone_cr(tmp_path: Path) -> None:
    lines = list(GOOD[:300])
    parts = lines[7].split(b"\t")
    parts[UA] = parts[UA][:5] + b"\r" + parts[UA][5:]  # a lone CR inside a value: still one line
    lines[7] = b"\t".join(parts)
    lines[8] = b"\r" + lines[8][:20]  # a lone CR at the start of a short line: one bad line
    lines[100:100] = [b"", b"   ", b"\t" * 32]  # three blank lines: not data
    body = HEADER + b"".join(line + b"\r\n" for line in lines)
    path = tmp_path / "crlf.log"
    path.write_bytes(body)
    stats, rows = _read(path)
    assert (stats.lines, stats.requests, stats.bad_lines, stats.blank_lines, rows) == (300, 299, 1, 3, 299)
    assert stats.bad_examples[0].line == 11


def test_the_fields_header_changes_midway(tmp_path: Path) -> None:
    old = LEGACY_FIELDS_33[:26]
    lines = list(GOOD[:600])
    body = HEADER + b"".join(line + b"\n" for line in lines[:300])
    body += w3c_header(old).encode()  # a concatenated older file: 2 header lines
    body += b"".join(b"\t".join(line.split(b"\t")[:26]) + b"\n" for line in lines[300:])
    body += b"".join(line + b"\n" for line in lines[:5])  # 33 fields after the 26-field header: bad
    path = tmp_path / "cat.log.gz"
    path.write_bytes(gzip.compress(body))
    for threads in (1, 2):
        stats, rows = _read(path, threads=threads, block_bytes=4096)
        assert (stats.lines, stats.requests, stats.bad_lines, stats.header_lines) == (605, 600, 5, 4)
        assert [b.line for b in stats.bad_examples] == [605, 606, 607, 608, 609]


# ------------------------------------------------------------------ gzip damage keeps what inflates
def _zcat(blob: bytes) -> tuple[bytes, bool]:
    """What zcat keeps: the output of every byte that inflates, member after member; and whether it broke."""
    out, pos = [], 0
    while pos < len(blob) and blob[pos:].strip(b"\0"):
        d = zlib.decompressobj(31)
        for i in range(pos, len(blob)):
            try:
                out.append(d.decompress(blob[i:i + 1]))
            except zlib.error:
                return b"".join(out), True
            if d.eof:
                pos = len(blob) - len(d.unused_data)
                break
        else:
            return b"".join(out), True  # ran out inside a member: truncated
    return b"".join(out), False


def _expect_like_zcat(tmp_path: Path, path: Path) -> FileStats:
    """The damaged gzip reads like zcat's output read as a plain file, its cut last line being bad."""
    kept, broke = _zcat(path.read_bytes())
    plain = tmp_path / (path.name + ".zcat.log")
    cut = broke and kept and not kept.endswith(b"\n")
    plain.write_bytes(kept[: kept.rfind(b"\n") + 1] if cut else kept)
    stats, _ = _read(path)
    ref, _ = _read(plain)
    assert stats.requests == ref.requests
    assert stats.bad_lines == ref.bad_lines + (1 if cut and kept[kept.rfind(b"\n") + 1:].strip() else 0)
    assert stats.header_lines + stats.blank_lines + stats.lines == kept.count(b"\n") + (1 if kept and not kept.endswith(b"\n") else 0)
    return stats


@pytest.mark.parametrize("n", [200, 6000])
def test_a_crc_damaged_trailer_keeps_every_line(tmp_path: Path, n: int) -> None:
    data = bytearray((_write(tmp_path / "ok.gz", _good(n, seed=n), compress=True)).read_bytes())
    data[-8] ^= 0x01  # the CRC-32 of the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    stats, rows = _read(path)
    assert (stats.lines, stats.requests, stats.bad_lines, rows) == (n, n, 0, n)
    (err,) = stats.errors
    assert err.kind == "checksum" and "CRC-32" in err.message
    _expect_like_zcat(tmp_path, path)


def test_a_checksum_error_in_one_member_does_not_stop_the_next(tmp_path: Path) -> None:
    first = bytearray(gzip.compress(HEADER + b"".join(line + b"\n" for line in GOOD[:100])))
    first[-8] ^= 0x40
    path = tmp_path / "members.gz"
    path.write_bytes(bytes(first) + gzip.compress(b"".join(line + b"\n" for line in GOOD[100:1000])))
    stats, _ = _read(path)
    assert (stats.requests, stats.bad_lines, [e.kind for e in stats.errors]) == (1000, 0, ["checksum"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0.0, 0.999), bit=st.integers(0, 7))
def test_a_bit_flip_in_the_deflate_stream(tmp_path: Path, where: float, bit: int) -> None:
    data = bytearray(gzip.compress(HEADER + b"".join(line + b"\n" for line in GOOD[:1500]), mtime=0))
    at = 10 + int(where * (len(data) - 18))  # inside the deflate data, not the header or trailer
    data[at] ^= 1 << bit
    path = tmp_path / "flip.gz"
    path.write_bytes(bytes(data))
    stats = _expect_like_zcat(tmp_path, path)
    # a flipped BFINAL bit ends the deflate data early: a checksum error, then the rest is not gzip
    assert stats.errors and stats.errors[0].kind in ("corrupt", "checksum")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.5, 0.97, 0.9995])
def test_a_truncated_gzip_keeps_every_complete_line(tmp_path: Path, fraction: float) -> None:
    data = gzip.compress(HEADER + b"".join(line + b"\n" for line in GOOD))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: int(len(data) * fraction)])
    stats = _expect_like_zcat(tmp_path, path)
    assert [e.kind for e in stats.errors] == ["truncated"]
    kept, _ = _zcat(path.read_bytes())
    assert stats.requests == kept.count(b"\n") - 2  # every complete line was a good one
    if not kept.endswith(b"\n"):
        assert "truncated gzip" in stats.bad_examples[-1].reason


# ------------------------------------------------------------------ not a log at all: file errors
def test_bzip2_and_random_bytes_named_gz_are_file_errors(tmp_path: Path) -> None:
    body = HEADER + b"".join(line + b"\n" for line in GOOD[:500])
    (tmp_path / "a.gz").write_bytes(bz2.compress(body))
    (tmp_path / "b.gz").write_bytes(random.Random(3).randbytes(20000))
    (tmp_path / "c.log").write_bytes(random.Random(4).randbytes(20000))
    (tmp_path / "d.gz").write_bytes(b"\x1f\x8b" + random.Random(5).randbytes(5000))
    stream = read_logs(tmp_path)
    assert stream.read_all().num_rows == 0
    assert (stream.lines, stream.bad_lines) == (0, 0)
    kinds = {Path(f.name).name: [e.kind for e in f.errors] for f in stream.files}
    assert kinds == {"a.gz": ["not_gzip"], "b.gz": ["not_gzip"], "c.log": ["format"], "d.gz": ["corrupt"]}
    a = stream.files[0]
    assert "bzip2" in a.errors[0].message and a.errors[0].unread_bytes == (tmp_path / "a.gz").stat().st_size
    assert not stream.readable
    with pytest.raises(StrictModeError):
        read_logs(tmp_path / "a.gz", strict=True).read_all()


def test_a_text_file_in_no_supported_layout_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nginx.log"
    path.write_text('127.0.0.1 - - [01/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 612\n' * 30)
    stats, _ = _read(path)
    assert (stats.lines, stats.bad_lines, [e.kind for e in stats.errors]) == (30, 30, ["format"])


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "empty.gz").write_bytes(b"")
    (tmp_path / "nothing.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "header-only.log").write_bytes(HEADER)
    stream = read_logs(tmp_path)
    assert stream.read_all().num_rows == 0
    for f in stream.files:
        assert (f.lines, f.requests, f.bad_lines, f.errors) == (0, 0, 0, []), f.name
    headers = {Path(f.name).name: f.header_lines for f in stream.files}
    assert stream.readable and headers == {"empty.gz": 0, "empty.log": 0, "header-only.log": 2, "nothing.gz": 0}


# ------------------------------------------------------------------ anywhere, at any block boundary
_KINDS = ("binary", "short", "nul", "latin1", "blank", "cr-in-value")
_BAD = {"binary", "short", "nul"}


def _damage(kind: str, line: bytes, rng: random.Random) -> bytes:
    if kind == "binary":
        return _binary(rng, rng.randint(1, 300))
    if kind == "short":
        return b"\t".join(line.split(b"\t")[: rng.randint(2, 30)])
    if kind == "nul":
        return b"\0" * rng.randint(1, 50)
    if kind == "blank":
        return b" " * rng.randint(0, 3)
    parts = line.split(b"\t")
    parts[UA] = parts[UA][:3] + (b"\r" if kind == "cr-in-value" else "é".encode("latin-1")) + parts[UA][3:]
    return b"\t".join(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spots=st.lists(st.tuples(st.integers(0, 599), st.sampled_from(_KINDS)), min_size=1, max_size=8,
                   unique_by=lambda s: s[0]),
    block=st.sampled_from([700, 2048, 4096, 1 << 20]),
    threads=st.sampled_from([1, 2]),
    compress=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_bad_lines_anywhere_cost_exactly_themselves(
    tmp_path: Path, spots: list[tuple[int, str]], block: int, threads: int, compress: bool, seed: int
) -> None:
    rng = random.Random(seed)
    lines = list(GOOD[:600])
    for at, kind in spots:
        lines[at] = _damage(kind, lines[at], rng)
    path = _write(tmp_path / ("h.log.gz" if compress else "h.log"), lines, compress=compress)
    stats, rows = _read(path, threads=threads, block_bytes=block)
    bad = sorted(at + 3 for at, kind in spots if kind in _BAD)  # physical line numbers (2 header lines)
    blank = sum(kind == "blank" for _, kind in spots)
    assert stats.requests == rows == 600 - len(bad) - blank
    assert (stats.bad_lines, stats.blank_lines, stats.lines) == (len(bad), blank, 600 - blank)
    assert [b.line for b in stats.bad_examples] == bad[:10]
    assert all(b.excerpt.isprintable() and "\ufffd" not in b.excerpt for b in stats.bad_examples)
    assert stats.errors == []


def test_excerpts_are_escaped_and_capped() -> None:
    assert excerpt(b"a\tb\\c\x00\x1b[31m\xe9\xc3\xa9") == "a\\tb\\\\c\\x00\\x1b[31m\\xe9é"
    assert excerpt("\u202e".encode()) == "\\u202e"  # a bidi override never reaches a terminal
    long = excerpt(b"x" * 1000)
    assert long.startswith("x" * 160) and long.endswith("… (+840 bytes)")


# ------------------------------------------------------------------ the real samples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_samples_keep_their_counts_and_balance(samples_dir: Path, name: str) -> None:
    fmt, fields, rows, bad = EXPECTED[name]
    stats, got = _read(samples_dir / name)
    assert (stats.format, stats.fields, stats.requests, got, stats.bad_lines) == (fmt, fields, rows, rows, bad)
    assert stats.errors == [] and stats.lines == rows + bad


@settings(max_examples=60, deadline=None)
@given(
    spots=st.lists(st.tuples(st.integers(0, 199), st.sampled_from((*_KINDS, "header", "tab-first"))),
                   max_size=6, unique_by=lambda s: s[0]),
    seed=st.integers(0, 1000),
    crlf=st.booleans(),
)
def test_the_fast_path_agrees_with_the_line_by_line_model(spots: list[tuple[int, str]], seed: int, crlf: bool) -> None:
    """Differential: Arrow's path (with its fallbacks) against the plain per-line model, block by block."""
    from edgeproof.analytics.reader_w3c import _Layout, _parse_block, _parse_exact

    rng = random.Random(seed)
    lines = list(GOOD[:200])
    for at, kind in spots:
        if kind == "header":
            lines[at] = b"#Version: 1.0"
        elif kind == "tab-first":
            lines[at] = b"\t" + lines[at].split(b"\t", 1)[1]  # an empty date, 33 fields
        else:
            lines[at] = _damage(kind, lines[at], rng)
    block = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    layout = _Layout(LEGACY_FIELDS_33, False, False)
    columns = ["timestamp", "x_edge_request_id", "cs_user_agent", "sc_bytes"]
    fast, model = _parse_block(block, layout, columns), _parse_exact(block, layout, columns)
    assert (fast.lines, fast.header_lines, fast.blank_lines) == (model.lines, model.header_lines, model.blank_lines)
    assert sorted(fast.bad) == sorted(model.bad)
    assert fast.balanced and model.balanced

    def rows(b):
        return sorted(r for batch in b.batches for r in zip(*(batch.column(c).to_pylist() for c in columns), strict=True))

    assert rows(fast) == rows(model)
