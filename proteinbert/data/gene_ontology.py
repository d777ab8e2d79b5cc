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

The line checks and the defects found in the text are :mod:`proteinbert.data.obo_text`
(``OboDefects`` is importable from here too).

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

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, TextIO

import numpy as np
import obonet

from ..errors import FormatError
from .fasta import open_text
from .obo_text import LineSource, OboDefects, checked_lines

__all__ = ["PROPAGATING_RELATIONS", "GeneOntology", "GoSkipCounts", "OboDefects", "read_gene_ontology"]

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


def _split_obsolete(graph, path: str) -> tuple[list[str], set[str]]:
    """The ids of the graph's non-obsolete and obsolete [Term] stanzas; refuses a graph without terms."""
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
    return terms, obsolete


def _primary_of_alt_ids(graph, index: dict) -> dict[str, str]:
    """alt_id -> primary id; an alt id of an obsolete term resolves to that obsolete term."""
    alt_ids: dict[str, str] = {}
    for node, data in graph.nodes(data=True):
        for alt in data.get("alt_id", []) or []:
            if alt not in index:
                alt_ids.setdefault(alt, node)
    return alt_ids


def _parent_lists(graph, relations, index: dict, obsolete) -> tuple[list[list[int]], int, list[str]]:
    """Each term's parent indices over ``relations``, the count of edges to obsolete terms (skipped)
    and the edges to parents without a stanza (``"child rel parent"``, dangling: defects)."""
    parents: list[list[int]] = [[] for _ in index]
    to_obsolete = 0
    dangling: list[str] = []
    for child, parent, rel in graph.edges(keys=True):
        if rel not in relations or child not in index:
            continue
        if parent in index:
            parents[index[child]].append(index[parent])
        elif parent in obsolete:
            to_obsolete += 1
        else:
            dangling.append(f"{child} {rel} {parent}")
    return parents, to_obsolete, dangling


def _refuse_cycles(parents: list, terms, relations, path: str) -> None:
    """FormatError naming up to 3 cycles of the parent graph (the ancestor closure would never end)."""
    cycles = _find_cycles(parents)
    if not cycles:
        return

    def show(cycle):
        names = [terms[i] for i in cycle]
        return (f"{names[0]} is its own parent" if len(names) == 1
                else " ↔ ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else ""))

    raise FormatError(f"the {'/'.join(relations)} graph has cycles, so ancestors cannot be computed: "
                      + "; ".join(show(c) for c in cycles), path)


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

        terms, obsolete = _split_obsolete(graph, path)
        self.terms: tuple[str, ...] = tuple(sorted(terms))
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.terms)}
        self.obsolete: frozenset[str] = frozenset(obsolete)
        self.namespaces = {t: graph.nodes[t].get("namespace", "") for t in self.terms}
        # Obsolete terms keep their names: a model trained on an older release may still predict them.
        self.names = {node: str(data.get("name", "")) for node, data in graph.nodes(data=True) if data}
        self.alt_ids: dict[str, str] = _primary_of_alt_ids(graph, self.index)

        parents, self.edges_to_obsolete, dangling = _parent_lists(graph, relations, self.index, self.obsolete)
        self.dangling_parents = len(dangling)
        self.defects.dangling_parents.extend((0, edge) for edge in dangling)
        self._parents = [tuple(p) for p in parents]
        _refuse_cycles(self._parents, self.terms, relations, path)
        self._closure: dict[int, np.ndarray] = {}
        self.skips = GoSkipCounts()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_handle(cls, handle: TextIO, path: str = "<stream>", follow_part_of: bool = False,
                    allow_defects: bool = False) -> "GeneOntology":
        """Parse OBO text; any :class:`OboDefects` raise FormatError unless ``allow_defects`` (then a warning)."""
        defects = OboDefects()
        try:
            graph = obonet.read_obo(LineSource(checked_lines(handle, path, defects)), ignore_obsolete=False)
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
