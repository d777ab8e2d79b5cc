"""Stage 3 of the dataset builder: write the spooled records, in random order, into the HDF5 file.

:func:`estimated_h5_bytes` sizes the file before HDF5 starts (HDF5 cannot recover from a full
disk), :func:`reclaimable_scratch_bytes` says how much of that the scratch gives back while it is
written, and :func:`write_h5` writes it, reserving its space bucket by bucket as the bucket files
are deleted (see :func:`~proteinbert.io_utils.writing_h5`).

>>> estimated_h5_bytes(n_records=1000, text_bytes=300_000, n_annotations=50, n_set=4000)
691691
"""

from __future__ import annotations

import functools
import os

import h5py
import numpy as np

from ..errors import FormatError
from ..io_utils import reserve_h5, writing_h5
from .dataset_scratch import BucketSpool, shuffled_chunks
from .h5dataset import create_pretraining_datasets
from .holdout import flag_test_records, rng_for_test_set
from .progress import RecordProgress

# Per record, each of its 3 strings (uniprot_ids, uniprot_accessions, seqs) has a 16-byte reference
# in its dataset and a global-heap object (16-byte header, data padded to 8 bytes: 4 on average);
# seq_lengths and test_set_mask take 4 and 1.
_STRINGS_PER_RECORD = 3
_FIXED_BYTES_PER_RECORD = _STRINGS_PER_RECORD * 16 + 4 + 1  # allocated at the first write
_HEAP_BYTES_PER_STRING = 16 + 4
_MARGIN = 256 << 10  # added to each size below


def estimated_h5_bytes(n_records: int, text_bytes: int, n_annotations: int, n_set: int) -> int:
    """About the size of the file :func:`write_h5` makes from ``n_records`` records whose ids,
    accessions and sequences hold ``text_bytes`` characters and whose masks ``n_set`` set bits.

    Measured 1-10 % above the real size (2,000 Swiss-Prot records × 5,852 terms; 30,000 short
    records × 3 terms).
    """
    per_record = _FIXED_BYTES_PER_RECORD + _STRINGS_PER_RECORD * _HEAP_BYTES_PER_STRING
    # The masks are gzip'd and mostly zeros: ~2 bytes per set bit, runs of zeros ~400:1.
    masks = 2 * n_set + n_records * n_annotations // 400
    return int((text_bytes + n_records * per_record + masks) * 1.02) + _MARGIN


def reclaimable_scratch_bytes(output, scratch, spool: BucketSpool, records_per_bucket: int) -> int:
    """Bytes of the bucket files that are freed on the output's file system while it is written."""
    if os.stat(scratch).st_dev != os.stat(output.parent).st_dev:
        return 0
    # Each bucket file is deleted before its records are written, so its space comes back; one
    # too large to load is first split into pieces (one more copy of it at a time).
    sizes = [os.path.getsize(p) for p in spool.paths if p.exists()]
    split = [size for size, count in zip(sizes, spool.sizes) if count > records_per_bucket]
    return sum(sizes) - max(split, default=0)


def write_h5(path, settings, spool: BucketSpool, annotations, column_of, rng, test_ids, attrs: dict,
             name=None, reserve: int = 0) -> dict:
    """Write the records of ``spool`` in random order into a new HDF5 ``path``, with root ``attrs``
    (plus the counts written). ``name`` is the file to name in errors (the final output).

    ``reserve``: the file's estimated size. Disk space for it is reserved bucket by bucket, each
    bucket after its scratch file was deleted (see :func:`~proteinbert.io_utils.writing_h5`), so
    the scratch and the output need not fit side by side.
    """
    n, n_ann = spool.n, len(annotations)
    block_rows = max(1, min(16384, (64 << 20) // max(n_ann, 1)))
    found: set = set()
    flag_test = functools.partial(flag_test_records, test_ids=test_ids, rng=rng_for_test_set(settings.seed),
                                  probability=float(settings.test_probability), found=found)
    annotated = n_test = 0
    offset = 0
    progress = RecordProgress("write HDF5", settings.progress, total=n)
    try:
        with writing_h5(path, "w", name=name) as h5:
            out = create_pretraining_datasets(h5, n, annotations)
            out["uniprot_accessions"] = h5.create_dataset("uniprot_accessions", shape=(n,), dtype=h5py.string_dtype())
            for bpath, count in zip(spool.paths, spool.sizes):
                for records in shuffled_chunks(bpath, count, settings.records_per_bucket, rng):
                    if reserve:
                        reserve_h5(h5, _reserved_through(reserve, n, offset + len(records)), name)
                    for start in range(0, len(records), block_rows):
                        block = records[start:start + block_rows]
                        block_annotated, block_test = _write_block(out, offset, block, column_of, n_ann, flag_test)
                        annotated += block_annotated
                        n_test += block_test
                        offset += len(block)
                        progress.tick(len(block))
            h5.attrs.update({**attrs, "n_annotated_records": int(annotated), "n_test_records": int(n_test)})
    finally:
        progress.close()
    if offset != n:
        raise FormatError(f"spooled {n} records but read back {offset}", str(path))
    return {"annotated": annotated, "test": n_test, "test_ids_found": len(found)}


def _reserved_through(reserve: int, n: int, done: int) -> int:
    """Bytes of the file to reserve before writing its records up to ``done`` of ``n``: the
    fixed-width part at once, the rest in proportion, plus 2 % ahead."""
    fixed = min(int(reserve), n * _FIXED_BYTES_PER_RECORD + _MARGIN)
    ahead = int(0.02 * (reserve - fixed)) + _MARGIN  # a bucket may hold longer sequences than average
    share = (reserve - fixed) * done // max(n, 1)
    return min(int(reserve), fixed + share + ahead)


def _write_block(out: dict, offset: int, block: list, column_of: np.ndarray, n_ann: int, flag_test) -> tuple:
    """Write parsed records ``block`` at row ``offset``; ``(records with a kept term, test records)``."""
    m = len(block)
    names = [r[0] for r in block]
    accs = [r[1] for r in block]
    seqs = [r[2] for r in block]
    mask = _annotation_mask([r[3] for r in block], column_of, n_ann)
    test = flag_test(m, names, accs)
    sl = slice(offset, offset + m)
    out["uniprot_ids"][sl] = np.array(names, dtype=object)
    out["uniprot_accessions"][sl] = np.array(accs, dtype=object)
    out["seqs"][sl] = np.array(seqs, dtype=object)
    out["seq_lengths"][sl] = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=m)
    out["annotation_masks"][sl] = mask
    out["test_set_mask"][sl] = test
    return int(mask.any(axis=1).sum()), int(test.sum())


def _annotation_mask(term_lists: list, column_of: np.ndarray, n_ann: int) -> np.ndarray:
    """Rows of ``annotation_masks``: term indices mapped to kept columns (``column_of``; -1: not kept)."""
    m = len(term_lists)
    sizes = np.fromiter((len(x) for x in term_lists), dtype=np.int64, count=m)
    mask = np.zeros((m, n_ann), dtype=bool)
    if sizes.sum():
        cols = column_of[np.concatenate(term_lists)]
        rows = np.repeat(np.arange(m), sizes)
        keep = cols >= 0
        mask[rows[keep], cols[keep]] = True
    return mask
