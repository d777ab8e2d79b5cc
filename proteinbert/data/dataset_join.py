"""Stages 1–2 of the dataset builder: read the inputs, join sequences with their GO annotations,
propagate the terms to their ancestors and spool the records into random buckets.

* UniRef XML + FASTA, or FASTA + GO TSV (:func:`spool_joined`): the annotation source goes into an
  on-disk table (:class:`~proteinbert.data.dataset_scratch.AnnotationStore`), then the FASTA
  streams past it; each sequence whose id is in the table becomes a record.
* UniProtKB XML (:func:`spool_uniprot`): the sequences are inside, one pass and no table.

Both return the :class:`~proteinbert.data.dataset_scratch.BucketSpool` and counts of what was
read and skipped (the ``join_skips`` of the file's metadata).
"""

from __future__ import annotations

import array
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError
from ..tokenizer import ResidueCheck
from .dataset_scratch import AnnotationStore, BucketSpool
from .gene_ontology import GeneOntology
from .progress import RecordProgress
from .record_sources import RecordSource
from .streams import file_sha256

logger = logging.getLogger(__name__)

_EMPTY = np.empty(0, dtype=np.int32)
_MAX_BUCKETS = 256


def spool_uniprot(settings, go: GeneOntology, tmp: Path, rng, inputs: list, seconds: dict):
    """Spool the entries of ``settings.xml`` (UniProtKB XML); appends the file to ``inputs``."""
    t = time.perf_counter()
    path = settings.xml
    size = os.path.getsize(path)
    # ~1.5 kB of gzipped UniProtKB XML per entry; a wrong guess only costs a re-split later.
    spool = BucketSpool(tmp, _bucket_count(size / 1500, settings.records_per_bucket), rng, len(go.terms))
    residues = ResidueCheck(path, settings.unknown_residues)
    n = 0
    with RecordSource("uniprot", path, settings.parallel) as source:
        progress = RecordProgress("UniProtKB XML", settings.progress, source)
        try:
            for name, acc, seq, go_ids, line in source:
                residues.check(seq, name, line)
                terms = go.propagate(go.resolve_many(go_ids)) if go_ids else _EMPTY
                spool.add(name, acc, seq, terms, str(path), line)
                n += 1
                progress.tick()
        finally:
            progress.close()
            spool.close()
        inputs.append(input_info("uniprot_xml", path, source))
    seconds["xml"] = time.perf_counter() - t
    return spool, {"source_records": n, "why_empty": f"{path} has no entries", **residue_stats(residues)}


def spool_joined(settings, go: GeneOntology, tmp: Path, rng, inputs: list, seconds: dict):
    """Spool the FASTA sequences of ``settings`` that have an entry in its UniRef XML or GO TSV.

    Entries without a sequence are counted (fatal with ``fail_on_missing_sequences``), and so are
    sequences without an entry; both files are appended to ``inputs``.
    """
    t = time.perf_counter()
    kind, src_path, role, desc = _annotation_source(settings)
    store = AnnotationStore(tmp / "annotations.sqlite", str(src_path))
    try:
        _load_annotations(store, kind, src_path, role, desc, go, settings, inputs)
        seconds[role] = time.perf_counter() - t
        logger.info("%s: %d entries from %s; %s", desc, store.n, src_path, go.skips.describe())

        t = time.perf_counter()
        spool, matched, without_entry, residues = _join_fasta(store, go, tmp, rng, settings, inputs)
        seconds["fasta_join"] = time.perf_counter() - t

        n_missing = store.n - int(spool.n)
        stats = {"source_records": store.n, "matched": int(spool.n), "missing_sequences": n_missing,
                 "missing_examples": store.names_of(_first_unmatched(matched, n_missing)),
                 "sequences_without_entry": without_entry,
                 "why_empty": f"no id of {src_path} ({store.n:,} entries) matches an id of {settings.fasta}",
                 **residue_stats(residues)}
    finally:
        store.close()
    _report_unjoined(stats, settings, src_path, store.n)
    return spool, stats


def _annotation_source(settings) -> tuple:
    """``(RecordSource kind, path, role in the metadata, progress label)`` of the annotation input."""
    if settings.input_kind == "uniref":
        return "uniref", settings.xml, "uniref_xml", "UniRef XML"
    return "tsv", settings.go_tsv, "go_tsv", "GO TSV"


def _load_annotations(store: AnnotationStore, kind: str, src_path: Path, role: str, desc: str, go: GeneOntology,
                      settings, inputs: list) -> None:
    """Stage 1: each entry's id and direct GO terms (resolved through alt_id) into ``store``."""
    with RecordSource(kind, src_path, settings.parallel) as source:
        progress = RecordProgress(desc, settings.progress, source)
        try:
            for key, name, acc, go_ids, _line in source:
                direct = sorted(set(go.resolve_many(go_ids))) if go_ids else ()
                store.add(key, name, acc, array.array("i", direct).tobytes())
                progress.tick()
        finally:
            progress.close()
        inputs.append(input_info(role, src_path, source))
    store.finish()


def _join_fasta(store: AnnotationStore, go: GeneOntology, tmp: Path, rng, settings, inputs: list) -> tuple:
    """Stage 2: stream the FASTA, join on the id, propagate, spool. Returns the spool, the
    "has a sequence" flag of each table row, the count of sequences without an entry and the
    residue check."""
    spool = BucketSpool(tmp, _bucket_count(store.n, settings.records_per_bucket), rng, len(go.terms))
    residues = ResidueCheck(settings.fasta, settings.unknown_residues)
    matched = np.zeros(store.n + 1, dtype=bool)  # by SQLite rowid, which starts at 1
    without_entry = 0
    fasta_path = settings.fasta
    with RecordSource("fasta", fasta_path, settings.parallel) as source:
        progress = RecordProgress("FASTA join", settings.progress, source)
        try:
            for rec_id, seq, line in source:
                progress.tick()
                row = store.get(rec_id)
                if row is None and "|" in rec_id:  # UniProt FASTA ids: sp|P12345|NAME_HUMAN
                    row = store.get(rec_id.split("|")[1])
                if row is None:
                    without_entry += 1
                    continue
                rowid, name, acc, blob = row
                if matched[rowid]:
                    raise FormatError(f"sequence id {rec_id!r} occurs more than once", fasta_path, line)
                matched[rowid] = True
                residues.check(seq, rec_id, line)
                terms = go.propagate(np.frombuffer(blob, dtype=np.int32).tolist()) if blob else _EMPTY
                spool.add(name, acc, seq, terms, str(fasta_path), line)
        finally:
            progress.close()
            spool.close()
        inputs.append(input_info("fasta", fasta_path, source))
    return spool, matched, without_entry, residues


def _first_unmatched(matched: np.ndarray, n_missing: int, limit: int = 5) -> list[int]:
    """Rowids of the first ``limit`` entries that met no sequence."""
    examples: list = []
    for start in range(1, len(matched), 1 << 20):  # chunked: never an index array of everything missing
        if len(examples) >= limit or not n_missing:
            break
        examples.extend((np.flatnonzero(~matched[start:start + (1 << 20)]) + start)[:limit - len(examples)].tolist())
    return examples


def _report_unjoined(stats: dict, settings, src_path: Path, n_entries: int) -> None:
    """Warn about sequences without an entry and entries without a sequence (or refuse the latter)."""
    fasta_path = settings.fasta
    if stats["sequences_without_entry"]:
        logger.warning("%d sequences in %s have no entry in %s and were skipped", stats["sequences_without_entry"],
                       fasta_path, src_path)
    if stats["missing_sequences"]:
        message = (f"{stats['missing_sequences']:,} of {n_entries:,} entries in {src_path} have no sequence in "
                   f"{fasta_path}, e.g. {', '.join(stats['missing_examples'])}")
        if settings.fail_on_missing_sequences:
            raise InputError(message)
        logger.warning("%s (skipped)", message)


def _bucket_count(n_expected: float, records_per_bucket: int) -> int:
    """Buckets for ``n_expected`` records: ~``records_per_bucket`` each, at most 256."""
    return int(min(_MAX_BUCKETS, max(1, math.ceil(n_expected / records_per_bucket))))


def residue_stats(residues: ResidueCheck) -> dict:
    """Log the count of non-letters read as <OTHER> (if any) and return it for the file's metadata."""
    residues.finish()
    return {"non_residue_characters": residues.n_chars, "records_with_non_residues": residues.n_seqs}


def input_info(role: str, path: Path, stream) -> dict:
    """An input file as the metadata records it: role, resolved path, size and SHA-256."""
    digest = stream.digest if stream is not None and stream.digest else file_sha256(path)
    return {"role": role, "path": str(Path(path).resolve()), "size": os.path.getsize(path), "sha256": digest}
