"""``embed``: FASTA in -> HDF5 of protein (and optionally residue) embeddings out."""

from __future__ import annotations

import json
import sys

from ..io_utils import claim_output
from ._common import add_threads_argument, apply_threads, make_parser, non_negative_int, positive_int, run_cli


def build_parser():
    p = make_parser("embed", "Embed the proteins of a FASTA file with ProteinBERT into an HDF5 file.")
    p.add_argument("--weights",
                   help="model weights: released-format .pkl (e.g. epoch_92400_sample_23500000.pkl) or .keras "
                        "(default: $PROTEINBERT_WEIGHTS, else ~/proteinbert_models/epoch_92400_sample_23500000.pkl)")
    p.add_argument("--input", "-i", required=True, help="FASTA file (plain or .gz)")
    p.add_argument("--output", "-o", required=True, help="HDF5 file to write (written atomically)")
    p.add_argument("--layers", choices=("last", "all"), default="last",
                   help="'last': final block only (128 per residue / 512 per protein for the released model); "
                        "'all': the 2021 concatenation of every layer (1562 / 15599). Default: last")
    p.add_argument("--per-residue", action="store_true", help="also write per-residue (local) embeddings")
    p.add_argument("--max-tokens", type=positive_int, default=16384, help="padded tokens per batch (default 16384)")
    p.add_argument("--max-batch-size", type=positive_int, default=128, help="sequences per batch at most (default 128)")
    p.add_argument("--min-length", type=non_negative_int, default=0,
                   help="pad every protein to at least this many tokens (512 = the 2021 behaviour); default 0")
    p.add_argument("--virtual-pad-length", type=non_negative_int, default=0,
                   help="let the attention count the <PAD> positions of padding to this length without computing "
                        "them: 512 comes close to the 2021 512-padded embeddings at a fraction of the cost; "
                        "default 0 (off)")
    p.add_argument("--xla", action="store_true",
                   help="compile with XLA: faster on large files, but each length bucket compiles once")
    p.add_argument("--chunk-length", type=non_negative_int, default=4096,
                   help="batches padded beyond this many positions run chunk by chunk: same numbers, "
                        "bounded memory on long proteins (default 4096; 0 = never)")
    p.add_argument("--mixed-precision", action="store_true", help="compute in bfloat16 (outputs stay float32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_threads_argument(p)
    return p


def run(args) -> int:
    from ..weights.locate import resolve_weights

    args.weights = str(resolve_weights(args.weights))  # a missing file is reported before TensorFlow starts
    # Owned from the start: a second run on the same --output fails at once instead of racing this one.
    with claim_output(args.output, {"--input": args.input, "--weights": args.weights}, "--output",
                      overwrite=args.overwrite):
        return _embed(args)


def _embed(args) -> int:
    apply_threads(args)
    from ..embeddings import EmbeddingSettings, embed_fasta
    from ..weights.convert import load_backbone

    settings = EmbeddingSettings(layers=args.layers, per_residue=args.per_residue, max_tokens=args.max_tokens,
                                 max_batch_size=args.max_batch_size, min_length=args.min_length,
                                 jit_compile=args.xla, chunk_length=args.chunk_length or None,
                                 virtual_pad_length=args.virtual_pad_length or None)
    if args.mixed_precision:
        from ..hardware import warn_if_bfloat16_is_slow

        warn_if_bfloat16_is_slow()
    model = load_backbone(args.weights, dtype="mixed_bfloat16" if args.mixed_precision else None)
    summary = embed_fasta(model, args.input, args.output, settings, weights_source=str(args.weights))
    print(json.dumps(summary, indent=1))
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
