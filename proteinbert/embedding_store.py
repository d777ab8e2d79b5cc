"""Writing embeddings to HDF5 (persistence only; computing them is :mod:`proteinbert.embeddings`).

Layout of the file:

=======================  ==========================  ==========================================
``ids``                  (N,) str                    record ids, input order
``lengths``              (N,) int32                  residues per record
``protein_embeddings``   (N, W_protein) float32      one vector per protein
``residue_embeddings``   (sum(lengths), W_residue)   per-residue vectors, records concatenated
``residue_offsets``      (N + 1,) int64              rows of record i: offsets[i]:offsets[i+1]
=======================  ==========================  ==========================================

The residue datasets exist only when per-residue output was asked for. Root attributes record
``layers`` ("last"/"all"), the layer names behind each width, the model architecture and the
weights source.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np


def estimated_size(ids, lengths, protein_width: int, residue_width: int | None) -> int:
    """Bytes an :class:`EmbeddingWriter` file will take at most (whole chunks, a metadata allowance)."""
    n = len(ids)
    total = int(np.sum(lengths))

    def chunked(rows, chunk, width):
        chunk = max(1, min(rows, chunk))
        return -(-rows // chunk) * chunk * width * 4

    size = chunked(n, 1024, protein_width) + 4 * n + sum(len(str(i).encode()) + 32 for i in ids)
    if residue_width is not None:
        size += chunked(total, 4096, residue_width) + 8 * (n + 1)
    return int(size * 1.02) + (1 << 20)


class EmbeddingWriter:
    """Fill a pre-sized embeddings file batch by batch (the caller handles atomic renaming)."""

    def __init__(self, path, ids, lengths, protein_width: int, residue_width: int | None, attrs: dict):
        self.path = str(path)
        # No raw-chunk cache: a full disk then fails the write that caused it, not the final close,
        # which HDF5 cannot recover from (a failed close leaves it to crash the process at exit).
        # Chunks of the released model's widths (2 MB) exceed the default 1 MB cache anyway.
        self.h5 = h5py.File(path, "w", rdcc_nbytes=0)
        try:
            self._create(ids, lengths, protein_width, residue_width, attrs)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and exc.errno is not None:
                raise OSError(exc.errno, f"cannot write embeddings to {self.path}: {os.strerror(exc.errno)}") from exc
            raise

    def _create(self, ids, lengths, protein_width: int, residue_width: int | None, attrs: dict) -> None:
        n = len(ids)
        self.h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        self.h5.create_dataset("lengths", data=np.asarray(lengths, dtype=np.int32))
        self.protein = self.h5.create_dataset("protein_embeddings", shape=(n, protein_width), dtype="float32",
                                              chunks=(max(1, min(n, 1024)), protein_width))
        self.residue = None
        if residue_width is not None:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            self.offsets = offsets
            self.h5.create_dataset("residue_offsets", data=offsets)
            total = int(offsets[-1])
            self.residue = self.h5.create_dataset(
                "residue_embeddings", shape=(total, residue_width), dtype="float32",
                chunks=(max(1, min(total, 4096)), residue_width),
            )
        for key, value in attrs.items():
            self.h5.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)

    def write(self, indices, protein: np.ndarray, residue: list | None) -> None:
        order = np.argsort(indices)  # h5py fancy indexing needs increasing indices
        idx = np.asarray(indices)[order]
        try:
            self.protein[idx] = protein[order]
            if self.residue is not None and residue is not None:
                for i, rows in zip(indices, residue):
                    self.residue[self.offsets[i] : self.offsets[i + 1]] = rows
        except OSError as exc:  # HDF5's own text spans lines and buries the cause
            if exc.errno is None:
                raise
            raise OSError(exc.errno, f"cannot write embeddings to {self.path}: {os.strerror(exc.errno)}") from exc

    def close(self) -> None:
        """Flush and close; a failure (a full disk) is an ``OSError`` naming the file."""
        try:
            self.h5.flush()
        except (OSError, RuntimeError, ValueError) as exc:  # h5py reports a failed flush as any of these
            self.abort()
            raise OSError(f"{self.path}: could not finish writing ({exc})") from exc
        self.h5.close()

    def abort(self) -> None:
        """Close after a failure without raising: the caller deletes the file and reports the first error."""
        try:
            # The file is garbage now: truncating it frees the disk for HDF5's last metadata flush on close.
            os.ftruncate(self.h5.id.get_vfd_handle(), 0)
        except (OSError, RuntimeError, ValueError, TypeError):
            pass
        try:
            self.h5.close()
        except (OSError, RuntimeError, ValueError):
            pass  # never close again: HDF5 may crash on a second close of a file it failed to close


def read_embeddings(path) -> dict:
    """Load an embeddings file into memory: ``ids``, ``protein`` and (if present) ``residue`` list.

    >>> data = read_embeddings("embeddings.h5")  # doctest: +SKIP
    >>> data["protein"].shape  # doctest: +SKIP
    (2000, 512)
    """
    with h5py.File(path, "r") as h5:
        out = {
            "ids": [v.decode() if isinstance(v, bytes) else v for v in h5["ids"][:]],
            "lengths": h5["lengths"][:],
            "protein": h5["protein_embeddings"][:],
            "attrs": dict(h5.attrs),
        }
        if "residue_embeddings" in h5:
            offsets = h5["residue_offsets"][:]
            flat = h5["residue_embeddings"][:]
            out["residue"] = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    return out
