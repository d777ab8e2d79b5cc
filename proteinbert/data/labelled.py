"""Read labelled sequences for fine-tuning: a CSV (``seq``, ``label``) or a FASTA file plus a label table.

Every cell is read as text (``dtype=str``): per-residue labels such as ``"0011"`` keep their
leading zeros. Rows are named ``<file> line N`` in errors so a bad label can be found.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import FormatError, InputError
from .fasta import check_unique_ids, open_text, read_fasta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledRecords:
    """Sequences with optional labels, ids and the names of their source rows."""

    ids: tuple
    seqs: tuple
    labels: tuple | None
    row_ids: tuple

    def __len__(self) -> int:
        return len(self.seqs)

    def head(self, n: int | None) -> "LabelledRecords":
        if n is None:
            return self
        return LabelledRecords(self.ids[:n], self.seqs[:n], None if self.labels is None else self.labels[:n],
                               self.row_ids[:n])


def is_fasta(path) -> bool:
    """True if the first non-blank character of ``path`` (plain or gzip) is ``>``."""
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith(">")
    return False


def read_labelled(path, seq_col: str = "seq", label_col: str | None = "label", id_col: str | None = None,
                  labels_path=None, require_labels: bool = True) -> LabelledRecords:
    """Read ``path`` (CSV or FASTA). FASTA labels come from ``labels_path`` (CSV: ``id``, ``label_col``).

    With ``require_labels=False`` a missing label column is allowed (prediction input).

    >>> recs = read_labelled("scop.test.csv")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if is_fasta(path):
        records = list(check_unique_ids(read_fasta(path), str(path)))
        ids = tuple(r.id for r in records)
        seqs = tuple(r.seq for r in records)
        rows = tuple(f"{path} line {r.line} ({r.id})" for r in records)
        if labels_path is None:
            if require_labels:
                raise InputError(f"{path} is FASTA: give its labels as a CSV with columns id,{label_col}")
            return LabelledRecords(ids, seqs, None, rows)
        table = _read_csv(labels_path)
        key = id_col or "id"
        for col in (key, label_col):
            if col not in table.columns:
                raise FormatError(f"no column {col!r} (columns: {list(table.columns)})", path=labels_path, line=1)
        duplicated = table[key][table[key].duplicated()].tolist()
        if duplicated:
            raise FormatError(f"duplicate ids in the label table: {duplicated[:5]}", path=labels_path)
        by_id = dict(zip(table[key], table[label_col]))
        labels = tuple(by_id.get(i) for i in ids)  # a record without a label is reported by encode_labels
        return LabelledRecords(ids, seqs, labels, rows)
    table = _read_csv(path)
    if seq_col not in table.columns:
        raise FormatError(f"no column {seq_col!r} (columns: {list(table.columns)})", path=path, line=1)
    if id_col is not None and id_col not in table.columns:
        raise FormatError(f"no column {id_col!r} (columns: {list(table.columns)})", path=path, line=1)
    labels = None
    if label_col is not None and label_col in table.columns:
        labels = tuple(table[label_col])
    elif require_labels:
        raise FormatError(f"no column {label_col!r} (columns: {list(table.columns)})", path=path, line=1)
    # Line 1 is the header; data rows start at line 2.
    rows = tuple(f"{path.name} line {i + 2}" for i in range(len(table)))
    ids = tuple(table[id_col]) if id_col is not None else tuple(str(i) for i in range(len(table)))
    seqs = tuple(s if isinstance(s, str) else "" for s in table[seq_col])
    return LabelledRecords(ids, seqs, labels, rows)


def _read_csv(path) -> pd.DataFrame:
    # index_col=False: otherwise pandas takes a first data row with one field too many as the sign of
    # an index column and shifts every column of every row, so the errors land on good lines.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, index_col=False)
    except pd.errors.EmptyDataError:
        raise FormatError("the file is empty", path=path) from None
    except pd.errors.ParserWarning:
        line, n_fields, n_header = _first_ragged_row(path)
        raise FormatError(f"{n_fields} fields, but the header has {n_header}", path=path, line=line) from None
    except pd.errors.ParserError as exc:
        raise FormatError(f"not a readable CSV: {exc}", path=path) from None


def _first_ragged_row(path) -> tuple[int | None, int, int]:
    """``(line, fields, header fields)`` of the first row whose field count differs from the header's."""
    import csv

    with open_text(path) as f:
        rows = csv.reader(f)
        header = next(rows, [])
        for row in rows:
            if row and len(row) != len(header):
                return rows.line_num, len(row), len(header)
    return None, len(header), len(header)
