"""Reading embeddings outputs of any format back into memory (:mod:`proteinbert.embedding_store`
describes the formats); nothing here writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .layout import ATTRS_FILE, H5_DATASETS, INDEX_FILE, VECTORS
from ..errors import FormatError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def embeddings_format(path) -> str:
    """The format of an embeddings output (by its content, not its name): ``h5``, ``npz`` or ``npy-dir``."""
    path = Path(path)
    if path.is_dir():
        if not (path / INDEX_FILE).is_file():
            raise FormatError(f"not an embeddings directory: {INDEX_FILE} is missing", str(path))
        return "npy-dir"
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic == _HDF5_MAGIC:
        return "h5"
    if magic[:4] == b"PK\x03\x04":
        return "npz"
    raise FormatError(f"not an embeddings file (neither HDF5 nor npz; starts with {magic[:4]!r})", str(path))


def read_embeddings(path) -> dict:
    """Load an embeddings output of any format into memory.

    Returns ``ids`` (list), ``lengths``, ``attrs``, ``format``, and those of ``protein``,
    ``mean_residue`` (``(N, W)`` arrays) and ``residue`` (a list of ``(len_i, W)`` arrays) that
    the output holds.

    >>> data = read_embeddings("embeddings.h5")  # doctest: +SKIP
    >>> data["protein"].shape  # doctest: +SKIP
    (2000, 512)
    """
    format = embeddings_format(path)
    reader = {"h5": _read_h5, "npz": _read_npz, "npy-dir": _read_npy_dir}[format]
    try:
        out = reader(Path(path))
    except KeyError as exc:
        raise FormatError(f"not a complete {format} embeddings output: {exc.args[0]} is missing", str(path)) from None
    out["format"] = format
    return out


def _split(flat: np.ndarray, offsets: np.ndarray) -> list:
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _read_h5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as h5:
        out = {
            "ids": [v.decode() if isinstance(v, bytes) else v for v in h5["ids"][:]],
            "lengths": h5["lengths"][:],
            "attrs": dict(h5.attrs),
        }
        for name in ("protein", "mean_residue"):
            if H5_DATASETS[name] in h5:
                out[name] = h5[H5_DATASETS[name]][:]
        if H5_DATASETS["residue"] in h5:
            out["residue"] = _split(h5[H5_DATASETS["residue"]][:], h5["residue_offsets"][:])
    return out


def _read_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        out = {"ids": [str(i) for i in archive["ids"]], "lengths": archive["lengths"],
               "attrs": json.loads(str(archive["attrs"]))}
        for name in ("protein", "mean_residue"):
            if name in archive.files:
                out[name] = archive[name]
        if "residue" in archive.files:
            out["residue"] = _split(archive["residue"], archive["residue_offsets"])
    return out


def _read_npy_dir(path: Path) -> dict:
    lines = (path / INDEX_FILE).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    if header[:2] != ["id", "length"] or not set(header[2:]) <= set(VECTORS):
        raise FormatError(f"unexpected columns {header} (expected id, length and some of {', '.join(VECTORS)})",
                          str(path / INDEX_FILE), 1)
    rows = [line.split("\t") for line in lines[1:] if line]
    for lineno, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise FormatError(f"{len(row)} columns, the header has {len(header)}", str(path / INDEX_FILE), lineno)
    out = {"ids": [r[0] for r in rows], "lengths": np.array([int(r[1]) for r in rows], dtype=np.int32),
           "attrs": json.loads((path / ATTRS_FILE).read_text(encoding="utf-8"))}
    for col, name in enumerate(header[2:], start=2):
        arrays = [np.load(path / r[col], allow_pickle=False) for r in rows]
        out[name] = arrays if name == "residue" else np.stack(arrays)
    return out
