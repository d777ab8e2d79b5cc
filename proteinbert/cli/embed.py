"""``embed``: FASTA in -> protein (and optionally residue) embeddings out, as HDF5, npz or .npy files."""

from __future__ import annotations

import json
import sys

from ..data.batching import DEFAULT_PAD_LENGTH
from ..embedding_store import FORMATS, POOLS
from ..io_utils import claim_output
from ._common import add_unknown_residues_argument
from ._common import (add_threads_argument, apply_threads, check_inputs, make_parser, non_negative_int, positive_int, run_cli,
                      show_progress)


def _margin(text: str):
    """``auto`` (None) or an integer >= 0 (an argparse ``type``)."""
    return None if text == "auto" else non_negative_int(text)


def build_parser():
    p = make_parser("embed", "Embed the proteins of a FASTA file with ProteinBERT: one vector per protein "
                             "(and per residue with --per-residue), as HDF5, npz or a directory of .npy files.",
                    progress_bars=True)
    p.add_argument("--weights",
                   help="model weights: released-format .pkl (e.g. epoch_92400_sample_23500000.pkl) or .keras "
                        "(default: $PROTEINBERT_WEIGHTS, else ~/proteinbert_models/epoch_92400_sample_23500000.pkl)")
    p.add_argument("--input", "-i", required=True, help="FASTA file (plain or .gz); required")
    p.add_argument("--output", "-o", required=True,
                   help="the file (h5, npz) or directory (npy-dir) to write, complete or not at all; required")
    p.add_argument("--format", choices=FORMATS, default="h5",
                   help="h5: one HDF5 file; npz: one numpy archive (per-residue vectors concatenated, with "
                        "offsets); npy-dir: a directory with <id>.npy per protein (<id>.residues.npy, "
                        "<id>.mean.npy) and index.tsv mapping ids to files (default: h5)")
    p.add_argument("--layers", choices=("last", "all"), default="last",
                   help="'last': final block only (128 per residue / 512 per protein for the released model); "
                        "'all': the 2021 concatenation of every layer (1562 / 15599) (default: last)")
    p.add_argument("--pool", choices=POOLS, default="global",
                   help="the per-protein vector: 'global', the global track's (protein_embeddings / protein); "
                        "'mean', the mean of the per-residue vectors over the protein's residues, without "
                        "<START>/<END>/<PAD> (mean_residue_embeddings / mean_residue); 'both' (default: global)")
    p.add_argument("--per-residue", action="store_true",
                   help="also write one vector per residue (default: per-protein vectors only)")
    p.add_argument("--max-tokens", type=positive_int, default=16384, help="padded tokens per batch (default: 16384)")
    p.add_argument("--max-batch-size", type=positive_int, default=128,
                   help="sequences per batch at most (default: 128)")
    p.add_argument("--virtual-pad-length", type=non_negative_int, default=DEFAULT_PAD_LENGTH,
                   help="embed each shorter protein as if padded to this length, as the 2021 code padded to its "
                        "model length: the attention counts the missing <PAD> positions without computing them; "
                        f"0 = off, each protein padded to its own length bucket only (default: {DEFAULT_PAD_LENGTH})")
    p.add_argument("--pad-margin", type=_margin, default=None, metavar="N|auto",
                   help="real <PAD> positions computed after each sequence under virtual padding (never beyond "
                        "--virtual-pad-length); 0 is cheaper but the last residues differ from real padding "
                        "(default: auto = twice the convolutions' reach, 240 for the released model: the numbers "
                        "of real padding to float rounding)")
    p.add_argument("--min-length", type=non_negative_int, default=0,
                   help="pad every protein to at least this many tokens, for real (512 = the 2021 behaviour, "
                        "at its cost) (default: 0)")
    p.add_argument("--xla", action="store_true",
                   help="compile with XLA: faster on large files, but each length bucket compiles once "
                        "(default: off)")
    p.add_argument("--chunk-length", type=non_negative_int, default=4096,
                   help="batches padded beyond this many positions run chunk by chunk: same numbers, "
                        "bounded memory on long proteins; 0 = never (default: 4096)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="compute in bfloat16; outputs stay float32 (default: off, float32)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (default: off, an existing output is an error)")
    add_unknown_residues_argument(p)
    add_threads_argument(p)
    return p


def run(args) -> int:
    from ..embedding_store import check_output_for_format, output_kind
    from ..weights.locate import resolve_weights

    args.weights = str(resolve_weights(args.weights))  # a missing file is reported before TensorFlow starts
    check_output_for_format(args.output, args.format, "--output")
    # Owned from the start: a second run on the same --output fails at once instead of racing this one.
    with claim_output(args.output, {"--input": args.input, "--weights": args.weights}, "--output",
                      overwrite=args.overwrite, kind=output_kind(args.format)):
        check_inputs(files={"--input": args.input})  # after the usage errors, before TensorFlow starts
        return _embed(args)


def _embed(args) -> int:
    apply_threads(args)
    from ..embeddings import EmbeddingSettings, embed_fasta
    from ..weights.convert import load_backbone

    settings = EmbeddingSettings(layers=args.layers, per_residue=args.per_residue, pool=args.pool,
                                 max_tokens=args.max_tokens, max_batch_size=args.max_batch_size,
                                 min_length=args.min_length, jit_compile=args.xla,
                                 chunk_length=args.chunk_length or None,
                                 virtual_pad_length=args.virtual_pad_length or None, pad_margin=args.pad_margin)
    if args.mixed_precision:
        from ..hardware import warn_if_bfloat16_is_slow

        warn_if_bfloat16_is_slow()
    model = load_backbone(args.weights, dtype="mixed_bfloat16" if args.mixed_precision else None)
    summary = embed_fasta(model, args.input, args.output, settings, weights_source=str(args.weights),
                          format=args.format, overwrite=args.overwrite, progress_bar=show_progress(args),
                          unknown_residues=args.unknown_residues)
    print(json.dumps(summary, indent=1))
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
