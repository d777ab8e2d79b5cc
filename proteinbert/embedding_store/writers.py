"""Writing embeddings outputs in the three formats (:mod:`proteinbert.embedding_store` describes
them): the space they need, the checks of an output's name, one writer per format, and
:func:`writing_embeddings`, which makes the output appear only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from .layout import ATTRS_FILE, H5_DATASETS, INDEX_FILE, NPY_SUFFIXES, VECTORS, file_stems, output_kind
from ..errors import InputError, UsageError


def _attr(value):
    # Scalars as they are, the rest as JSON: HDF5 attributes cannot hold nested lists and dicts.
    return value if isinstance(value, (str, int, float)) else json.dumps(value)


# -- sizes ----------------------------------------------------------------------------------------
def estimated_size(ids, lengths, protein_width: int | None, residue_width: int | None,
                   mean_width: int | None = None) -> int:
    """Bytes an HDF5 :class:`EmbeddingWriter` file will take at most (whole chunks, a metadata allowance)."""
    n = len(ids)
    total = int(np.sum(lengths))

    def chunked(rows, chunk, width):
        chunk = max(1, min(rows, chunk))
        return -(-rows // chunk) * chunk * width * 4

    size = 4 * n + sum(len(str(i).encode()) + 32 for i in ids)
    for width in (protein_width, mean_width):
        if width is not None:
            size += chunked(n, 1024, width)
    if residue_width is not None:
        size += chunked(total, 4096, residue_width) + 8 * (n + 1)
    return int(size * 1.02) + (1 << 20)


def required_space(format: str, ids, lengths, widths: dict) -> int:
    """Bytes of free disk a ``format`` output of ``widths`` (vector name -> width) needs while written."""
    if format == "h5":
        return estimated_size(ids, lengths, widths.get("protein"), widths.get("residue"), widths.get("mean_residue"))
    n, total = len(ids), int(np.sum(lengths))
    ids_bytes = sum(len(str(i).encode()) + 64 for i in ids)
    if format == "npz":  # the arrays are filled in scratch files, then copied into the archive
        data = sum(4 * w * (total if name == "residue" else n) for name, w in widths.items())
        return 2 * (data + ids_bytes + 8 * (n + 1)) + (1 << 20)
    block = 4096  # a file takes whole blocks; every .npy has a 128-byte header
    size = 2 * ids_bytes + block
    for name, w in widths.items():
        rows = np.asarray(lengths, dtype=np.int64) if name == "residue" else np.ones(n, dtype=np.int64)
        size += int(np.sum(-(-(128 + 4 * w * rows) // block) * block))
    return size + (1 << 20)


def check_output_for_format(path, format: str, option: str = "--output") -> None:
    """Refuse (:class:`~proteinbert.errors.UsageError`) an output that does not fit ``format``: a name
    that says another format (``x.npz`` as ``h5``, ``x.h5`` as ``npz``), or an existing directory that
    is not an ``npy-dir`` output (replacing deletes it whole, and a directory named by mistake may
    hold anything).

    >>> check_output_for_format("out.npz", "h5")
    Traceback (most recent call last):
    proteinbert.errors.UsageError: --output out.npz is named as an npz archive but the format is h5; choose the format npz (--format npz) or rename the output
    """
    path = Path(path)
    kind = output_kind(format)
    suffix = path.suffix.lower()
    named = "npz" if suffix == ".npz" else "h5" if suffix in (".h5", ".hdf5") else None
    if named is not None and named != format:
        what = "an npz archive" if named == "npz" else "an HDF5 file"
        raise UsageError(f"{option} {path} is named as {what} but the format is {format}; choose the format "
                         f"{named} (--format {named}) or rename the output")
    if kind == "dir" and path.is_dir() and any(path.iterdir()) and not (path / INDEX_FILE).is_file():
        raise UsageError(f"{option} {path} is a directory that holds no {INDEX_FILE} (it is not an embeddings "
                         "directory); refusing to replace it")


# -- writers --------------------------------------------------------------------------------------
class EmbeddingWriter:
    """Fill a pre-sized HDF5 embeddings file batch by batch (:func:`writing_embeddings` renames it)."""

    def __init__(self, path, ids, lengths, protein_width: int | None, residue_width: int | None, attrs: dict,
                 mean_width: int | None = None):
        import h5py

        self.path = str(path)
        # No raw-chunk cache: a full disk then fails the write that caused it, not the final close,
        # which HDF5 cannot recover from (a failed close leaves it to crash the process at exit).
        # Chunks of the released model's widths (2 MB) exceed the default 1 MB cache anyway.
        self.h5 = h5py.File(path, "w", rdcc_nbytes=0)
        try:
            self._create(ids, lengths, {"protein": protein_width, "mean_residue": mean_width}, residue_width, attrs)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and exc.errno is not None:
                raise OSError(exc.errno, f"cannot write embeddings to {self.path}: {os.strerror(exc.errno)}") from exc
            raise

    def _create(self, ids, lengths, pooled_widths: dict, residue_width: int | None, attrs: dict) -> None:
        import h5py

        n = len(ids)
        self.h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        self.h5.create_dataset("lengths", data=np.asarray(lengths, dtype=np.int32))
        self.pooled = {}
        for name, width in pooled_widths.items():
            if width is not None:
                self.pooled[name] = self.h5.create_dataset(H5_DATASETS[name], shape=(n, width), dtype="float32",
                                                           chunks=(max(1, min(n, 1024)), width))
        self.residue = None
        if residue_width is not None:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            self.offsets = offsets
            self.h5.create_dataset("residue_offsets", data=offsets)
            total = int(offsets[-1])
            self.residue = self.h5.create_dataset(
                H5_DATASETS["residue"], shape=(total, residue_width), dtype="float32",
                chunks=(max(1, min(total, 4096)), residue_width),
            )
        for key, value in attrs.items():
            self.h5.attrs[key] = _attr(value)

    def write(self, indices, vectors: dict) -> None:
        """Store one batch: ``vectors`` maps vector names to arrays in the order of ``indices``."""
        order = np.argsort(indices)  # h5py fancy indexing needs increasing indices
        idx = np.asarray(indices)[order]
        try:
            for name, dataset in self.pooled.items():
                dataset[idx] = np.asarray(vectors[name])[order]
            if self.residue is not None:
                for i, rows in zip(indices, vectors["residue"]):
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
        from ..io_utils import abort_h5

        abort_h5(self.h5)


class _ScratchArrays:
    """``.npy`` files in a scratch directory, filled in place (memory-mapped): arrays bigger than memory."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir()
        self.arrays: dict[str, np.ndarray] = {}

    def create(self, name: str, shape) -> np.ndarray:
        self.arrays[name] = np.lib.format.open_memmap(self.directory / f"{name}.npy", mode="w+", dtype=np.float32,
                                                      shape=tuple(shape))
        return self.arrays[name]

    def remove(self) -> None:
        self.arrays.clear()  # drop the maps before their files
        shutil.rmtree(self.directory, ignore_errors=True)


class NpzWriter:
    """Write an ``npz`` archive: vectors fill scratch files next to it, copied in on :meth:`close`."""

    def __init__(self, path, ids, lengths, widths: dict, attrs: dict):
        self.path = str(path)
        self.ids = np.array([str(i) for i in ids])  # fixed-width unicode: no pickle needed to read it back
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self.attrs = {k: _attr(v) for k, v in attrs.items()}
        self.scratch = _ScratchArrays(self.path + ".parts")
        try:
            for name, width in widths.items():
                rows = int(self.offsets[-1]) if name == "residue" else len(ids)
                self.scratch.create(name, (rows, width))
        except BaseException:
            self.abort()
            raise

    def write(self, indices, vectors: dict) -> None:
        for name, array in self.scratch.arrays.items():
            if name == "residue":
                for i, rows in zip(indices, vectors["residue"]):
                    array[self.offsets[i] : self.offsets[i + 1]] = rows
            else:
                array[np.asarray(indices)] = vectors[name]

    def close(self) -> None:
        try:
            extra = {"ids": self.ids, "lengths": self.lengths, "attrs": np.array(json.dumps(self.attrs))}
            if "residue" in self.scratch.arrays:
                extra["residue_offsets"] = self.offsets
            with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in {**extra, **self.scratch.arrays}.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        finally:
            self.scratch.remove()

    def abort(self) -> None:
        self.scratch.remove()


class NpyDirWriter:
    """Write an ``npy-dir`` directory: one ``.npy`` file per record and vector, then ``index.tsv``."""

    def __init__(self, path, ids, lengths, widths: dict, attrs: dict):
        self.path = Path(path)
        self.ids = [str(i) for i in ids]
        self.lengths = [int(n) for n in lengths]
        self.names = [name for name in VECTORS if name in widths]
        self.stems = file_stems(self.ids)
        self.attrs = {k: _attr(v) for k, v in attrs.items()}
        self.path.mkdir()

    def write(self, indices, vectors: dict) -> None:
        for name in self.names:
            for j, i in enumerate(indices):
                np.save(self.path / (self.stems[i] + NPY_SUFFIXES[name]), np.asarray(vectors[name][j], np.float32),
                        allow_pickle=False)

    def close(self) -> None:
        lines = ["\t".join(["id", "length", *self.names])]
        for rid, n, stem in zip(self.ids, self.lengths, self.stems):
            lines.append("\t".join([rid, str(n), *(stem + NPY_SUFFIXES[name] for name in self.names)]))
        (self.path / INDEX_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.path / ATTRS_FILE).write_text(json.dumps(self.attrs, indent=1), encoding="utf-8")

    def abort(self) -> None:
        pass  # the directory is deleted whole by the caller


@contextlib.contextmanager
def writing_embeddings(path, format: str, ids, lengths, widths: dict, attrs: dict):
    """Yield a writer (``.write(indices, vectors)``) for a ``format`` output at ``path``; on success
    the complete output replaces ``path`` in one rename, on any error (or interrupt) nothing is left.

    ``widths`` maps the vectors to store (:data:`VECTORS`) to their widths. The caller holds the
    output's lock (``io_utils.output_lock``) and has checked the path (``io_utils.check_output_path``).
    A write that cannot fit is refused before it starts (HDF5 cannot recover from a failed write).
    """
    from ..io_utils import atomic_write_path, remove_stale_partials, require_space

    kind = output_kind(format)
    unknown = sorted(set(widths) - set(VECTORS))
    if unknown or not widths:
        raise InputError(f"widths must name some of {', '.join(VECTORS)}. Received: {sorted(widths)}")
    remove_stale_partials(path)  # left by a killed run; the caller's lock means no live writer owns them
    require_space(path, required_space(format, ids, lengths, widths), "output")
    aside = None
    try:
        with atomic_write_path(path) as tmp:
            if format == "h5":
                writer = EmbeddingWriter(tmp, ids, lengths, widths.get("protein"), widths.get("residue"), attrs,
                                         mean_width=widths.get("mean_residue"))
            else:
                writer = (NpzWriter if format == "npz" else NpyDirWriter)(tmp, ids, lengths, widths, attrs)
            try:
                yield writer
            except BaseException:
                writer.abort()  # the first error is the one to report, not close()'s on the same full disk
                raise
            writer.close()
            if kind == "dir" and os.path.isdir(path):  # a directory cannot be renamed over a full one
                aside = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.partial.replaced")
                os.rename(path, aside)
    except BaseException:
        if aside is not None and not os.path.exists(path):
            os.rename(aside, path)  # the new output did not make it: the old one stays
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
