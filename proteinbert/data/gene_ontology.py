"""The Gene Ontology, read from any OBO 1.2 release with obonet (``go.obo``, ``go-basic.obo``, gzipped or not).

What this module adds to obonet:

* ``alt_id`` → primary id, so annotations made against a merged term still count;
* obsolete terms are kept out of the term set but counted (annotations to them are skipped);
* the ancestor closure of a term over ``is_a`` (optionally ``part_of`` too), computed lazily and
  memoised, so only the terms that are actually used cost anything;
* a :class:`GoSkipCounts` summary of everything that was skipped while resolving annotations;
* line-numbered :class:`~proteinbert.errors.FormatError` for lines that are not ``tag: value``;
* ``is_a`` (and followed ``part_of``) cycles and self-loops are refused, naming the terms (the
  closure would never end);
* defects that silently lose annotations — duplicate ``[Term]`` ids, ``[Term]`` stanzas without an
  id or a name, a file that ends mid-line (truncated), parents that have no stanza — are counted
  in :class:`OboDefects`; reading fails on any of them unless ``allow_defects=True``.

>>> import io
>>> obo = io.StringIO('''format-version: 1.2
... data-version: releases/2000-01-01
...
... [Term]
... id: GO:0000001
... name: root
...
... [Term]
... id: GO:0000002
... name: child
... alt_id: GO:0000009
... is_a: GO:0000001 ! root
... ''')
>>> go = GeneOntology.from_handle(obo)
>>> go.release, len(go)
('releases/2000-01-01', 2)
>>> go.ancestors("GO:0000009")  # alt id resolved, then closure over is_a
('GO:0000001', 'GO:0000002')
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np
import obonet

from ..errors import FormatError
from .fasta import open_text

logger = logging.getLogger(__name__)

#: The GO relationships that imply "annotated to the child ⇒ annotated to the parent".
PROPAGATING_RELATIONS = ("is_a", "part_of")


@dataclass
class GoSkipCounts:
    """How many annotation instances were resolved, remapped or skipped (mutable tally).

    ``unknown_examples`` keeps the most frequent unknown ids for the summary message.
    """

    resolved: int = 0
    via_alt_id: int = 0
    obsolete: int = 0
    unknown: int = 0
    unknown_ids: Counter = field(default_factory=Counter)
    obsolete_ids: Counter = field(default_factory=Counter)

    def as_dict(self, n_examples: int = 10) -> dict:
        return {
            "resolved": self.resolved,
            "via_alt_id": self.via_alt_id,
            "obsolete_skipped": self.obsolete,
            "unknown_skipped": self.unknown,
            "distinct_unknown_ids": len(self.unknown_ids),
            "distinct_obsolete_ids": len(self.obsolete_ids),
            "unknown_examples": [k for k, _ in self.unknown_ids.most_common(n_examples)],
            "obsolete_examples": [k for k, _ in self.obsolete_ids.most_common(n_examples)],
        }

    def describe(self) -> str:
        d = self.as_dict(5)
        text = (f"{d['resolved']:,} GO annotations resolved ({d['via_alt_id']:,} through alt_id); "
                f"skipped {d['obsolete_skipped']:,} to obsolete terms ({d['distinct_obsolete_ids']:,} ids) "
                f"and {d['unknown_skipped']:,} to ids unknown to this ontology ({d['distinct_unknown_ids']:,} ids)")
        if d["unknown_examples"]:
            text += f", e.g. {', '.join(d['unknown_examples'])}"
        return text


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


def _checked_lines(handle: TextIO, path: str, defects: OboDefects | None = None) -> Iterator[str]:
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


def _find_cycles(parents: list, limit: int = 3) -> list[list[int]]:
    """Up to ``limit`` cycles of the parent graph (each a list of node indices, a self-loop a list of one).

    Iterative Tarjan strongly-connected components: every component of more than one node, or a
    node that is its own parent, holds a cycle.
    """
    n = len(parents)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, i = work[-1]
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            if i < len(parents[node]):
                work[-1] = (node, i + 1)
                child = parents[node][i]
                if index[child] == -1:
                    work.append((child, 0))
                elif on_stack[child]:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1 or node in parents[node]:
                    found.append(sorted(component))
                    if len(found) >= limit:
                        return found
    return found


class _LineSource:
    """Iterable + context manager, the shape obonet expects of an open file."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines

    def __iter__(self):
        return self._lines

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class GeneOntology:
    """An OBO ontology reduced to what annotation propagation needs.

    ``terms`` are the primary ids of non-obsolete [Term] stanzas, sorted; ``index`` maps them to
    positions in ``terms`` (the integer ids used by the dataset builder). A cycle over the followed
    relations raises :class:`~proteinbert.errors.FormatError`; other defects are collected in
    ``defects`` (:meth:`read` refuses them unless ``allow_defects``).
    """

    def __init__(self, graph, path: str = "<stream>", follow_part_of: bool = False,
                 defects: OboDefects | None = None):
        self.path = path
        self.defects = defects if defects is not None else OboDefects()
        self.follow_part_of = bool(follow_part_of)
        self.release = str(graph.graph.get("data-version") or graph.graph.get("date") or "unknown")
        self.format_version = str(graph.graph.get("format-version", ""))
        relations = PROPAGATING_RELATIONS if follow_part_of else ("is_a",)

        obsolete = set()
        terms = []
        for node, data in graph.nodes(data=True):
            if not data:  # obonet adds a bare node for a parent that has no stanza of its own
                continue
            if str(data.get("is_obsolete", "false")).lower() == "true":
                obsolete.add(node)
            else:
                terms.append(node)
        if not terms:
            raise FormatError("no (non-obsolete) [Term] stanzas found — is this an OBO file?", path)
        self.terms: tuple[str, ...] = tuple(sorted(terms))
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.terms)}
        self.obsolete: frozenset[str] = frozenset(obsolete)
        self.namespaces = {t: graph.nodes[t].get("namespace", "") for t in self.terms}
        # Obsolete terms keep their names: a model trained on an older release may still predict them.
        self.names = {node: str(data.get("name", "")) for node, data in graph.nodes(data=True) if data}

        # alt_id -> primary; an alt id of an obsolete term resolves to that obsolete term.
        self.alt_ids: dict[str, str] = {}
        for node, data in graph.nodes(data=True):
            for alt in data.get("alt_id", []) or []:
                if alt not in self.index:
                    self.alt_ids.setdefault(alt, node)

        self.dangling_parents = 0
        self.edges_to_obsolete = 0
        parents: list[list[int]] = [[] for _ in self.terms]
        for child, parent, rel in graph.edges(keys=True):
            if rel not in relations or child not in self.index:
                continue
            if parent in self.index:
                parents[self.index[child]].append(self.index[parent])
            elif parent in obsolete:
                self.edges_to_obsolete += 1
            else:
                self.dangling_parents += 1
                self.defects.dangling_parents.append((0, f"{child} {rel} {parent}"))
        self._parents = [tuple(p) for p in parents]
        cycles = _find_cycles(self._parents)
        if cycles:
            def show(cycle):
                names = [self.terms[i] for i in cycle]
                return (f"{names[0]} is its own parent" if len(names) == 1
                        else " ↔ ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else ""))
            raise FormatError(f"the {'/'.join(relations)} graph has cycles, so ancestors cannot be computed: "
                              + "; ".join(show(c) for c in cycles), path)
        self._closure: dict[int, np.ndarray] = {}
        self.skips = GoSkipCounts()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_handle(cls, handle: TextIO, path: str = "<stream>", follow_part_of: bool = False,
                    allow_defects: bool = False) -> "GeneOntology":
        """Parse OBO text; any :class:`OboDefects` raise FormatError unless ``allow_defects`` (then a warning)."""
        defects = OboDefects()
        try:
            graph = obonet.read_obo(_LineSource(_checked_lines(handle, path, defects)), ignore_obsolete=False)
        except FormatError:
            raise
        except (ValueError, KeyError) as exc:
            if defects:  # e.g. obonet's KeyError 'id' for a stanza without one: say which
                raise FormatError(defects.describe(), path) from exc
            raise FormatError(f"not a valid OBO file ({type(exc).__name__}: {exc})", path) from exc
        go = cls(graph, path, follow_part_of, defects)
        if go.defects:
            if not allow_defects:
                raise FormatError(f"{go.defects.describe()}; annotations to the terms concerned would be lost. "
                                  "Fix the file or allow the defects (create_dataset --allow-obo-defects)", path)
            logger.warning("%s: %s (allowed; annotations to these terms may be lost)", path, go.defects.describe())
        return go

    @classmethod
    def read(cls, path, follow_part_of: bool = False, allow_defects: bool = False) -> "GeneOntology":
        """Read an OBO file (plain or gzipped, detected by content); see :meth:`from_handle`."""
        path = Path(path)
        with open_text(path) as handle:
            return cls.from_handle(handle, str(path), follow_part_of, allow_defects)

    # -- queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.terms)

    def resolve(self, go_id: str) -> int | None:
        """Index of the primary term for ``go_id`` (through alt_id), or None (counted in ``skips``)."""
        idx = self.index.get(go_id)
        if idx is not None:
            self.skips.resolved += 1
            return idx
        primary = self.alt_ids.get(go_id)
        if primary is not None:
            idx = self.index.get(primary)
            if idx is not None:
                self.skips.resolved += 1
                self.skips.via_alt_id += 1
                return idx
            go_id = primary
        if go_id in self.obsolete:
            self.skips.obsolete += 1
            self.skips.obsolete_ids[go_id] += 1
        else:
            self.skips.unknown += 1
            self.skips.unknown_ids[go_id] += 1
        return None

    def resolve_many(self, go_ids: Iterable[str]) -> list[int]:
        out = []
        for g in go_ids:
            i = self.resolve(g)
            if i is not None:
                out.append(i)
        return out

    def ancestor_indices(self, idx: int) -> np.ndarray:
        """Sorted int32 indices of ``idx`` and all its ancestors (memoised)."""
        got = self._closure.get(idx)
        if got is not None:
            return got
        # Iterative post-order so deep hierarchies cannot hit the recursion limit.
        stack = [idx]
        while stack:
            node = stack[-1]
            if node in self._closure:
                stack.pop()
                continue
            pending = [p for p in self._parents[node] if p not in self._closure]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            acc = {node}
            for p in self._parents[node]:
                acc.update(self._closure[p].tolist())
            self._closure[node] = np.array(sorted(acc), dtype=np.int32)
        return self._closure[idx]

    def propagate(self, indices: Iterable[int]) -> np.ndarray:
        """Sorted unique int32 indices of the given terms and all their ancestors."""
        indices = list(indices)
        if not indices:
            return np.empty(0, dtype=np.int32)
        if len(indices) == 1:
            return self.ancestor_indices(indices[0])
        return np.unique(np.concatenate([self.ancestor_indices(i) for i in indices]))

    def ancestors(self, go_id: str) -> tuple[str, ...]:
        """GO ids of ``go_id`` (resolved through alt_id) and all its ancestors, sorted."""
        idx = self.index.get(go_id)
        if idx is None and go_id in self.alt_ids:
            idx = self.index.get(self.alt_ids[go_id])
        if idx is None:
            raise KeyError(go_id)
        return tuple(self.terms[i] for i in self.ancestor_indices(idx))

    def summary(self) -> dict:
        """Counts describing the ontology and what it leaves out."""
        return {
            "path": self.path,
            "release": self.release,
            "terms": len(self.terms),
            "obsolete_terms_skipped": len(self.obsolete),
            "alt_ids": len(self.alt_ids),
            "relations_followed": list(PROPAGATING_RELATIONS if self.follow_part_of else ("is_a",)),
            "edges_to_obsolete_skipped": self.edges_to_obsolete,
            "edges_to_missing_terms_skipped": self.dangling_parents,
            "defects": self.defects.counts(),
        }


def read_gene_ontology(path, follow_part_of: bool = False, allow_defects: bool = False) -> GeneOntology:
    """Read an OBO file; see :class:`GeneOntology` and :meth:`GeneOntology.from_handle`."""
    go = GeneOntology.read(path, follow_part_of=follow_part_of, allow_defects=allow_defects)
    s = go.summary()
    logger.info("GO %s from %s: %d terms, %d obsolete skipped, %d alt ids, following %s",
                s["release"], s["path"], s["terms"], s["obsolete_terms_skipped"], s["alt_ids"],
                "+".join(s["relations_followed"]))
    return go
