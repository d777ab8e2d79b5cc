"""Embedding padding policies: agreement with real padding to 512, and what each costs.

The released model attends over the ``<PAD>`` positions, so an embedding depends on the length it is
padded to; the 2021 code padded every short protein to 512. For the proteins of a FASTA file (by
default the 2,000 Swiss-Prot proteins in ``data/``), this embeds with each policy and compares with
``fixed 512`` (``EmbeddingSettings(min_length=512, virtual_pad_length=None)``, the 2021 numbers):

==========================  ==========================================================================
``bucket only``             each protein padded to its own length bucket (``virtual_pad_length=None``)
``virtual 512, margin 0``   the attention also counts the pads of 512 (``pad_margin=0``)
``virtual 512, margin R``   and R real pads after each sequence, R = the convolutions' reach
``virtual 512, margin 2R``  twice that: the default (``EmbeddingSettings()``)
``fixed 512``               real padding to 512 (the reference itself)
==========================  ==========================================================================

Printed per policy: padded positions computed (``tokens``; the far-``<PAD>`` position of virtual
padding counted, one a protein), the best of ``--repeats`` timed passes (the policies take turns in
each round, so that a change of load on a shared machine hits them alike; the first, untimed, round
traces and warms up), its ratio to ``fixed 512``, and the largest absolute difference and the
smallest cosine similarity from ``fixed 512`` of the protein (global) vectors, over all proteins and
over those under 100 residues, and the largest difference of the per-residue vectors.

    python benchmarks/embedding_padding.py --weights small_lamb.pkl          # a trained model
    python benchmarks/embedding_padding.py --random-released-size --records 600
    python benchmarks/embedding_padding.py --random-released-size --max-length 150   # short proteins only
    python benchmarks/embedding_padding.py --quick                           # seconds: tiny random model

``--weights`` defaults to ``$PROTEINBERT_WEIGHTS``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402

SHORT = 100  # residues: the proteins whose embeddings padding changes most


def policies(reach: int, pad_length: int) -> list[tuple[str, dict]]:
    return [
        ("bucket only", dict(virtual_pad_length=None)),
        (f"virtual {pad_length}, margin 0", dict(pad_margin=0)),
        (f"virtual {pad_length}, margin {reach} (R)", dict(pad_margin=reach)),
        (f"virtual {pad_length}, margin {2 * reach} (2R, default)", {}),
        (f"fixed {pad_length}", dict(virtual_pad_length=None, min_length=pad_length)),
    ]


def one_pass(embedder, seqs) -> tuple[np.ndarray, list, float]:
    """Protein vectors, per-residue vectors (input order) and the wall seconds of one pass."""
    protein = np.zeros((len(seqs), embedder.protein_width), np.float32)
    residue = [None] * len(seqs)
    start = time.perf_counter()
    for idx, vectors in embedder.batches(seqs):
        protein[idx] = vectors["protein"]
        for j, i in enumerate(idx):
            residue[i] = vectors["residue"][j]
    return protein, residue, time.perf_counter() - start


def agreement(protein, residue, ref_protein, ref_residue, short) -> dict:
    diff = np.abs(protein - ref_protein).max(axis=1)
    cos = (protein * ref_protein).sum(1) / (np.linalg.norm(protein, axis=1) * np.linalg.norm(ref_protein, axis=1))
    res = max(float(np.abs(a - b).max()) for a, b in zip(residue, ref_residue))
    out = {"max_abs": float(diff.max()), "min_cos": float(cos.min()), "residue_max_abs": res}
    if short.any():
        out.update(short_max_abs=float(diff[short].max()), short_min_cos=float(cos[short].min()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fasta", default=str(_harness.DATA / "sp2014_go.2k.fasta.gz"))
    parser.add_argument("--records", type=int, default=2000, help="the first N records of --fasta (after --max-length)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="only records of at most this many residues (short proteins, where the policies differ most)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (after one warm-up round)")
    parser.add_argument("--weights", default=os.environ.get("PROTEINBERT_WEIGHTS"),
                        help="released-format weights (default: $PROTEINBERT_WEIGHTS)")
    parser.add_argument("--random-released-size", action="store_true",
                        help="instead of --weights: the released architecture with random weights")
    parser.add_argument("--quick", action="store_true", help="seconds: a tiny random model, 40 records, 1 round")
    args = parser.parse_args(argv)

    import keras

    from proteinbert.data.batching import DEFAULT_PAD_LENGTH
    from proteinbert.data.fasta import read_fasta
    from proteinbert.embeddings import EmbeddingSettings, Embedder, convolution_reach
    from proteinbert.model import RELEASED_CONFIG, ProteinBertBackbone
    from proteinbert.weights import load_backbone

    if args.quick:
        args.records, args.repeats = 40, 1
        keras.utils.set_random_seed(0)
        model, name = ProteinBertBackbone(**_harness.QUICK_ARCHITECTURE), "tiny random"
    elif args.random_released_size:
        keras.utils.set_random_seed(0)
        model, name = ProteinBertBackbone(**RELEASED_CONFIG), "released size, random weights"
    elif args.weights:
        model, name = load_backbone(args.weights), os.path.basename(args.weights)
    else:
        parser.error("name a model: --weights (or $PROTEINBERT_WEIGHTS), --random-released-size or --quick")
    records = (r for r in read_fasta(args.fasta) if args.max_length is None or len(r.seq) <= args.max_length)
    seqs = [r.seq for _, r in zip(range(args.records), records)]
    lengths = np.array([len(s) for s in seqs])
    short = lengths < SHORT
    reach = convolution_reach(model)
    _harness.print_header(model=name, records=len(seqs), residues=int(lengths.sum()), short=int(short.sum()),
                          median_length=int(np.median(lengths)), reach=reach)

    rows = [(label, Embedder(model, EmbeddingSettings(per_residue=True, **kw))) for label, kw in
            policies(reach, DEFAULT_PAD_LENGTH)]
    outputs, times = {}, {label: [] for label, _ in rows}
    for round_ in range(args.repeats + 1):
        for label, embedder in rows:
            protein, residue, seconds = one_pass(embedder, seqs)
            if round_ == 0:
                outputs[label] = (protein, residue)
            else:
                times[label].append(seconds)
            print(f"# round {round_} {label}: {seconds:.2f} s", file=sys.stderr, flush=True)
    ref_label = rows[-1][0]
    ref_protein, ref_residue = outputs[ref_label]
    bucket_tokens = None
    print("| policy | tokens | × bucket | time (s) | × fixed | protein max abs | min cos | "
          f"< {SHORT} aa: max abs | min cos | residue max abs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, embedder in rows:
        tokens = sum(embedder.padded_lengths(lengths)) + (len(seqs) if embedder.virtual_pad_length else 0)
        bucket_tokens = bucket_tokens or tokens
        best = min(times[label])
        a = agreement(*outputs[label], ref_protein, ref_residue, short)
        print(f"| {label} | {tokens:,} | {tokens / bucket_tokens:.2f} | {best:.1f} | {best / min(times[ref_label]):.2f} "
              f"| {a['max_abs']:.2g} | {a['min_cos']:.6f} | {a.get('short_max_abs', float('nan')):.2g} "
              f"| {a.get('short_min_cos', float('nan')):.6f} | {a['residue_max_abs']:.2g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
