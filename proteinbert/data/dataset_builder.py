"""Build the pretraining HDF5 from UniRef XML + FASTA, UniProtKB XML, or FASTA + GO TSV.

Pipeline (every stage streams; memory does not grow with the input):

1. **Annotations.** Read the annotation source (UniRef XML or GO TSV) and store, per record, its
   id and its *direct* GO terms (resolved through ``alt_id``; obsolete and unknown ids counted and
   skipped) in a temporary SQLite table on disk, indexed by id after loading.
2. **Join.** Stream the FASTA; each sequence whose id is in the table becomes a record. Its GO
   terms are propagated to all ancestors (``is_a``, optionally ``part_of``) and the record is
   appended to one of several temporary *bucket* files chosen at random, while per-term record
   counts accumulate. Table records that never meet a sequence are counted (fatal on request).
   For UniProtKB XML (sequences inside) stages 1–2 are one pass with no table.
3. **Write.** Terms annotated to ≥ ``min_records_per_term`` records are kept (sorted GO ids).
   Buckets are loaded one at a time, shuffled, and written in order: random buckets followed by a
   shuffle inside each give a uniformly random permutation without holding everything in memory
   (a bucket that came out too large is split again at random first). The test-set mask is set
   from a list of UniProt ids and/or a probability. The file is written under a temporary name,
   checked with the reader and renamed only on success.

Unlike the 2021 pipeline, annotations *are* propagated to ancestors, no GO term is lost to an
index-0 test, and the FASTA join uses each entry's own cluster id.

Both cores: each input is parsed in a worker process (``parallel=True``) whose reader
decompresses and hashes on a thread, while this process resolves GO ids and stores/spools records.
Memory: the GO closure cache, a 64 MB SQLite page cache, one byte per annotation entry (the
"has a sequence" flags), per-term counts, and one bucket (≤ ``records_per_bucket`` records) at
write time; scratch files go next to the output (or ``temp_dir``) and are removed in all cases
(SIGTERM included; what a SIGKILLed run left is removed by the next run on the same output).
An output that is (or resolves to) an input is refused, and a lock file next to the output
(``.NAME.lock``) makes a second run on the same output fail at once. An output the disk cannot
hold is refused before HDF5 starts, and its space is reserved bucket by bucket as the scratch is
freed (:func:`~proteinbert.io_utils.writing_h5`: HDF5 cannot recover from a full disk); any
full-disk error names the output or the scratch directory. Sequence characters that are not
letters are counted in a warning (``unknown_residues="warn"``) or refused (``"error"``).

Besides the 2021 datasets the file holds ``uniprot_accessions`` (N strings: the UniProtKB
accession of each record, ``""`` when unknown) and root attributes describing how it was made
(GO release and file checksum, thresholds, seed, input files with sizes and SHA-256, counts of
everything skipped, ``tool_version``).

The stages live in one module each (this module runs them, and keeps their names importable from
here): :mod:`.dataset_settings` (what to build, what was built), :mod:`.dataset_join` (stages
1–2), :mod:`.dataset_scratch` (the annotation table and the bucket files), :mod:`.dataset_writer`
(stage 3: the HDF5 file, its size estimate and space reservation), :mod:`.holdout` (the test-set
rule shared with :func:`set_test_set`) and :mod:`.progress` (the progress bars).

>>> from proteinbert.data.dataset_builder import DatasetSettings, build_dataset
>>> settings = DatasetSettings(output="out.h5", go_obo="go.obo.gz", input_kind="fasta_tsv",
...                            fasta="sp.fasta.gz", go_tsv="sp.go.tsv.gz", min_records_per_term=100)
>>> summary = build_dataset(settings)  # doctest: +SKIP
>>> summary.n_records, summary.n_annotations  # doctest: +SKIP
(2000, 186)
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..errors import FormatError, InputError
from ..io_utils import (
    atomic_write_path, check_output_path, glob_escape, naming_space_errors, output_lock, remove_stale_partials,
    require_space, writing_h5,
)
from .dataset_join import input_info, residue_stats, spool_joined, spool_uniprot
from .dataset_scratch import AnnotationStore, BucketSpool, close_all, parse_spooled, shuffled_chunks
from .dataset_settings import INPUT_KINDS, BuildSummary, DatasetSettings
from .dataset_writer import estimated_h5_bytes, reclaimable_scratch_bytes
from .dataset_writer import write_h5 as _write_h5  # called by its old name: tests patch it here
from .gene_ontology import GeneOntology, GoSkipCounts, read_gene_ontology
from .h5dataset import PretrainingDataset
from .holdout import flag_test_records as _test_mask  # called by its old name: tests patch it here
from .holdout import read_test_ids, rng_for_test_set
from .progress import RecordProgress
from .streams import file_sha256

__all__ = ["INPUT_KINDS", "BuildSummary", "DatasetSettings", "build_dataset", "read_test_ids", "rng_for_test_set",
           "set_test_set"]

# Old private names, for code that reached into this module before it was split.
_AnnotationStore, _BucketSpool, _Progress = AnnotationStore, BucketSpool, RecordProgress
_close_all, _parse_spooled, _shuffled_chunks = close_all, parse_spooled, shuffled_chunks
_spool_uniprot, _spool_joined, _input_info, _residue_stats = spool_uniprot, spool_joined, input_info, residue_stats
_estimated_h5_bytes = estimated_h5_bytes

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------
# Building a dataset
# ---------------------------------------------------------------------------------------------------
def build_dataset(settings: DatasetSettings, ontology: GeneOntology | None = None) -> BuildSummary:
    """Run the whole pipeline; see the module docstring. Returns a :class:`BuildSummary`.

    ``ontology`` may pass an already loaded :class:`GeneOntology` of ``settings.go_obo`` (saves
    reading it again when building several datasets); its skip counts are reset.
    Raises :class:`~proteinbert.errors.UsageError` if the output is one of the inputs and
    :class:`~proteinbert.errors.OutputBusyError` if another run is writing it.
    """
    # Before any work: an output that is an input would be destroyed by the rename at the end.
    check_output_path(settings.output, settings.option_paths, "--output")
    with output_lock(settings.output, "--output"):
        scratch_parent = settings.temp_dir or settings.output.parent
        _remove_stale_scratch(settings.output, scratch_parent)
        try:
            return _build_dataset(settings, ontology)
        except sqlite3.Error as exc:  # the scratch table: a full disk, or an unwritable --temp-dir
            raise OSError(f"scratch database in {scratch_parent}: {exc}") from exc


def _remove_stale_scratch(output: Path, scratch_parent: Path) -> None:
    """Scratch of earlier runs on this output that were killed (the caller holds the output's lock)."""
    if scratch_parent.is_dir():
        for p in scratch_parent.glob(f".{glob_escape(output.name)}.tmp-*"):
            if p.is_dir() and not p.is_symlink():
                logger.info("removing %s, left by an earlier run that was killed", p)
                shutil.rmtree(p, ignore_errors=True)
    remove_stale_partials(output)


def _build_dataset(settings: DatasetSettings, ontology: GeneOntology | None) -> BuildSummary:
    t0 = time.perf_counter()
    seconds: dict = {}
    _check_inputs_exist(settings)
    go = _ontology_for(settings, ontology)
    go_info = {"path": str(settings.go_obo.resolve()), "size": os.path.getsize(settings.go_obo),
               "sha256": file_sha256(settings.go_obo), **go.summary()}
    seconds["ontology"] = time.perf_counter() - t0
    test_ids = read_test_ids(settings.test_ids_file) if settings.test_ids_file is not None else frozenset()

    output = settings.output
    scratch_parent = settings.temp_dir or output.parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    bucket_rng, order_rng = _shuffle_rngs(settings.seed)

    with tempfile.TemporaryDirectory(prefix=f".{output.name}.tmp-", dir=scratch_parent) as tmp:
        tmp = Path(tmp)
        inputs: list[dict] = []
        with naming_space_errors(tmp, "cannot write scratch files in"):
            spool_records = spool_uniprot if settings.input_kind == "uniprot" else spool_joined
            spool, stats = spool_records(settings, go, tmp, bucket_rng, inputs, seconds)
        kept = _kept_terms(spool, go, settings.min_records_per_term, stats)
        annotations = [go.terms[i] for i in kept]
        column_of = np.full(len(go.terms), -1, dtype=np.int64)
        column_of[kept] = np.arange(len(kept))

        t = time.perf_counter()
        nbytes = _require_output_space(output, tmp, spool, int(spool.term_counts[kept].sum()), len(annotations),
                                       settings.records_per_bucket)
        with atomic_write_path(output) as tmp_out:
            attrs = _root_attrs(settings, go, go_info, inputs, stats, spool.n, annotations)
            written = _write_h5(tmp_out, settings, spool, annotations, column_of, order_rng, test_ids, attrs,
                                name=output, reserve=nbytes)
            with PretrainingDataset(tmp_out) as check:  # never rename a file the reader would refuse
                if len(check) != spool.n or check.n_annotations != len(annotations):
                    raise FormatError("written file does not hold what was written", tmp_out)
        seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0

    summary = BuildSummary(
        output=str(output), n_records=int(spool.n), n_annotations=len(annotations),
        n_annotated_records=int(written["annotated"]), n_test_records=int(written["test"]),
        n_source_records=int(stats["source_records"]), n_missing_sequences=int(stats.get("missing_sequences", 0)),
        missing_sequence_examples=tuple(stats.get("missing_examples", ())),
        n_sequences_without_entry=int(stats.get("sequences_without_entry", 0)),
        test_ids_listed=len(test_ids), test_ids_not_found=len(test_ids) - int(written["test_ids_found"]),
        go=go_info, go_annotations=go.skips.as_dict(), inputs=tuple(inputs),
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
    logger.info("%s", summary.describe())
    return summary


def _check_inputs_exist(settings: DatasetSettings) -> None:
    for role, p in settings.input_paths.items():
        if not p.is_file():
            raise InputError(f"{role} input {str(p)!r} does not exist or is not a file")
    if settings.test_ids_file is not None and not settings.test_ids_file.is_file():
        raise InputError(f"test ids file {str(settings.test_ids_file)!r} does not exist or is not a file")


def _ontology_for(settings: DatasetSettings, ontology: GeneOntology | None) -> GeneOntology:
    """``settings.go_obo`` read now, or the ``ontology`` passed (checked, its skip counts reset)."""
    if ontology is None:
        return read_gene_ontology(settings.go_obo, follow_part_of=settings.follow_part_of,
                                  allow_defects=settings.allow_obo_defects)
    if ontology.follow_part_of != settings.follow_part_of:
        raise InputError(f"the ontology passed was loaded with follow_part_of={ontology.follow_part_of}, "
                         f"but settings.follow_part_of={settings.follow_part_of}")
    ontology.skips = GoSkipCounts()
    return ontology


def _shuffle_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The streams that choose each record's bucket and the order within the buckets."""
    bucket_ss, order_ss = np.random.SeedSequence([int(seed), 1]).spawn(2)
    return np.random.default_rng(bucket_ss), np.random.default_rng(order_ss)


def _kept_terms(spool: BucketSpool, go: GeneOntology, min_records: int, stats: dict) -> np.ndarray:
    """Indices of the GO terms annotated to ≥ ``min_records`` records; refuses an empty dataset."""
    counts = spool.term_counts
    if spool.n == 0:
        raise InputError("no records to write: " + stats.get("why_empty", "the inputs hold no usable records"))
    kept = np.flatnonzero(counts >= min_records)
    if len(kept) == 0:
        best = int(np.argmax(counts))
        raise InputError(
            f"no GO term is annotated to ≥ {min_records} records (the most frequent, "
            f"{go.terms[best]}, has {int(counts[best])} of {spool.n:,}); lower min_records_per_term (--min-records)")
    return kept


def _require_output_space(output: Path, scratch: Path, spool: BucketSpool, n_set: int, n_annotations: int,
                          records_per_bucket: int) -> int:
    """Refuse before HDF5 starts a file the disk cannot hold: HDF5 cannot recover from a full disk
    (it may crash the process). Returns the estimated size, to be reserved by :func:`_write_h5`."""
    reclaimed = reclaimable_scratch_bytes(output, scratch, spool, records_per_bucket)
    nbytes = estimated_h5_bytes(spool.n, spool.text_bytes, n_annotations, n_set)
    require_space(output, nbytes, "the dataset", reclaimed=reclaimed)
    return nbytes


def _root_attrs(settings: DatasetSettings, go: GeneOntology, go_info: dict, inputs: list, stats: dict, n: int,
                annotations: list) -> dict:
    """The root attributes saying how the file was made."""
    return {
        "format": "proteinbert pretraining dataset (2021 layout + metadata)",
        "tool": "proteinbert create_dataset",
        "tool_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input_kind": settings.input_kind,
        "inputs": json.dumps(inputs),
        "go_release": go.release,
        "go_obo": json.dumps(go_info),
        "go_relations_followed": "+".join(go_info["relations_followed"]),
        "min_records_per_term": int(settings.min_records_per_term),
        "seed": int(settings.seed),
        "test_probability": float(settings.test_probability),
        "test_ids_file": "" if settings.test_ids_file is None else str(settings.test_ids_file.resolve()),
        "n_records": int(n),
        "n_annotations": len(annotations),
        "go_annotation_skips": json.dumps(go.skips.as_dict()),
        "join_skips": json.dumps({k: v for k, v in stats.items() if k != "why_empty"}),
    }


# ---------------------------------------------------------------------------------------------------
# Test-set designation for an existing file
# ---------------------------------------------------------------------------------------------------
def set_test_set(dataset_path, test_ids_file=None, test_probability: float = 0.0, seed: int = 0,
                 output=None, progress: bool = True) -> dict:
    """Rewrite ``test_set_mask`` of an existing pretraining file (ours or a 2021 one).

    A record is in the test set if its ``uniprot_ids`` (or ``uniprot_accessions``) entry is listed
    in ``test_ids_file``, or with probability ``test_probability`` (the draw of
    :func:`rng_for_test_set`, as in ``build_dataset``). The change is made in a temporary copy that
    is renamed onto ``output`` — or, without ``output``, onto ``dataset_path`` — only when complete,
    so a failure (a full disk, a signal) leaves every existing file byte for byte as it was. In
    place therefore needs free space for one copy of the file. ``output`` may not be the input.
    """
    dataset_path = Path(dataset_path)
    if not 0.0 <= float(test_probability) <= 1.0:
        raise InputError(f"test_probability must be in [0, 1]. Received: test_probability={test_probability}")
    if test_ids_file is None and float(test_probability) == 0.0:
        raise InputError("give test ids (test_ids_file) and/or a test probability > 0")
    # In place, replace the file a symlink points to, not the link.
    target = Path(os.path.realpath(dataset_path)) if output is None else Path(output)
    if output is not None:
        check_output_path(output, {"H5": dataset_path, "--test-ids": test_ids_file}, "--output")
    test_ids = read_test_ids(test_ids_file) if test_ids_file is not None else frozenset()
    with PretrainingDataset(dataset_path) as ds:  # validates the layout first
        n = len(ds)

    with output_lock(target, "--output" if output is not None else "H5"):
        remove_stale_partials(target)
        # The copy plus its new mask must fit before HDF5 starts: it cannot recover from a full disk.
        require_space(target, _rewritten_bytes(dataset_path, n), "the rewritten dataset")
        # Never r+ on the original: HDF5 cannot roll back, so a failure half-way (ENOSPC) would leave
        # the file unreadable. The copy is checked with the reader before it replaces anything.
        with atomic_write_path(target) as tmp:
            shutil.copyfile(dataset_path, tmp)
            shutil.copymode(dataset_path, tmp)
            n_test, n_found = _rewrite_test_mask(tmp, n, target, test_ids, test_ids_file, test_probability, seed,
                                                 progress)
            with PretrainingDataset(tmp) as check:
                if len(check) != n:
                    raise FormatError("rewritten file does not hold the records of the input", str(dataset_path))
    result = {"path": str(output or dataset_path), "n_records": n, "n_test_records": n_test,
              "test_ids_listed": len(test_ids), "test_ids_not_found": len(test_ids) - n_found}
    logger.info("test set: %d of %d records (%d ids listed, %d not found)", result["n_test_records"], n,
                result["test_ids_listed"], result["test_ids_not_found"])
    return result


def _rewritten_bytes(path, n: int) -> int:
    """Disk space for the file ``path`` of ``n`` records with a new test mask: HDF5 does not reuse
    the old mask's space, so the new one goes after it."""
    return os.path.getsize(path) + n + (1 << 20)


def _rewrite_test_mask(path, n: int, target, test_ids, test_ids_file, probability: float, seed: int,
                       progress: bool) -> tuple[int, int]:
    """Replace ``test_set_mask`` of the HDF5 file ``path`` (``n`` records; ``target`` named in
    errors); ``(test records, listed ids found)``."""
    rng = rng_for_test_set(seed)
    found: set = set()
    chunk = 1 << 16
    with writing_h5(path, "r+", name=target, reserve=_rewritten_bytes(path, n)) as h5:
        if "test_set_mask.partial" in h5:
            del h5["test_set_mask.partial"]
        new = h5.create_dataset("test_set_mask.partial", shape=(n,), dtype=bool)
        has_acc = "uniprot_accessions" in h5
        n_test = 0
        bar = tqdm(total=n, desc="test set", unit=" rec", unit_scale=True, disable=not progress, mininterval=1.0)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m = stop - start
            names = accs = ()
            if test_ids:
                names = _as_str(h5["uniprot_ids"][start:stop])
                accs = _as_str(h5["uniprot_accessions"][start:stop]) if has_acc else [""] * m
            mask = _test_mask(m, names, accs, test_ids, rng, probability, found)
            new[start:stop] = mask
            n_test += int(mask.sum())
            bar.update(m)
        bar.close()
        del h5["test_set_mask"]
        h5.move("test_set_mask.partial", "test_set_mask")
        h5.attrs.update({"test_probability": float(probability), "seed_test_set": int(seed),
                         "test_ids_file": "" if test_ids_file is None else str(Path(test_ids_file).resolve()),
                         "n_test_records": n_test})
    return n_test, len(found)


def _as_str(values) -> list[str]:
    """HDF5 strings (``bytes`` or ``str``) as ``str``."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
