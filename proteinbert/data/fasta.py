"""Streaming FASTA reader (plain or gzipped) with line-numbered format errors.

:func:`parse_fasta` reads a path (``str`` or ``os.PathLike``: always a file name, never FASTA
text) or an open text stream (any iterable of lines that is not a ``str``). FASTA text in a string
goes in through ``io.StringIO``:

>>> import io
>>> [(r.id, r.seq) for r in parse_fasta(io.StringIO(">a first\\nMK\\nV\\n>b\\nA\\n"))]
[('a', 'MKV'), ('b', 'A')]
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from ..errors import FormatError, InputError


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


def parse_fasta(source, path: str | None = None, allow_empty: bool = False) -> Iterator[FastaRecord]:
    """Yield the records of ``source``: a FASTA file's path (``str`` or ``os.PathLike``; plain or
    gzipped), or an open text stream (any iterable of ``str`` lines, e.g. ``io.StringIO(text)``).

    ``path`` names the input in error messages (default: the file's path, else the stream's
    ``name``, else ``"<stream>"``). A ``str`` is always a path: one that names no file raises
    ``FileNotFoundError`` (or :class:`~proteinbert.errors.InputError` when it looks like FASTA
    text) at the call, before any record is read. Raises :class:`FormatError` (with file and line)
    for text before the first header, an empty header, an empty sequence (unless ``allow_empty``)
    or a truncated gzip stream.

    >>> parse_fasta(">a\\nMK\\n")
    Traceback (most recent call last):
    proteinbert.errors.InputError: parse_fasta reads a str as a file name, and '>a\\nMK\\n' looks like FASTA text: pass the text as io.StringIO(text)
    >>> parse_fasta("no/such.fasta")
    Traceback (most recent call last):
    FileNotFoundError: [Errno 2] No such FASTA file: 'no/such.fasta'
    """
    if isinstance(source, (str, os.PathLike)):
        file = os.fspath(source)
        if isinstance(file, bytes):
            raise TypeError(f"parse_fasta needs a str or os.PathLike path, not a bytes one. Received: {source!r}")
        if not os.path.isfile(file):
            if not os.path.exists(file) and (file.lstrip().startswith(">") or "\n" in file):
                shown = file if len(file) <= 40 else file[:37] + "..."
                raise InputError(f"parse_fasta reads a str as a file name, and {shown!r} looks like FASTA text: "
                                 "pass the text as io.StringIO(text)")
            if os.path.isdir(file):
                raise IsADirectoryError(21, "A FASTA file is needed, not a directory", file)
            raise FileNotFoundError(2, "No such FASTA file", file)
        return _parse_file(file, path if path is not None else file, allow_empty)
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("parse_fasta takes a path or a text stream, not bytes: decode them and pass "
                        "io.StringIO(text), or pass the file's path")
    if isinstance(source, (io.RawIOBase, io.BufferedIOBase)):  # a binary stream: read it as UTF-8 text
        source = io.TextIOWrapper(source, encoding="utf-8", newline=None)
    if not hasattr(source, "__iter__"):
        raise TypeError(f"parse_fasta takes a path or a text stream. Received: {type(source).__name__}")
    if path is None:
        name = getattr(source, "name", None)
        path = name if isinstance(name, str) else "<stream>"
    return _parse_lines(source, path, allow_empty)


def _parse_file(file: str, path: str, allow_empty: bool) -> Iterator[FastaRecord]:
    with open_text(file) as handle:
        yield from _parse_lines(handle, path, allow_empty)


def _parse_lines(handle: Iterable[str], path: str, allow_empty: bool) -> Iterator[FastaRecord]:
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
    """Stream records from a FASTA file (``.gz`` or plain); the same as ``parse_fasta(path)``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_fasta takes a path; for a stream use parse_fasta. Received: {type(path).__name__}")
    return parse_fasta(path, str(path), allow_empty=allow_empty)


def check_unique_ids(records, path: str = "<stream>") -> Iterator[FastaRecord]:
    """Pass records through, raising :class:`FormatError` at the first repeated id."""
    seen: dict[str, int] = {}
    for rec in records:
        if rec.id in seen:
            raise FormatError(f"duplicate id {rec.id!r} (first seen at line {seen[rec.id]})", path, rec.line)
        seen[rec.id] = rec.line
        yield rec
