"""Streaming FASTA reader (plain or gzipped) with line-numbered format errors.

>>> import io
>>> [(r.id, r.seq) for r in parse_fasta(io.StringIO(">a first\\nMK\\nV\\n>b\\nA\\n"))]
[('a', 'MKV'), ('b', 'A')]
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from ..errors import FormatError


@dataclass(frozen=True)
class FastaRecord:
    id: str
    description: str
    seq: str
    line: int  # line number of the header


def open_text(path) -> TextIO:
    """Open a text file, decompressing gzip transparently (by magic bytes, not the name)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline=None)
    return open(path, "r", encoding="utf-8", newline=None)


def parse_fasta(handle: TextIO, path: str = "<stream>", allow_empty: bool = False) -> Iterator[FastaRecord]:
    """Yield records from an open text handle.

    Raises :class:`FormatError` (with file and line) for text before the first header, an
    empty header, an empty sequence (unless ``allow_empty``) or a truncated gzip stream.
    """
    header = None
    header_line = 0
    chunks: list[str] = []
    lineno = 0

    def finish():
        rid, _, desc = header.partition(" ")
        seq = "".join(chunks)
        if not seq and not allow_empty:
            raise FormatError(f"record {rid!r} has an empty sequence", path, header_line)
        return FastaRecord(rid, desc.strip(), seq, header_line)

    try:
        for lineno, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if header is not None:
                    yield finish()
                header = line[1:].strip()
                header_line = lineno
                if not header:
                    raise FormatError("empty FASTA header", path, lineno)
                chunks = []
            elif header is None:
                raise FormatError(f"expected '>' at start of record, found {line[:30]!r}", path, lineno)
            else:
                chunks.append(line.replace(" ", ""))
    except (EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise FormatError(f"unreadable input after line {lineno} ({type(exc).__name__}: {exc})", path) from exc
    if header is None:
        raise FormatError("no FASTA records found (is this a FASTA file?)", path, lineno or None)
    yield finish()


def read_fasta(path, allow_empty: bool = False) -> Iterator[FastaRecord]:
    """Stream records from a FASTA file (``.gz`` or plain)."""
    with open_text(path) as handle:
        yield from parse_fasta(handle, str(path), allow_empty=allow_empty)


def check_unique_ids(records, path: str = "<stream>") -> Iterator[FastaRecord]:
    """Pass records through, raising :class:`FormatError` at the first repeated id."""
    seen: dict[str, int] = {}
    for rec in records:
        if rec.id in seen:
            raise FormatError(f"duplicate id {rec.id!r} (first seen at line {seen[rec.id]})", path, rec.line)
        seen[rec.id] = rec.line
        yield rec
