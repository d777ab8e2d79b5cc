"""OBO text as obonet should see it: every line checked, the defects obonet would pass over counted.

obonet parses OBO 1.2 without line numbers and without complaint about structural defects that
lose annotations. :func:`checked_lines` passes the lines on, raising a line-numbered
:class:`~proteinbert.errors.FormatError` for a line that is not ``tag: value`` or a stanza header,
and records in :class:`OboDefects` duplicate ``[Term]`` ids, ``[Term]`` stanzas without an id or a
name and a file that ends mid-line (truncated); parents without a stanza are added by
:class:`~proteinbert.data.gene_ontology.GeneOntology`.

>>> import io
>>> defects = OboDefects()
>>> text = "[Term]\\nid: GO:1\\nname: a\\n\\n[Term]\\nid: GO:1\\nname: b"
>>> lines = list(checked_lines(io.StringIO(text), "x.obo", defects))
>>> defects.counts()
{'duplicate_ids': 1, 'incomplete_stanzas': 0, 'truncated': 1, 'dangling_parents': 0}
>>> defects.duplicate_ids
[(5, 'GO:1 (first at line 1)')]
>>> list(checked_lines(io.StringIO("id GO:1\\n"), "x.obo"))
Traceback (most recent call last):
proteinbert.errors.FormatError: Error in file x.obo at line 1: expected 'tag: value' or a [Stanza] header, found 'id GO:1'
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from ..errors import FormatError


@dataclass
class OboDefects:
    """Structural problems of an OBO file that lose annotations without failing to parse.

    Each list holds ``(line, description)`` pairs (line 0 when no line applies).
    """

    duplicate_ids: list = field(default_factory=list)
    incomplete_stanzas: list = field(default_factory=list)
    truncated: list = field(default_factory=list)
    dangling_parents: list = field(default_factory=list)

    _KINDS = (("duplicate_ids", "duplicate [Term] id(s)"),
              ("incomplete_stanzas", "[Term] stanza(s) without an id or a name"),
              ("truncated", "sign(s) of truncation"),
              ("dangling_parents", "parent(s) without a [Term] stanza"))

    def counts(self) -> dict:
        return {kind: len(getattr(self, kind)) for kind, _ in self._KINDS}

    def __bool__(self) -> bool:
        return any(self.counts().values())

    def describe(self, n_examples: int = 3) -> str:
        parts = []
        for kind, label in self._KINDS:
            items = getattr(self, kind)
            if items:
                examples = "; ".join((f"line {line}: " if line else "") + text for line, text in items[:n_examples])
                parts.append(f"{len(items):,} {label} (e.g. {examples})")
        return ", ".join(parts)


def checked_lines(handle: TextIO, path: str, defects: OboDefects | None = None) -> Iterator[str]:
    """Pass lines to obonet, raising a line-numbered FormatError where obonet would fail without one.

    With ``defects``, also record duplicate ``[Term]`` ids, ``[Term]`` stanzas lacking an id or a
    name, and a last line without its newline (a cut file).
    """
    lineno = 0
    seen: dict = {}
    stanza = None  # [kind, header line, id, has name]

    def close_stanza():
        if defects is None or stanza is None or stanza[0] != "[Term]":
            return
        kind, start, term_id, has_name = stanza
        if term_id is None or not has_name:
            missing = "id" if term_id is None else "name"
            defects.incomplete_stanzas.append((start, f"[Term] {term_id or ''} has no {missing}".replace("  ", " ")))
        if term_id is not None:
            if term_id in seen:
                defects.duplicate_ids.append((start, f"{term_id} (first at line {seen[term_id]})"))
            else:
                seen[term_id] = start

    line = "\n"
    try:
        for lineno, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith(("!", "[")):
                tag, colon, value = stripped.partition(":")
                if not colon or not tag or tag != tag.strip() or " " in tag or "\t" in tag:
                    raise FormatError(f"expected 'tag: value' or a [Stanza] header, found {stripped[:60]!r}",
                                      path, lineno)
                if stanza is not None:
                    if tag == "id":
                        stanza[2] = value.split("!", 1)[0].strip() or None
                    elif tag == "name":
                        stanza[3] = True
            elif stripped.startswith("["):
                if not stripped.endswith("]"):
                    raise FormatError(f"unterminated stanza header {stripped[:60]!r}", path, lineno)
                close_stanza()
                stanza = [stripped, lineno, None, False]
            elif not stripped and stanza is not None:
                close_stanza()
                stanza = None
            yield line
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as exc:
        raise FormatError(f"unreadable input after line {lineno} ({type(exc).__name__}: {exc})", path) from exc
    close_stanza()
    if defects is not None and lineno and not line.endswith(("\n", "\r")):
        defects.truncated.append((lineno, f"the file ends in the middle of a line ({line.strip()[:40]!r})"))


class LineSource:
    """Iterable + context manager, the shape obonet expects of an open file."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines

    def __iter__(self):
        return self._lines

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
