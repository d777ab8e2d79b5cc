"""The names and files every embeddings format uses (the layout :mod:`proteinbert.embedding_store`
describes), and the ``npy-dir`` file-name rule; no I/O.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import InputError

FORMATS = ("h5", "npz", "npy-dir")
#: ``EmbeddingSettings.pool`` values: the per-protein vectors asked for ("both": protein and mean_residue).
POOLS = ("global", "mean", "both")
#: The names of the vectors, in the order they are written.
VECTORS = ("protein", "mean_residue", "residue")
H5_DATASETS = {"protein": "protein_embeddings", "mean_residue": "mean_residue_embeddings",
               "residue": "residue_embeddings"}
NPY_SUFFIXES = {"protein": ".npy", "mean_residue": ".mean.npy", "residue": ".residues.npy"}
INDEX_FILE = "index.tsv"
ATTRS_FILE = "attrs.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 200  # bytes; file names may have 255, and the longest suffix is 13


def output_kind(format: str) -> str:
    """``"dir"`` for ``npy-dir``, else ``"file"`` (``io_utils.check_output_path``'s ``kind``)."""
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(map(repr, FORMATS))}. Received: format={format!r}")
    return "dir" if format == "npy-dir" else "file"


def file_stems(ids) -> list[str]:
    """The file stem of each id in an ``npy-dir`` output: unique (ignoring case) over every file
    the records may have, safe on any file system.

    >>> file_stems(["sp|P1|A", "sp_P1_A", ".hidden", "x", "x.mean"])
    ['sp_P1_A', 'sp_P1_A~2', '_hidden', 'x', 'x.mean~2']
    """
    used: set[str] = set()
    stems = []
    for rid in ids:
        stem = _UNSAFE.sub("_", str(rid))
        if stem.startswith("."):
            stem = "_" + stem[1:]
        if len(stem.encode()) > _MAX_STEM:
            digest = hashlib.sha1(str(rid).encode()).hexdigest()[:12]
            stem = stem.encode()[: _MAX_STEM - 13].decode("ascii", "ignore") + "~" + digest
        candidate, k = stem, 1
        while any((candidate + s).lower() in used for s in NPY_SUFFIXES.values()):
            k += 1
            candidate = f"{stem}~{k}"  # '~' never comes out of the substitution: no clash with an id
        used.update((candidate + s).lower() for s in NPY_SUFFIXES.values())
        stems.append(candidate)
    return stems
