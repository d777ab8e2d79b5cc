"""``benchmark_suite``: fine-tune on every ProteinBERT benchmark present; write a table next to the paper's.

Examples::

    export PROTEINBERT_BENCHMARKS=/data/protein_benchmarks            # or --data-dir each time
    benchmark_suite --small --from-scratch --out results/ci          # minutes on a CPU
    benchmark_suite --weights epoch_92400_sample_23500000.pkl --out results/released

Re-running with the same ``--out`` and settings skips the benchmarks already finished there (their
rows are kept), so a long suite can be stopped and continued, or run one ``--benchmark`` at a time;
``--redo`` runs the selected benchmarks again.
"""

from __future__ import annotations

import os
import sys

from ._common import (
    UsageError, add_threads_argument, apply_threads, check_inputs, make_parser, parse_architecture, positive_int,
    run_cli, seed_int,
)
from ._common import hide_aliases


#: Environment variable naming the benchmark folder when --data-dir is not given.
DATA_ENV = "PROTEINBERT_BENCHMARKS"


def build_parser():
    p = make_parser("benchmark_suite", "Run the ProteinBERT benchmarks; write <out>.csv and <out>.md.")
    p.add_argument("--data-dir", metavar="DIR", default=os.environ.get(DATA_ENV) or None,
                   help=f"folder with the benchmark CSVs (default: ${DATA_ENV}; one of the two is required)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--weights", help="released-format .pkl (2021 weights or our pretraining checkpoints) or .keras "
                                         "(default: $PROTEINBERT_WEIGHTS, else "
                                         "~/proteinbert_models/epoch_92400_sample_23500000.pkl)")
    start.add_argument("--from-scratch", action="store_true", help="no pretraining")
    p.add_argument("--architecture", default=None, metavar="JSON",
                   help='with --from-scratch: JSON of backbone sizes, e.g. \'{"d_seq": 32, "n_blocks": 2}\' '
                        "(default: the released model's, or the tiny one with --small)")
    p.add_argument("--small", action="store_true", help="CI setting: few records, 1 epoch per stage, tiny model")
    p.add_argument("--benchmark", action="append", metavar="NAME",
                   help="run only this benchmark (name or dataset; repeatable; default: all)")
    p.add_argument("--max-train", type=positive_int, metavar="N",
                   help="subsample the training split to N records (default: all, or few with --small)")
    p.add_argument("--max-eval", type=positive_int, metavar="N",
                   help="subsample validation and test splits to N records (default: all, or few with --small)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the splits and subsamples drawn from the CSVs")
    hide_aliases(p.add_argument("-o", "--output", "--out", dest="out", required=True,
                   help="output prefix: writes OUT.csv, OUT.md and OUT.json (runs: command, machine, versions; "
                        "suffixes appended). Benchmarks already finished in OUT.csv with the same settings are "
                        "kept and skipped"), "--out")
    p.add_argument("--redo", action="store_true", help="run the selected benchmarks again even if OUT.csv has them")
    add_threads_argument(p)
    return p


def run(args, argv=None):
    from ..benchmark_suite import (
        SuiteSettings, check_runnable, check_table_paths, input_files, run_suite, table_paths, to_markdown,
    )

    if not args.data_dir:
        raise UsageError(f"no benchmark folder: pass --data-dir DIR or set {DATA_ENV}=DIR (the folder holding "
                         "signalP_binary.train.csv, stability.train.csv, ...)")
    overrides = {"seed": args.seed}
    if args.benchmark:
        overrides["benchmarks"] = tuple(args.benchmark)
    if args.max_train is not None:
        overrides["max_train"] = args.max_train
    if args.max_eval is not None:
        overrides["max_eval"] = args.max_eval
    if args.architecture is not None:
        if not args.from_scratch:
            raise UsageError("--architecture only applies with --from-scratch")
        overrides["architecture"] = parse_architecture(args.architecture)
    # Missing inputs are reported before any work (and before TensorFlow starts).
    check_inputs(dirs={"--data-dir": args.data_dir})
    if not args.from_scratch:
        from ..weights.locate import resolve_weights

        args.weights = str(resolve_weights(args.weights))
    make = SuiteSettings.small if args.small else SuiteSettings.full
    settings = make(args.data_dir, weights=args.weights, **overrides)
    check_runnable(settings)  # before TensorFlow starts
    inputs = input_files(settings)
    check_table_paths(args.out, inputs)  # before hours of fine-tuning, not after
    apply_threads(args)
    frame = run_suite(settings, out_prefix=args.out, redo=args.redo, command=["benchmark_suite", *(argv or [])],
                      inputs=inputs)
    csv_path, md_path = table_paths(args.out)
    print(to_markdown(frame))
    print(f"written: {csv_path}, {md_path}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_cli(build_parser(), lambda args: run(args, argv), argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
