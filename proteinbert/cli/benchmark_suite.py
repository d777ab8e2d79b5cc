"""``benchmark_suite``: fine-tune on every ProteinBERT benchmark present; write a table next to the paper's.

Examples::

    benchmark_suite --small --from-scratch --out results/ci          # minutes on a CPU
    benchmark_suite --weights epoch_92400_sample_23500000.pkl --out results/released
"""

from __future__ import annotations

import json

from ._common import UsageError, add_threads_argument, apply_threads, make_parser, run_cli


def build_parser():
    p = make_parser("benchmark_suite", "Run the ProteinBERT benchmarks; write <out>.csv and <out>.md.")
    p.add_argument("--data-dir", default="../shared/data/protein_benchmarks",
                   help="folder with the benchmark CSVs (default: %(default)s)")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--weights", help="released-format .pkl (2021 weights or our pretraining checkpoints) or .keras")
    start.add_argument("--from-scratch", action="store_true", help="no pretraining")
    p.add_argument("--architecture", default=None, help="with --from-scratch: JSON of backbone sizes")
    p.add_argument("--small", action="store_true", help="CI setting: few records, 1 epoch per stage, tiny model")
    p.add_argument("--benchmark", action="append", help="run only this benchmark (name or dataset; repeatable)")
    p.add_argument("--max-train", type=int, help="subsample the training split to N records")
    p.add_argument("--max-eval", type=int, help="subsample validation and test splits to N records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output prefix: writes OUT.csv and OUT.md")
    add_threads_argument(p)
    return p


def run(args):
    apply_threads(args)
    from ..benchmark_suite import SuiteSettings, run_suite, to_markdown, write_tables

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
        try:
            overrides["architecture"] = json.loads(args.architecture)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--architecture is not JSON: {exc}") from None
    make = SuiteSettings.small if args.small else SuiteSettings.full
    settings = make(args.data_dir, weights=args.weights, **overrides)
    frame = run_suite(settings)
    csv_path, md_path = write_tables(frame, args.out)
    print(to_markdown(frame))
    print(f"written: {csv_path}, {md_path}")


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)
