"""Small pretraining HDF5 files for tests, written with h5py straight from the real Swiss-Prot
2014 excerpt (direct, unpropagated GO annotations), following ``h5dataset.SCHEMA``.

Kept independent of the dataset builder so the pretraining tests do not depend on it.
"""

from __future__ import annotations

import collections
import gzip

import h5py
import numpy as np

from proteinbert.data.fasta import read_fasta


def read_sp2014(fasta_path, tsv_path, n: int | None = None):
    """``[(accession, seq, [GO ids])]`` from the sp2014 FASTA + GO TSV (first ``n`` records)."""
    go = {}
    with gzip.open(tsv_path, "rt") as f:
        next(f)
        for line in f:
            acc, *cols = line.rstrip("\n").split("\t")
            go[acc] = sorted({t for c in cols for t in c.split(";") if t})
    out = []
    for rec in read_fasta(fasta_path):
        out.append((rec.id, rec.seq, go.get(rec.id, [])))
        if n is not None and len(out) >= n:
            break
    return out


def write_pretraining_h5(path, records, min_records: int = 5, test_fraction: float = 0.1, seed: int = 0,
                         max_len: int | None = None, n_terms: int | None = None):
    """Write ``records`` (``[(id, seq, go_ids)]``) as a pretraining HDF5; returns the GO id list."""
    rng = np.random.default_rng(seed)
    if max_len is not None:
        records = [(a, s[:max_len], g) for a, s, g in records]
    counts = collections.Counter(t for _, _, g in records for t in g)
    terms = sorted(t for t, c in counts.items() if c >= min_records)
    if n_terms is not None:  # the n most frequent
        terms = sorted(sorted(terms, key=lambda t: (-counts[t], t))[:n_terms])
    index = {t: i for i, t in enumerate(terms)}
    masks = np.zeros((len(records), len(terms)), dtype=bool)
    for i, (_, _, g) in enumerate(records):
        masks[i, [index[t] for t in g if t in index]] = True
    string = h5py.string_dtype()
    with h5py.File(path, "w") as h5:
        h5.create_dataset("included_annotations", data=np.array(terms, dtype=object), dtype=string)
        h5.create_dataset("uniprot_ids", data=np.array([r[0] for r in records], dtype=object), dtype=string)
        h5.create_dataset("seqs", data=np.array([r[1] for r in records], dtype=object), dtype=string)
        h5.create_dataset("seq_lengths", data=np.array([len(r[1]) for r in records], dtype=np.int32))
        h5.create_dataset("annotation_masks", data=masks)
        h5.create_dataset("test_set_mask", data=rng.random(len(records)) < test_fraction)
    return terms
