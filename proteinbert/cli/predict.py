"""``predict``: apply a fine-tuned model directory to a CSV or FASTA file; write predictions as CSV.

Example::

    predict signalp_model proteins.fasta -o predictions.csv
"""

from __future__ import annotations

from ._common import add_threads_argument, apply_threads, make_parser, run_cli


def build_parser():
    p = make_parser("predict", "Predict with a model directory written by `finetune`.")
    p.add_argument("model_dir", help="directory written by finetune")
    p.add_argument("input", help="CSV (with a seq column) or FASTA file")
    p.add_argument("-o", "--output", required=True, help="predictions CSV to write")
    p.add_argument("--seq-col", default="seq")
    p.add_argument("--id-col", help="CSV column with record ids (default: row number; FASTA: record id)")
    p.add_argument("--crop-len", type=int, help="crop longer sequences to this many residues (off by default)")
    add_threads_argument(p)
    return p


def run(args):
    apply_threads(args)
    from ..training.jobs import run_predict

    frame = run_predict(args.model_dir, args.input, args.output, args.seq_col, args.id_col, args.crop_len)
    print(f"{len(frame)} predictions written to {args.output}")


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)
