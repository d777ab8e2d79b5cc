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

>>> from proteinbert.data.dataset_builder import DatasetSettings, build_dataset
>>> settings = DatasetSettings(output="out.h5", go_obo="go.obo.gz", input_kind="fasta_tsv",
...                            fasta="sp.fasta.gz", go_tsv="sp.go.tsv.gz", min_records_per_term=100)
>>> summary = build_dataset(settings)  # doctest: +SKIP
>>> summary.n_records, summary.n_annotations  # doctest: +SKIP
(2000, 186)
"""

from __future__ import annotations

import array
import datetime
import json
import logging
import math
import os
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..errors import FormatError, InputError
from ..io_utils import (
    atomic_write_path, check_output_path, glob_escape, naming_space_errors, output_lock, remove_stale_partials,
    require_space, reserve_h5, writing_h5,
)
from ..tokenizer import DEFAULT_UNKNOWN_RESIDUES, UNKNOWN_RESIDUE_POLICIES, ResidueCheck
from .fasta import open_text
from .gene_ontology import GeneOntology, GoSkipCounts, read_gene_ontology
from .h5dataset import PretrainingDataset, create_pretraining_datasets
from .streams import file_sha256
from .record_sources import RecordSource

logger = logging.getLogger(__name__)

INPUT_KINDS = ("uniref", "uniprot", "fasta_tsv")
_EMPTY = np.empty(0, dtype=np.int32)


@dataclass(frozen=True)
class DatasetSettings:
    """Everything ``build_dataset`` needs. Paths may be ``str`` or ``Path``.

    ``input_kind``: ``"uniref"`` (``xml`` = UniRef XML + ``fasta`` = UniRef FASTA), ``"uniprot"``
    (``xml`` = UniProtKB XML with sequences) or ``"fasta_tsv"`` (``fasta`` + ``go_tsv``).
    Test-set ids are matched against UniProtKB entry names and accessions.
    """

    output: Path
    go_obo: Path
    input_kind: str
    xml: Path | None = None
    fasta: Path | None = None
    go_tsv: Path | None = None
    min_records_per_term: int = 100
    seed: int = 0
    test_ids_file: Path | None = None
    test_probability: float = 0.0
    follow_part_of: bool = False
    fail_on_missing_sequences: bool = False
    temp_dir: Path | None = None
    records_per_bucket: int = 100_000
    progress: bool = True
    parallel: bool = True  # parse each input in a worker process (both cores); False: one process
    allow_obo_defects: bool = False  # duplicate/incomplete stanzas, truncation, dangling parents: warn only
    unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES  # non-letters in a sequence: "warn" (read as <OTHER>) or "error"

    def __post_init__(self):
        for name in ("output", "go_obo", "xml", "fasta", "go_tsv", "test_ids_file", "temp_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        needs = {"uniref": ("xml", "fasta"), "uniprot": ("xml",), "fasta_tsv": ("fasta", "go_tsv")}
        if self.input_kind not in needs:
            raise InputError(f"input_kind must be one of {', '.join(INPUT_KINDS)}. Received: input_kind={self.input_kind!r}")
        missing = [n for n in needs[self.input_kind] if getattr(self, n) is None]
        if missing:
            raise InputError(f"input_kind={self.input_kind!r} needs {' and '.join(missing)}")
        extra = [n for n in ("xml", "fasta", "go_tsv") if n not in needs[self.input_kind] and getattr(self, n) is not None]
        if extra:
            raise InputError(f"input_kind={self.input_kind!r} does not use {' or '.join(extra)}")
        if int(self.min_records_per_term) < 1:
            raise InputError(f"min_records_per_term must be ≥ 1. Received: min_records_per_term={self.min_records_per_term}")
        if not 0.0 <= float(self.test_probability) <= 1.0:
            raise InputError(f"test_probability must be in [0, 1]. Received: test_probability={self.test_probability}")
        if int(self.records_per_bucket) < 1:
            raise InputError(f"records_per_bucket must be ≥ 1. Received: records_per_bucket={self.records_per_bucket}")
        if self.unknown_residues not in UNKNOWN_RESIDUE_POLICIES:
            raise InputError(f"unknown_residues must be one of {', '.join(UNKNOWN_RESIDUE_POLICIES)}. "
                             f"Received: unknown_residues={self.unknown_residues!r}")

    @property
    def input_paths(self) -> dict[str, Path]:
        roles = {"uniref": (("uniref_xml", self.xml), ("fasta", self.fasta)),
                 "uniprot": (("uniprot_xml", self.xml),),
                 "fasta_tsv": (("fasta", self.fasta), ("go_tsv", self.go_tsv))}[self.input_kind]
        return dict(roles)

    @property
    def option_paths(self) -> dict:
        """Every input file by its ``create_dataset`` option (for messages and the output check)."""
        xml_option = "--uniref-xml" if self.input_kind == "uniref" else "--uniprot-xml"
        return {xml_option: self.xml, "--fasta": self.fasta, "--go-tsv": self.go_tsv, "--go-obo": self.go_obo,
                "--test-ids": self.test_ids_file}


@dataclass(frozen=True)
class BuildSummary:
    """What was written and everything that was skipped on the way."""

    output: str
    n_records: int
    n_annotations: int
    n_annotated_records: int
    n_test_records: int
    n_source_records: int
    n_missing_sequences: int
    missing_sequence_examples: tuple
    n_sequences_without_entry: int
    test_ids_listed: int
    test_ids_not_found: int
    go: dict
    go_annotations: dict
    inputs: tuple
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        lines = [f"wrote {self.output}: {self.n_records:,} records × {self.n_annotations:,} GO terms "
                 f"({self.n_annotated_records:,} records with ≥ 1 kept term, {self.n_test_records:,} in the test set)"]
        if self.n_missing_sequences:
            lines.append(f"{self.n_missing_sequences:,} annotated entries had no sequence in the FASTA and were skipped, "
                         f"e.g. {', '.join(self.missing_sequence_examples)}")
        if self.n_sequences_without_entry:
            lines.append(f"{self.n_sequences_without_entry:,} FASTA sequences had no annotation entry and were skipped")
        if self.test_ids_listed:
            lines.append(f"test ids: {self.test_ids_listed:,} listed, {self.test_ids_not_found:,} not found in the dataset")
        g = self.go_annotations
        lines.append(f"GO annotations: {g['resolved']:,} resolved ({g['via_alt_id']:,} via alt_id), "
                     f"{g['obsolete_skipped']:,} obsolete and {g['unknown_skipped']:,} unknown skipped")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Temporary stores
# ---------------------------------------------------------------------------------------------------
class _AnnotationStore:
    """id → (entry name, accession, direct GO term indices) in an on-disk SQLite table."""

    _BATCH = 20_000

    def __init__(self, path: Path, source_path: str):
        self.source_path = source_path
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE", "cache_size=-65536",
                       "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        try:  # keep the index sort's scratch space next to the output, not in a small /tmp
            self.db.execute(f"PRAGMA temp_store_directory='{path.parent}'")
        except sqlite3.Error:
            pass
        self.db.execute("CREATE TABLE ann (key TEXT NOT NULL, name TEXT NOT NULL, acc TEXT NOT NULL, terms BLOB NOT NULL)")
        self._pending: list = []
        self.n = 0

    def add(self, key: str, name: str, acc: str, terms: bytes) -> None:
        self._pending.append((key, name, acc, terms))
        if len(self._pending) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO ann VALUES (?, ?, ?, ?)", self._pending)
            self.db.execute("COMMIT")
            self.n += len(self._pending)
            self._pending = []

    def finish(self) -> None:
        self._flush()
        try:
            self.db.execute("CREATE UNIQUE INDEX ann_key ON ann(key)")
        except sqlite3.IntegrityError:
            key, count = self.db.execute("SELECT key, COUNT(*) AS c FROM ann GROUP BY key HAVING c > 1 LIMIT 1").fetchone()
            raise FormatError(f"record id {key!r} occurs {count} times (ids must be unique)", self.source_path) from None
        self._cur = self.db.cursor()

    def get(self, key: str):
        return self._cur.execute("SELECT rowid, name, acc, terms FROM ann WHERE key = ?", (key,)).fetchone()

    def names_of(self, rowids) -> list[str]:
        return [self.db.execute("SELECT key FROM ann WHERE rowid = ?", (int(r),)).fetchone()[0] for r in rowids]

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)  # its space is needed for the output


class _BucketSpool:
    """Records appended to randomly chosen bucket files; per-term record counts on the side."""

    def __init__(self, directory: Path, n_buckets: int, rng: np.random.Generator, n_terms: int):
        self.directory = directory
        self.rng = rng
        self.n_buckets = n_buckets
        self.paths = [directory / f"bucket-{i:04d}.tsv" for i in range(n_buckets)]
        self.files = [open(p, "w", encoding="utf-8", buffering=1 << 16) for p in self.paths]
        self.sizes = [0] * n_buckets
        self.term_counts = np.zeros(n_terms, dtype=np.int64)
        self.n = 0
        self.text_bytes = 0  # characters of ids, accessions and sequences (they are ASCII): sizes the output
        self._draws: list = []

    def add(self, name: str, acc: str, seq: str, terms: np.ndarray, path: str, line: int) -> None:
        if "\t" in name or "\t" in acc or "\t" in seq or "\n" in name or "\n" in acc:
            raise FormatError(f"record {name!r} contains a tab or newline in its id or sequence", path, line)
        if not self._draws:
            self._draws = self.rng.integers(0, self.n_buckets, 1 << 16).tolist()
        b = self._draws.pop()
        self.files[b].write(f"{name}\t{acc}\t{seq}\t{terms.tobytes().hex()}\n")
        self.sizes[b] += 1
        if len(terms):
            self.term_counts[terms] += 1
        self.n += 1
        self.text_bytes += len(name) + len(acc) + len(seq)

    def close(self) -> None:
        _close_all(self.files)


def _close_all(files) -> None:
    """Close every file; then raise the first error (a full disk fails the flush of each)."""
    errors = []
    for f in files:
        try:
            f.close()
        except OSError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _parse_spooled(line: str) -> tuple:
    name, acc, seq, terms = line.rstrip("\n").split("\t")
    return name, acc, seq, np.frombuffer(bytes.fromhex(terms), dtype=np.int32)


def _shuffled_chunks(path: Path, count: int, limit: int, rng: np.random.Generator) -> Iterator[list]:
    """Records of one bucket file in a uniformly random order, never loading more than ~``limit``.

    The file is deleted once read.
    """
    if count <= limit:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        path.unlink()  # free the scratch space as we go
        order = rng.permutation(len(lines))
        records = [_parse_spooled(lines[i]) for i in order]
        del lines
        yield records
        return
    # Too large to hold: split it again at random (a further level of the same bucket shuffle).
    n_sub = max(2, math.ceil(2 * count / limit))
    sub_paths = [path.with_name(f"{path.name}.{i:03d}") for i in range(n_sub)]
    sub_sizes = [0] * n_sub
    with naming_space_errors(path.parent, "cannot write scratch files in"):
        files = [open(p, "w", encoding="utf-8", buffering=1 << 16) for p in sub_paths]
        try:
            with open(path, encoding="utf-8") as f:
                draws: list = []
                for line in f:
                    if not draws:
                        draws = rng.integers(0, n_sub, 1 << 16).tolist()
                    b = draws.pop()
                    files[b].write(line)
                    sub_sizes[b] += 1
        finally:
            _close_all(files)
    path.unlink()
    for p, n in zip(sub_paths, sub_sizes):
        yield from _shuffled_chunks(p, n, limit, rng)


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------
def rng_for_test_set(seed: int) -> np.random.Generator:
    """The random stream that draws test-set membership (one uniform draw per record, in file order).

    ``build_dataset`` and :func:`set_test_set` both use it, so the same seed and probability give
    the same mask whether the test set is chosen while building or afterwards.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2]))


def _shuffle_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    bucket_ss, order_ss = np.random.SeedSequence([int(seed), 1]).spawn(2)
    return np.random.default_rng(bucket_ss), np.random.default_rng(order_ss)


def read_test_ids(path) -> frozenset:
    """UniProt ids (entry names or accessions), one per line; '#' comments and blank lines ignored."""
    ids = set()
    with open_text(path) as f:
        for line in f:
            token = line.split("#", 1)[0].strip()
            if token:
                ids.add(token.split()[0].lstrip(">"))
    if not ids:
        logger.warning("%s lists no ids", path)
    return frozenset(ids)


class _Progress:
    """A records bar (count and rate) that also shows how far through the stored file we are."""

    def __init__(self, desc: str, enabled: bool, stream=None, total: int | None = None):
        self.bar = tqdm(desc=desc, unit=" rec", unit_scale=True, disable=not enabled, total=total,
                        mininterval=1.0, smoothing=0.05, dynamic_ncols=True)
        self.stream = stream
        self._pending = 0

    def tick(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= 2048:
            self.flush()

    def flush(self) -> None:
        self.bar.update(self._pending)
        self._pending = 0
        if self.stream is not None and self.stream.size:
            self.bar.set_postfix_str(f"{100.0 * self.stream.raw_bytes_read / self.stream.size:.0f}% of input",
                                     refresh=False)

    def close(self) -> None:
        self.flush()
        self.bar.close()


def _input_info(role: str, path: Path, stream) -> dict:
    digest = stream.digest if stream is not None and stream.digest else file_sha256(path)
    return {"role": role, "path": str(Path(path).resolve()), "size": os.path.getsize(path), "sha256": digest}


# ---------------------------------------------------------------------------------------------------
# The pipeline
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
    import shutil

    if scratch_parent.is_dir():
        for p in scratch_parent.glob(f".{glob_escape(output.name)}.tmp-*"):
            if p.is_dir() and not p.is_symlink():
                logger.info("removing %s, left by an earlier run that was killed", p)
                shutil.rmtree(p, ignore_errors=True)
    remove_stale_partials(output)


def _build_dataset(settings: DatasetSettings, ontology: GeneOntology | None) -> BuildSummary:
    t0 = time.perf_counter()
    seconds: dict = {}
    for role, p in settings.input_paths.items():
        if not p.is_file():
            raise InputError(f"{role} input {str(p)!r} does not exist or is not a file")
    if settings.test_ids_file is not None and not settings.test_ids_file.is_file():
        raise InputError(f"test ids file {str(settings.test_ids_file)!r} does not exist or is not a file")

    if ontology is None:
        go = read_gene_ontology(settings.go_obo, follow_part_of=settings.follow_part_of,
                                allow_defects=settings.allow_obo_defects)
    else:
        if ontology.follow_part_of != settings.follow_part_of:
            raise InputError(f"the ontology passed was loaded with follow_part_of={ontology.follow_part_of}, "
                             f"but settings.follow_part_of={settings.follow_part_of}")
        go = ontology
        go.skips = GoSkipCounts()
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
            if settings.input_kind == "uniprot":
                spool, stats = _spool_uniprot(settings, go, tmp, bucket_rng, inputs, seconds)
            else:
                spool, stats = _spool_joined(settings, go, tmp, bucket_rng, inputs, seconds)

        counts = spool.term_counts
        if spool.n == 0:
            raise InputError("no records to write: " + stats.get("why_empty", "the inputs hold no usable records"))
        kept = np.flatnonzero(counts >= settings.min_records_per_term)
        if len(kept) == 0:
            best = int(np.argmax(counts))
            raise InputError(
                f"no GO term is annotated to ≥ {settings.min_records_per_term} records (the most frequent, "
                f"{go.terms[best]}, has {int(counts[best])} of {spool.n:,}); lower min_records_per_term (--min-records)")
        annotations = [go.terms[i] for i in kept]
        column_of = np.full(len(go.terms), -1, dtype=np.int64)
        column_of[kept] = np.arange(len(kept))

        t = time.perf_counter()
        nbytes = _require_output_space(output, tmp, spool, int(counts[kept].sum()), len(annotations),
                                       settings.records_per_bucket)
        with atomic_write_path(output) as tmp_out:
            attrs = {
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
                "n_records": int(spool.n),
                "n_annotations": len(annotations),
                "go_annotation_skips": json.dumps(go.skips.as_dict()),
                "join_skips": json.dumps({k: v for k, v in stats.items() if k != "why_empty"}),
            }
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


def _spool_uniprot(settings, go: GeneOntology, tmp: Path, rng, inputs: list, seconds: dict):
    t = time.perf_counter()
    path = settings.xml
    size = os.path.getsize(path)
    # ~1.5 kB of gzipped UniProtKB XML per entry; a wrong guess only costs a re-split later.
    n_buckets = int(min(256, max(1, math.ceil(size / 1500 / settings.records_per_bucket))))
    spool = _BucketSpool(tmp, n_buckets, rng, len(go.terms))
    residues = ResidueCheck(path, settings.unknown_residues)
    n = 0
    with RecordSource("uniprot", path, settings.parallel) as source:
        progress = _Progress("UniProtKB XML", settings.progress, source)
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
        inputs.append(_input_info("uniprot_xml", path, source))
    seconds["xml"] = time.perf_counter() - t
    return spool, {"source_records": n, "why_empty": f"{path} has no entries", **_residue_stats(residues)}


def _residue_stats(residues: ResidueCheck) -> dict:
    """Log the count of non-letters read as <OTHER> (if any) and return it for the file's metadata."""
    residues.finish()
    return {"non_residue_characters": residues.n_chars, "records_with_non_residues": residues.n_seqs}


def _spool_joined(settings, go: GeneOntology, tmp: Path, rng, inputs: list, seconds: dict):
    # Stage 1: annotation source -> on-disk table.
    t = time.perf_counter()
    if settings.input_kind == "uniref":
        src_path, role, desc = settings.xml, "uniref_xml", "UniRef XML"
    else:
        src_path, role, desc = settings.go_tsv, "go_tsv", "GO TSV"
    store = _AnnotationStore(tmp / "annotations.sqlite", str(src_path))
    try:
        with RecordSource("uniref" if settings.input_kind == "uniref" else "tsv", src_path, settings.parallel) as source:
            progress = _Progress(desc, settings.progress, source)
            try:
                for key, name, acc, go_ids, _line in source:
                    direct = sorted(set(go.resolve_many(go_ids))) if go_ids else ()
                    store.add(key, name, acc, array.array("i", direct).tobytes())
                    progress.tick()
            finally:
                progress.close()
            inputs.append(_input_info(role, src_path, source))
        store.finish()
        seconds[role] = time.perf_counter() - t
        logger.info("%s: %d entries from %s; %s", desc, store.n, src_path, go.skips.describe())

        # Stage 2: stream the FASTA, join on the id, propagate, spool.
        t = time.perf_counter()
        n_buckets = int(min(256, max(1, math.ceil(store.n / settings.records_per_bucket))))
        spool = _BucketSpool(tmp, n_buckets, rng, len(go.terms))
        residues = ResidueCheck(settings.fasta, settings.unknown_residues)
        matched = np.zeros(store.n + 1, dtype=bool)
        without_entry = 0
        fasta_path = settings.fasta
        with RecordSource("fasta", fasta_path, settings.parallel) as source:
            progress = _Progress("FASTA join", settings.progress, source)
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
            inputs.append(_input_info("fasta", fasta_path, source))
        seconds["fasta_join"] = time.perf_counter() - t

        n_missing = store.n - int(spool.n)
        examples: list = []
        for start in range(1, store.n + 1, 1 << 20):  # chunked: never an index array of everything missing
            if len(examples) >= 5 or not n_missing:
                break
            examples.extend((np.flatnonzero(~matched[start:start + (1 << 20)]) + start)[:5 - len(examples)].tolist())
        stats = {"source_records": store.n, "matched": int(spool.n), "missing_sequences": n_missing,
                 "missing_examples": store.names_of(examples), "sequences_without_entry": without_entry,
                 "why_empty": f"no id of {src_path} ({store.n:,} entries) matches an id of {fasta_path}",
                 **_residue_stats(residues)}
    finally:
        store.close()
    if without_entry:
        logger.warning("%d sequences in %s have no entry in %s and were skipped", without_entry, fasta_path, src_path)
    if stats["missing_sequences"]:
        message = (f"{stats['missing_sequences']:,} of {store.n:,} entries in {src_path} have no sequence in {fasta_path}, "
                   f"e.g. {', '.join(stats['missing_examples'])}")
        if settings.fail_on_missing_sequences:
            raise InputError(message)
        logger.warning("%s (skipped)", message)
    return spool, stats


def _estimated_h5_bytes(n_records: int, text_bytes: int, n_annotations: int, n_set: int) -> int:
    """About the size of the file :func:`_write_h5` makes from ``n_records`` records whose ids,
    accessions and sequences hold ``text_bytes`` characters and whose masks ``n_set`` set bits.

    Measured 1-10 % above the real size (2,000 Swiss-Prot records × 5,852 terms; 30,000 short
    records × 3 terms).
    """
    # Each of the 3 strings of a record: a 16-byte reference in its dataset and a global-heap object
    # (16-byte header, data padded to 8 bytes: 4 on average); then seq_lengths and test_set_mask.
    per_record = 3 * (16 + 16 + 4) + 4 + 1
    # The masks are gzip'd and mostly zeros: ~2 bytes per set bit, runs of zeros ~400:1.
    masks = 2 * n_set + n_records * n_annotations // 400
    return int((text_bytes + n_records * per_record + masks) * 1.02) + (256 << 10)


def _require_output_space(output: Path, scratch: Path, spool: _BucketSpool, n_set: int, n_annotations: int,
                          records_per_bucket: int) -> int:
    """Refuse before HDF5 starts a file the disk cannot hold: HDF5 cannot recover from a full disk
    (it may crash the process). Returns the estimated size, to be reserved by :func:`_write_h5`."""
    reclaimed = 0
    if os.stat(scratch).st_dev == os.stat(output.parent).st_dev:
        # Each bucket file is deleted before its records are written, so its space comes back; one
        # too large to load is first split into pieces (one more copy of it at a time).
        sizes = [os.path.getsize(p) for p in spool.paths if p.exists()]
        split = [size for size, count in zip(sizes, spool.sizes) if count > records_per_bucket]
        reclaimed = sum(sizes) - max(split, default=0)
    nbytes = _estimated_h5_bytes(spool.n, spool.text_bytes, n_annotations, n_set)
    require_space(output, nbytes, "the dataset", reclaimed=reclaimed)
    return nbytes


def _write_h5(path, settings, spool: _BucketSpool, annotations, column_of, rng, test_ids, attrs: dict,
              name=None, reserve: int = 0) -> dict:
    """Write the records of ``spool`` in random order into a new HDF5 ``path``, with root ``attrs``
    (plus the counts written). ``name`` is the file to name in errors (the final output).

    ``reserve``: the file's estimated size. Disk space for it is reserved bucket by bucket, each
    bucket after its scratch file was deleted (see :func:`~proteinbert.io_utils.writing_h5`), so
    the scratch and the output need not fit side by side.
    """
    n, n_ann = spool.n, len(annotations)
    # Allocated at the first write: the fixed-width datasets and the strings' references.
    fixed = min(int(reserve), n * (3 * 16 + 4 + 1) + (256 << 10))
    ahead = int(0.02 * (reserve - fixed)) + (256 << 10)  # a bucket may hold longer sequences than average
    block_rows = max(1, min(16384, (64 << 20) // max(n_ann, 1)))
    test_rng = rng_for_test_set(settings.seed)
    p_test = float(settings.test_probability)
    found: set = set()
    annotated = n_test = 0
    offset = 0
    progress = _Progress("write HDF5", settings.progress, total=n)
    try:
        with writing_h5(path, "w", name=name) as h5:
            d = create_pretraining_datasets(h5, n, annotations)
            acc_dset = h5.create_dataset("uniprot_accessions", shape=(n,), dtype=h5py.string_dtype())
            for bpath, count in zip(spool.paths, spool.sizes):
                for records in _shuffled_chunks(bpath, count, settings.records_per_bucket, rng):
                    if reserve:
                        share = (reserve - fixed) * (offset + len(records)) // max(n, 1)
                        reserve_h5(h5, min(int(reserve), fixed + share + ahead), name)
                    for start in range(0, len(records), block_rows):
                        block = records[start:start + block_rows]
                        m = len(block)
                        names = [r[0] for r in block]
                        accs = [r[1] for r in block]
                        seqs = [r[2] for r in block]
                        term_lists = [r[3] for r in block]
                        sizes = np.fromiter((len(x) for x in term_lists), dtype=np.int64, count=m)
                        mask = np.zeros((m, n_ann), dtype=bool)
                        if sizes.sum():
                            cols = column_of[np.concatenate(term_lists)]
                            rows = np.repeat(np.arange(m), sizes)
                            keep = cols >= 0
                            mask[rows[keep], cols[keep]] = True
                        annotated += int(mask.any(axis=1).sum())
                        test = _test_mask(m, names, accs, test_ids, test_rng, p_test, found)
                        n_test += int(test.sum())
                        sl = slice(offset, offset + m)
                        d["uniprot_ids"][sl] = np.array(names, dtype=object)
                        acc_dset[sl] = np.array(accs, dtype=object)
                        d["seqs"][sl] = np.array(seqs, dtype=object)
                        d["seq_lengths"][sl] = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=m)
                        d["annotation_masks"][sl] = mask
                        d["test_set_mask"][sl] = test
                        offset += m
                        progress.tick(m)
            h5.attrs.update({**attrs, "n_annotated_records": int(annotated), "n_test_records": int(n_test)})
    finally:
        progress.close()
    if offset != n:
        raise FormatError(f"spooled {n} records but read back {offset}", str(path))
    return {"annotated": annotated, "test": n_test, "test_ids_found": len(found)}


# ---------------------------------------------------------------------------------------------------
# Test-set designation for an existing file
# ---------------------------------------------------------------------------------------------------
def _test_mask(m: int, names, accs, test_ids, rng: np.random.Generator, probability: float, found: set) -> np.ndarray:
    """Test-set flags of ``m`` records: listed by entry name or accession, and/or drawn with
    ``probability`` (the same draw at build time and in ``set_test_set``). Matched ids go into ``found``."""
    mask = np.zeros(m, dtype=bool)
    if test_ids:
        for i, (name, acc) in enumerate(zip(names, accs)):
            if name in test_ids or acc in test_ids:
                mask[i] = True
                found.update(x for x in (name, acc) if x in test_ids)
    if probability > 0:
        mask |= rng.random(m) < probability
    return mask


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
    import shutil

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

    def apply(path) -> dict:
        rng = rng_for_test_set(seed)
        found: set = set()
        chunk = 1 << 16
        # The new mask goes after the old one's space (HDF5 does not reuse it): reserve both first.
        with writing_h5(path, "r+", name=target, reserve=os.path.getsize(path) + n + (1 << 20)) as h5:
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
                    names = [v.decode() if isinstance(v, bytes) else str(v) for v in h5["uniprot_ids"][start:stop]]
                    accs = ([v.decode() if isinstance(v, bytes) else str(v) for v in h5["uniprot_accessions"][start:stop]]
                            if has_acc else [""] * m)
                mask = _test_mask(m, names, accs, test_ids, rng, test_probability, found)
                new[start:stop] = mask
                n_test += int(mask.sum())
                bar.update(m)
            bar.close()
            del h5["test_set_mask"]
            h5.move("test_set_mask.partial", "test_set_mask")
            h5.attrs.update({"test_probability": float(test_probability), "seed_test_set": int(seed),
                             "test_ids_file": "" if test_ids_file is None else str(Path(test_ids_file).resolve()),
                             "n_test_records": n_test})
        return {"path": str(output or dataset_path), "n_records": n, "n_test_records": n_test,
                "test_ids_listed": len(test_ids), "test_ids_not_found": len(test_ids) - len(found)}

    with output_lock(target, "--output" if output is not None else "H5"):
        remove_stale_partials(target)
        # The copy plus its new mask must fit before HDF5 starts: it cannot recover from a full disk.
        require_space(target, os.path.getsize(dataset_path) + n + (1 << 20), "the rewritten dataset")
        # Never r+ on the original: HDF5 cannot roll back, so a failure half-way (ENOSPC) would leave
        # the file unreadable. The copy is checked with the reader before it replaces anything.
        with atomic_write_path(target) as tmp:
            shutil.copyfile(dataset_path, tmp)
            shutil.copymode(dataset_path, tmp)
            result = apply(tmp)
            with PretrainingDataset(tmp) as check:
                if len(check) != n:
                    raise FormatError("rewritten file does not hold the records of the input", str(dataset_path))
    logger.info("test set: %d of %d records (%d ids listed, %d not found)", result["n_test_records"], n,
                result["test_ids_listed"], result["test_ids_not_found"])
    return result
