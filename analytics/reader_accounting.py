"""What the log reader read, line by line: every data line is a request or a bad line.

A log analysis that silently loses lines reports a wrong hit rate with a straight face, so the
reader accounts for every line of every input, and the accounting balances per file:

    requests + bad_lines == lines            (lines = data lines: ``#`` headers and blank lines excluded)

- a *bad line* costs exactly that line: it is counted and the first ones are kept as
  :class:`BadLine` (``file:line: reason`` plus a printable :func:`excerpt` of its bytes);
- a *file error* (:class:`FileError`) is damage that is not a line: not gzip, a truncated or corrupt
  gzip stream, a checksum mismatch, a file in no supported format. It says how many compressed bytes
  (or lines) could not be read; every line read before the damage is still counted above.

Line numbers are physical line numbers of the (decompressed) file, headers included, counted the way
``grep -n``/``sed -n Np`` count them: a line ends at ``\\n`` (a ``\\r`` before it is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

__all__ = [
    "FILE_ERROR_KINDS", "AccountingJSON", "BadLine", "BadLineJSON", "FileError", "FileErrorJSON", "FileStats",
    "FileStatsJSON", "accounting", "excerpt", "printable",
]

#: why a file (or a part of it) could not be read at all
FILE_ERROR_KINDS: tuple[str, ...] = (
    "open",       # cannot be opened or downloaded
    "not_gzip",   # named .gz (or compressed with something else) but not gzip data
    "truncated",  # the gzip stream ends before its end marker
    "corrupt",    # the compressed data is damaged (deflate error, bad header, trailing garbage)
    "checksum",   # the gzip CRC-32 or length check failed: the lines were kept but may be damaged
    "format",     # not a log in any supported format (binary data, unknown layout, no line readable)
    "internal",   # the reader lost count (a bug: please report it)
)
_MAX_EXAMPLES = 10
#: bytes of a bad line shown in its excerpt (the excerpt says how many more there were)
EXCERPT_BYTES = 160


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x00``, ``\\t``, ``\\u202e``…).

    Reasons and excerpts end up on terminals and in HTML/Markdown reports: a raw NUL, an ANSI escape
    or a bidi override in a log line must never reach them as such.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def excerpt(raw: bytes, limit: int = EXCERPT_BYTES) -> str:
    """A printable, escaped excerpt of a line's bytes, at most ``limit`` bytes of it.

    Valid UTF-8 text stays readable; a backslash is doubled, tabs read ``\\t``, control bytes, NUL and
    each byte of invalid UTF-8 read ``\\xNN`` (never U+FFFD: the reader of the excerpt sees the bytes
    that are really there). A longer line ends with ``… (+N bytes)``.
    """
    head = raw[:limit]
    text = head.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(printable(ch))
    more = len(raw) - len(head)
    return "".join(out) + (f"… (+{more} bytes)" if more > 0 else "")


class BadLineJSON(TypedDict):
    file: str
    line: int | None
    reason: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """One bad line: where it is, why it is bad, and what it looks like (escaped)."""

    file: str
    line: int | None
    reason: str
    excerpt: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"

    def to_json(self) -> BadLineJSON:
        return {"file": self.file, "line": self.line, "reason": self.reason, "excerpt": self.excerpt}


class FileErrorJSON(TypedDict):
    kind: str
    message: str
    unread_bytes: int | None
    unread_lines: int | None


@dataclass(frozen=True, slots=True)
class FileError:
    """Damage that is not one line: what happened, and how much could not be read."""

    kind: str  # one of FILE_ERROR_KINDS
    message: str
    unread_bytes: int | None = None  # (compressed) bytes after the damage that could not be read
    unread_lines: int | None = None

    def __str__(self) -> str:
        lost = []
        if self.unread_bytes:
            lost.append(f"{self.unread_bytes:,} bytes")
        if self.unread_lines:
            lost.append(f"{self.unread_lines:,} lines")
        return self.message + (f" ({' and '.join(lost)} could not be read)" if lost else "")

    def to_json(self) -> FileErrorJSON:
        return {"kind": self.kind, "message": self.message, "unread_bytes": self.unread_bytes,
                "unread_lines": self.unread_lines}


class FileStatsJSON(TypedDict):
    file: str
    format: str
    fields: int | None
    lines: int
    requests: int
    bad_lines: int
    in_range: int
    header_lines: int
    blank_lines: int
    balanced: bool
    errors: list[FileErrorJSON]
    examples: list[BadLineJSON]


@dataclass
class FileStats:
    """The accounting of one input (filled while it is read).

    ``lines`` data lines were read; each became one of ``requests`` or ``bad_lines``. ``rows`` of
    the requests were inside ``--from``/``--to`` and were yielded. ``header_lines`` (``#`` lines) and
    ``blank_lines`` are not data. ``errors`` are file-level damage (:class:`FileError`).
    """

    name: str
    format: str = ""
    fields: int | None = None
    lines: int = 0
    requests: int = 0
    bad_lines: int = 0
    rows: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    whitespace_lines: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason", the first few
    bad_examples: list[BadLine] = field(default_factory=list)  # the same, with their excerpts
    errors: list[FileError] = field(default_factory=list)

    def bad(self, line: int | None, reason: str, raw: bytes | None = None) -> None:
        """Count one bad line (``line`` is its physical number; ``raw`` its bytes, for the excerpt)."""
        self.bad_lines += 1
        if len(self.bad_examples) < _MAX_EXAMPLES:
            self.add_example(line, reason, raw)

    def add_example(self, line: int | None, reason: str, raw: bytes | None) -> None:
        item = BadLine(self.name, line, printable(reason), excerpt(raw) if raw is not None else "")
        self.bad_examples.append(item)
        self.examples.append(str(item))

    @property
    def wants_examples(self) -> bool:
        return len(self.bad_examples) < _MAX_EXAMPLES

    def fail(self, kind: str, message: str, *, unread_bytes: int | None = None,
             unread_lines: int | None = None) -> FileError:
        """Record file-level damage (not a bad line: no line is counted for it)."""
        err = FileError(kind, printable(message), unread_bytes, unread_lines)
        self.errors.append(err)
        return err

    @property
    def error(self) -> str | None:
        """All file errors as one readable string (None when there are none)."""
        return "; ".join(str(e) for e in self.errors) or None

    @property
    def balanced(self) -> bool:
        """The invariant: every data line read is a request or a bad line."""
        return self.requests + self.bad_lines == self.lines

    @property
    def damaged(self) -> bool:
        return bool(self.bad_lines or self.errors)

    @property
    def readable(self) -> bool:
        """Something usable came out of it: requests, or a clean (possibly empty) read."""
        return self.requests > 0 or not self.damaged

    def to_json(self) -> FileStatsJSON:
        return {
            "file": self.name, "format": self.format, "fields": self.fields, "lines": self.lines,
            "requests": self.requests, "bad_lines": self.bad_lines, "in_range": self.rows,
            "header_lines": self.header_lines, "blank_lines": self.blank_lines, "balanced": self.balanced,
            "errors": [e.to_json() for e in self.errors], "examples": [b.to_json() for b in self.bad_examples],
        }


class AccountingJSON(TypedDict):
    lines: int
    requests: int
    in_range: int
    bad_lines: int
    header_lines: int
    blank_lines: int
    file_errors: int
    files: int
    damaged_files: int
    unreadable_files: int
    readable: bool
    balanced: bool
    examples: list[BadLineJSON]
    per_file: list[FileStatsJSON]


def accounting(files: Sequence[FileStats], max_examples: int = _MAX_EXAMPLES) -> AccountingJSON:
    """The totals over ``files`` plus each file's own accounting (the ``accounting`` of ``--json``).

    ``readable`` is False when no input gave anything usable (or there was none): the CLI's exit 2.
    """
    examples: list[BadLineJSON] = []
    for f in files:
        examples.extend(b.to_json() for b in f.bad_examples[: max_examples - len(examples)])
    return {
        "lines": sum(f.lines for f in files),
        "requests": sum(f.requests for f in files),
        "in_range": sum(f.rows for f in files),
        "bad_lines": sum(f.bad_lines for f in files),
        "header_lines": sum(f.header_lines for f in files),
        "blank_lines": sum(f.blank_lines for f in files),
        "file_errors": sum(len(f.errors) for f in files),
        "files": len(files),
        "damaged_files": sum(1 for f in files if f.damaged),
        "unreadable_files": sum(1 for f in files if not f.readable),
        "readable": any(f.readable for f in files),
        "balanced": all(f.balanced for f in files),
        "examples": examples,
        "per_file": [f.to_json() for f in files],
    }
