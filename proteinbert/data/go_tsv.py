"""Streaming reader for accession → GO id tables (the format of ``swissprot_go_2014/*.go.tsv.gz``).

Tab-separated, one protein per line: the accession in the first column, GO ids in the others,
several ids per cell joined by ``;`` (``,`` and spaces are accepted too; empty cells are fine).
A first line whose first cell is ``accession`` (any case) or that starts with ``#`` is a header.

>>> import io
>>> tsv = io.StringIO("accession\\tgo_mf\\tgo_bp\\nP1\\tGO:0005515;GO:0003677\\t\\nP2\\t\\tGO:0008150\\n")
>>> [(r.accession, r.go_ids, r.line) for r in parse_go_tsv(tsv)]
[('P1', ('GO:0005515', 'GO:0003677'), 2), ('P2', ('GO:0008150',), 3)]
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple, TextIO

from ..errors import FormatError

_SPLIT = re.compile(r"[;,\s]+")


class GoTsvRecord(NamedTuple):
    accession: str
    go_ids: tuple
    line: int


def parse_go_tsv(handle: TextIO, path: str = "<stream>") -> Iterator[GoTsvRecord]:
    """Yield one record per data line; raise :class:`FormatError` (with line) for malformed lines."""
    n = 0
    lineno = 0
    try:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark (spreadsheet exports) is no part of the id
            if not line.strip():
                continue
            if lineno == 1 and (line.startswith("#") or line.split("\t", 1)[0].strip().lower() == "accession"):
                continue
            if line.startswith("#"):
                continue
            acc, sep, rest = line.partition("\t")
            acc = acc.strip()
            if not sep:
                raise FormatError(f"expected 'accession<TAB>GO ids', found no tab in {line[:60]!r}", path, lineno)
            if not acc or " " in acc:
                raise FormatError(f"invalid accession {acc!r} in the first column", path, lineno)
            ids = tuple(g for g in _SPLIT.split(rest) if g)
            for g in ids:
                if not g.startswith("GO:"):
                    raise FormatError(f"expected GO ids like 'GO:0005515', found {g[:30]!r}", path, lineno)
            n += 1
            yield GoTsvRecord(acc, ids, lineno)
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text after line {lineno} ({exc})", path) from exc
    if n == 0:
        raise FormatError("no accession → GO rows found", path, lineno or None)

