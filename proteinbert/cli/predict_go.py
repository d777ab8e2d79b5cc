"""``predict-go``: the GO terms a pretraining save of ours predicts for each protein of a FASTA file (TSV).

Example::

    proteinbert predict-go --checkpoint runs/sp2k -i proteins.fasta -o go.tsv --go-obo go.obo.gz
"""

from __future__ import annotations

import sys

from ..io_utils import check_output_path, claim_output
from ._common import add_unknown_residues_argument
from ._common import add_threads_argument, apply_threads, make_parser, non_negative_int, positive_int, probability
from ._common import run_cli


def build_parser():
    p = make_parser("predict-go", "Predict GO terms for the proteins of a FASTA file with a model pretrained by "
                                  "`proteinbert pretrain`; write them as a TSV (protein_id, go_id, go_name, "
                                  "probability).")
    p.add_argument("--checkpoint", "--weights", required=True,
                   help="a pretraining save directory (epoch_E_sample_S/) or a run directory written by "
                        "`proteinbert pretrain` (its newest save). The released .pkl cannot be used: it does not "
                        "say which GO term each output is")
    p.add_argument("-i", "--input", required=True, help="FASTA file (plain or .gz), unique ids")
    p.add_argument("-o", "--output", required=True, help="TSV file to write (written atomically)")
    p.add_argument("--threshold", type=probability, default=0.0,
                   help="report GO terms with a probability of at least this. Default: 0 (all)")
    p.add_argument("--top-k", type=non_negative_int, default=10,
                   help="report at most this many GO terms per protein, the most probable (0: no limit). "
                        "Applies together with --threshold. Default: 10")
    p.add_argument("--go-obo",
                   help="Gene Ontology OBO file (plain or .gz) for the go_name column, e.g. the one the dataset "
                        "was built from. Default: none (go_name left empty)")
    p.add_argument("--max-tokens", type=positive_int, default=16384, help="padded tokens per batch (default 16384)")
    p.add_argument("--max-batch-size", type=positive_int, default=128, help="proteins per batch at most (default 128)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_unknown_residues_argument(p)
    add_threads_argument(p)
    return p


def run(args) -> int:
    from ..go_prediction import GoPredictionSettings, read_go_inputs, write_go_predictions

    settings = GoPredictionSettings(threshold=args.threshold, top_k=args.top_k, max_tokens=args.max_tokens,
                                    max_batch_size=args.max_batch_size)
    sources = {"--checkpoint": args.checkpoint, "--input": args.input, "--go-obo": args.go_obo}
    check_output_path(args.output, sources, "--output", overwrite=args.overwrite)  # before reading anything
    inputs = read_go_inputs(args.checkpoint, args.input, go_obo=args.go_obo, unknown_residues=args.unknown_residues)  # TensorFlow not started yet
    with claim_output(args.output, sources, "--output", overwrite=args.overwrite):
        apply_threads(args)
        summary = write_go_predictions(inputs, args.output, settings)
    print(f"{summary['rows']} GO predictions for {summary['proteins']} proteins written to {args.output}")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
