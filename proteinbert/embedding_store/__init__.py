"""Writing and reading embeddings files (persistence only; computing them is :mod:`proteinbert.embeddings`).

Every format holds the same things under the same names:

================  ==========================  =====================================================
``ids``           N str                       record ids, input order
``lengths``       (N,) int32                  residues per record
``protein``       (N, W_protein) float32      the global track's vector (``pool`` global or both)
``mean_residue``  (N, W_residue) float32      mean of the protein's per-residue vectors over its
                                              residues (``pool`` mean or both)
``residue``       (len_i, W_residue) float32  per-residue vectors, one array per record
                                              (``--per-residue``)
``attrs``         dict                        layers, pool, the layer names behind each width,
                                              padding, model architecture, weights and FASTA
================  ==========================  =====================================================

The formats (``FORMATS``), all read by :func:`read_embeddings`:

* ``h5`` (one HDF5 file): datasets ``ids``, ``lengths``, ``protein_embeddings``,
  ``mean_residue_embeddings``, and ``residue_embeddings`` (all residues, records concatenated)
  with ``residue_offsets`` ((N + 1,) int64: record i is rows ``offsets[i]:offsets[i+1]``); root
  attributes hold ``attrs``.
* ``npz`` (one numpy archive, ``numpy.load`` reads it without pickle): arrays ``ids`` (unicode),
  ``lengths``, ``protein``, ``mean_residue``, and the ragged per-residue vectors as in HDF5: one
  flat ``residue`` array with ``residue_offsets``; ``attrs`` is a JSON string.
* ``npy-dir`` (a directory): ``<stem>.npy`` (the protein vector), ``<stem>.mean.npy``,
  ``<stem>.residues.npy`` per record, ``index.tsv`` (columns ``id``, ``length`` and the file of each
  vector, by the names above) and ``attrs.json``. The stem is the id with every character outside
  ``A-Z a-z 0-9 . _ -`` replaced by ``_`` (``sp|P12345|X`` → ``sp_P12345_X``), a leading ``.`` too,
  and ``~2``, ``~3``… appended where two ids would share a file (:func:`file_stems`).

Only the vectors that were asked for are present. Writing goes to a temporary name that is
renamed when complete (:func:`writing_embeddings`).

The parts live in one module each (this module keeps their names importable from here):
:mod:`.layout` (the names and files above, ``file_stems``), :mod:`.writers`
(the writers, the space they need, :func:`writing_embeddings`) and :mod:`.readers`
(:func:`read_embeddings`, :func:`embeddings_format`).
"""

from __future__ import annotations

from .layout import (
    ATTRS_FILE, FORMATS, H5_DATASETS, INDEX_FILE, NPY_SUFFIXES, POOLS, VECTORS, file_stems, output_kind,
)
from .readers import embeddings_format, read_embeddings
from .writers import (
    EmbeddingWriter, NpyDirWriter, NpzWriter, check_output_for_format, estimated_size, required_space,
    writing_embeddings,
)

__all__ = [
    "ATTRS_FILE", "FORMATS", "H5_DATASETS", "INDEX_FILE", "NPY_SUFFIXES", "POOLS", "VECTORS", "EmbeddingWriter",
    "NpyDirWriter", "NpzWriter", "check_output_for_format", "embeddings_format", "estimated_size", "file_stems",
    "output_kind", "read_embeddings", "required_space", "writing_embeddings",
]
