"""The dataset builder's scratch on disk: the annotation table and the randomly chosen bucket files.

:class:`AnnotationStore` holds, per annotation entry, its id and direct GO terms in a SQLite table
(looked up by id while the FASTA streams past). :class:`BucketSpool` appends each record to a
bucket file chosen at random; :func:`shuffled_chunks` reads one bucket back in random order.
Random buckets followed by a shuffle inside each give a uniformly random permutation without
holding everything in memory.

>>> import tempfile
>>> from pathlib import Path
>>> d = Path(tempfile.mkdtemp())
>>> spool = BucketSpool(d, 2, np.random.default_rng(0), n_terms=3)
>>> for i in range(5):
...     spool.add(f"P{i}", "", "MKV", np.array([0, 2], dtype=np.int32), "x.fa", i + 1)
>>> spool.close()
>>> spool.n, sum(spool.sizes), spool.term_counts.tolist()
(5, 5, [5, 0, 5])
>>> rng = np.random.default_rng(1)
>>> names = [r[0] for p, n in zip(spool.paths, spool.sizes) for chunk in shuffled_chunks(p, n, 10, rng)
...          for r in chunk]
>>> sorted(names)
['P0', 'P1', 'P2', 'P3', 'P4']
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FormatError
from ..io_utils import naming_space_errors


class AnnotationStore:
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


class BucketSpool:
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
        close_all(self.files)


def close_all(files) -> None:
    """Close every file; then raise the first error (a full disk fails the flush of each)."""
    errors = []
    for f in files:
        try:
            f.close()
        except OSError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def parse_spooled(line: str) -> tuple:
    """``(name, accession, sequence, int32 term indices)`` of one line of a bucket file."""
    name, acc, seq, terms = line.rstrip("\n").split("\t")
    return name, acc, seq, np.frombuffer(bytes.fromhex(terms), dtype=np.int32)


def shuffled_chunks(path: Path, count: int, limit: int, rng: np.random.Generator) -> Iterator[list]:
    """Records of one bucket file in a uniformly random order, never loading more than ~``limit``.

    The file is deleted once read.
    """
    if count <= limit:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        path.unlink()  # free the scratch space as we go
        order = rng.permutation(len(lines))
        records = [parse_spooled(lines[i]) for i in order]
        del lines
        yield records
        return
    # Too large to hold: split it again at random (a further level of the same bucket shuffle).
    n_sub = max(2, math.ceil(2 * count / limit))
    sub_paths = [path.with_name(f"{path.name}.{i:03d}") for i in range(n_sub)]
    sub_sizes = _split_at_random(path, sub_paths, rng)
    path.unlink()
    for p, n in zip(sub_paths, sub_sizes):
        yield from shuffled_chunks(p, n, limit, rng)


def _split_at_random(path: Path, sub_paths: list, rng: np.random.Generator) -> list[int]:
    """Deal the lines of ``path`` into the files ``sub_paths``, each line to one drawn at random;
    the number of lines each got."""
    n_sub = len(sub_paths)
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
            close_all(files)
    return sub_sizes
