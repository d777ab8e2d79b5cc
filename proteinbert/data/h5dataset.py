"""The pretraining HDF5 dataset: schema (a compatibility contract with 2021 files) and reader.

Datasets (names and meaning as in the 2021 files, so both are interchangeable):

=========================  ===========  ===================================================
``included_annotations``   (A,) str     GO ids of the annotation slots, sorted
``uniprot_ids``            (N,) str     record ids
``seqs``                   (N,) str     amino-acid sequences
``seq_lengths``            (N,) int32   ``len(seqs[i])``
``annotation_masks``       (N, A) bool  GO annotations, propagated to all ancestors
``test_set_mask``          (N,) bool    records held out of annotation training
=========================  ===========  ===================================================

Strings may be variable-length (``h5py.string_dtype()``) or fixed-length bytes. Files written by
``bin/create_dataset`` also carry metadata attributes on the root group (see ``metadata``).
The reader only reads the slices asked for, never the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import DatasetSchemaError

#: name -> (shape in symbols, kind) ; kind is "str", "int" or "bool".
SCHEMA = {
    "included_annotations": (("A",), "str"),
    "uniprot_ids": (("N",), "str"),
    "seqs": (("N",), "str"),
    "seq_lengths": (("N",), "int"),
    "annotation_masks": (("N", "A"), "bool"),
    "test_set_mask": (("N",), "bool"),
}


def _kind_of(dset: h5py.Dataset) -> str:
    dt = dset.dtype
    if h5py.check_string_dtype(dt) is not None or dt.kind in ("S", "U", "O"):
        return "str"
    if dt.kind == "b":
        return "bool"
    if dt.kind in ("i", "u"):
        return "int"
    return dt.kind


def validate_h5(h5: h5py.File, path: str = "<h5>") -> tuple[int, int]:
    """Check every dataset exists with the expected kind and consistent shapes.

    Returns ``(N, A)``; raises :class:`DatasetSchemaError` listing every problem at once.
    """
    problems = []
    sizes: dict[str, int] = {}
    for name, (symbols, kind) in SCHEMA.items():
        expected = f"{name}: {kind} of shape ({', '.join(symbols)})"
        if name not in h5:
            problems.append(f"missing dataset — expected {expected}")
            continue
        dset = h5[name]
        if not isinstance(dset, h5py.Dataset):
            problems.append(f"{name} is a group — expected {expected}")
            continue
        found_kind = _kind_of(dset)
        if found_kind != kind:
            problems.append(f"{name}: expected {kind}, found dtype {dset.dtype}")
        if len(dset.shape) != len(symbols):
            problems.append(f"{name}: expected shape ({', '.join(symbols)}), found {dset.shape}")
            continue
        for sym, n in zip(symbols, dset.shape):
            if sym in sizes and sizes[sym] != n:
                problems.append(f"{name}: {sym} = {n} here but {sizes[sym]} elsewhere (shape {dset.shape})")
            sizes.setdefault(sym, n)
    if problems:
        raise DatasetSchemaError(f"{path} is not a valid pretraining dataset:\n  " + "\n  ".join(problems))
    return sizes["N"], sizes["A"]


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


@dataclass(frozen=True)
class RecordBatch:
    """A contiguous slice of records, decoded."""

    uniprot_ids: list
    seqs: list
    seq_lengths: np.ndarray
    annotation_masks: np.ndarray
    test_set_mask: np.ndarray


class PretrainingDataset:
    """Read-only access to a pretraining HDF5 (ours or a 2021 one).

    >>> with PretrainingDataset("dataset.h5") as ds:  # doctest: +SKIP
    ...     batch = ds.read(0, 100)
    ...     print(len(ds), ds.n_annotations, batch.seqs[0][:10])
    """

    def __init__(self, path):
        self.path = str(path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:
            if "lock" in str(exc).lower():  # HDF5's own lock: a writer has the file open
                raise DatasetSchemaError(
                    f"{self.path}: another process has this file open for writing (HDF5 refused its file "
                    "lock); wait for it to finish") from exc
            raise DatasetSchemaError(f"{self.path}: cannot open as HDF5 ({exc})") from exc
        try:
            self.n_records, self.n_annotations = validate_h5(self._h5, self.path)
        except DatasetSchemaError:
            self._h5.close()
            raise
        self.annotations = _decode(self._h5["included_annotations"][:])
        self.metadata = dict(self._h5.attrs)

    def __len__(self) -> int:
        return self.n_records

    def read(self, start: int, stop: int) -> RecordBatch:
        """Records ``start:stop`` (clipped to the file)."""
        start, stop = max(0, int(start)), min(self.n_records, int(stop))
        h5 = self._h5
        return RecordBatch(
            uniprot_ids=_decode(h5["uniprot_ids"][start:stop]),
            seqs=_decode(h5["seqs"][start:stop]),
            seq_lengths=np.asarray(h5["seq_lengths"][start:stop], dtype=np.int32),
            annotation_masks=np.asarray(h5["annotation_masks"][start:stop], dtype=bool),
            test_set_mask=np.asarray(h5["test_set_mask"][start:stop], dtype=bool),
        )

    def close(self) -> None:
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def create_pretraining_datasets(h5: h5py.File, n_records: int, annotations, compression: str | None = "gzip",
                                chunk_bytes: int = 1 << 20) -> dict:
    """Create the :data:`SCHEMA` datasets (empty, fixed size) in an open, writable file.

    Strings are variable-length UTF-8 (``h5py.string_dtype()``), ``seq_lengths`` int32, masks bool.
    ``annotation_masks`` is chunked by rows (about ``chunk_bytes`` per chunk) and compressed,
    because it is mostly zeros: uncompressed it would be N × A bytes. ``included_annotations``
    is written here; the caller fills the per-record datasets. Returns ``{name: dataset}``.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "d.h5")
    >>> with h5py.File(path, "w") as f:
    ...     d = create_pretraining_datasets(f, 2, ["GO:0003674"])
    ...     d["seqs"][:] = ["MK", "AAA"]; d["seq_lengths"][:] = [2, 3]; d["uniprot_ids"][:] = ["a", "b"]
    >>> with PretrainingDataset(path) as ds:
    ...     (len(ds), ds.annotations, ds.read(0, 2).seqs)
    (2, ['GO:0003674'], ['MK', 'AAA'])
    """
    n_records = int(n_records)
    annotations = [str(a) for a in annotations]
    n_ann = len(annotations)
    str_dt = h5py.string_dtype()
    out = {"included_annotations": h5.create_dataset("included_annotations", data=np.array(annotations, dtype=object),
                                                     dtype=str_dt)}
    for name in ("uniprot_ids", "seqs"):
        out[name] = h5.create_dataset(name, shape=(n_records,), dtype=str_dt)
    out["seq_lengths"] = h5.create_dataset("seq_lengths", shape=(n_records,), dtype=np.int32)
    out["test_set_mask"] = h5.create_dataset("test_set_mask", shape=(n_records,), dtype=bool)
    rows = max(1, min(max(n_records, 1), chunk_bytes // max(n_ann, 1)))
    kwargs = {}
    if n_records > 0 and n_ann > 0:
        kwargs = {"chunks": (rows, n_ann), "compression": compression}
    out["annotation_masks"] = h5.create_dataset("annotation_masks", shape=(n_records, n_ann), dtype=bool, **kwargs)
    return out
