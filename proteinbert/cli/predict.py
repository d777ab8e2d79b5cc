"""``predict``: apply a fine-tuned model directory to a CSV or FASTA file; write predictions as CSV.

Example::

    proteinbert predict signalp_model -i proteins.fasta -o predictions.csv
"""

from __future__ import annotations

import sys

from ..io_utils import claim_output
from ._common import add_unknown_residues_argument
from ._common import add_threads_argument, apply_threads, check_inputs, make_parser, positive_int, run_cli
from ._common import add_positional


def build_parser():
    p = make_parser("predict", "Predict with a model directory written by `finetune`.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="directory written by finetune")
    add_positional(p, "input", "-i", "--input", help="CSV (with a seq column) or FASTA file")
    p.add_argument("-o", "--output", required=True, help="predictions CSV to write (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--seq-col", default="seq", help="CSV column with the sequences")
    p.add_argument("--id-col", help="CSV column with record ids (default: row number; FASTA: record id)")
    p.add_argument("--crop-len", type=positive_int, metavar="N",
                   help="crop longer sequences to this many residues (off by default)")
    add_unknown_residues_argument(p)
    add_threads_argument(p)
    return p


def run(args):
    check_inputs(files={"INPUT": args.input}, dirs={"MODEL_DIR": args.model_dir})  # before TensorFlow starts
    with claim_output(args.output, {"MODEL_DIR": args.model_dir, "INPUT": args.input}, "--output",
                      overwrite=args.overwrite):
        apply_threads(args)
        from ..training.jobs import run_predict

        frame = run_predict(args.model_dir, args.input, args.output, args.seq_col, args.id_col, args.crop_len,
                            unknown_residues=args.unknown_residues)
    print(f"{len(frame)} predictions written to {args.output}")


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
