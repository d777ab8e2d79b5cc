"""``set_test_set``: (re)designate the test set of an existing pretraining HDF5 (ours or a 2021 file).

Example::

    set_test_set uniref90.h5 --test-ids held_out_ids.txt --test-probability 0.01
    set_test_set uniref90.h5 --test-probability 0.01 --output uniref90.test1pc.h5
"""

from __future__ import annotations

import contextlib
import sys

from ..data.dataset_builder import set_test_set
from ..io_utils import claim_output
from ._common import UsageError, check_inputs, make_parser, probability, run_cli, seed_int, show_progress
from ._common import add_positional


def build_parser():
    parser = make_parser(
        "set_test_set",
        "Replace the test_set_mask of a pretraining dataset: records whose UniProt entry name or accession is "
        "listed in --test-ids, and/or each record with probability --test-probability (drawn as create_dataset "
        "does for the same --seed). In place by default (a changed copy replaces the file only when complete, "
        "so it needs free space for one copy), or into a new file with --output. "
        "Exit codes: 0 ok, 1 data or I/O error, 2 usage error.", progress_bars=True)
    add_positional(parser, "dataset", "-i", "--input", help="pretraining dataset (.h5)")
    parser.add_argument("--test-ids", metavar="FILE", help="file of UniProt entry names or accessions, one per line")
    parser.add_argument("--test-probability", type=probability, default=0.0, metavar="P",
                        help="put each record in the test set with probability P")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the probability draw")
    parser.add_argument("--output", "-o", metavar="H5", help="write a modified copy here instead of changing H5")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def main(argv=None) -> int:
    parser = build_parser()

    def run(args):
        if args.test_ids is None and args.test_probability == 0.0:
            raise UsageError("give --test-ids and/or --test-probability > 0")
        check_inputs(files={"H5": args.dataset, "--test-ids": args.test_ids})
        claim = contextlib.nullcontext()
        if args.output is not None:
            claim = claim_output(args.output, {"H5": args.dataset, "--test-ids": args.test_ids}, "--output",
                                 overwrite=args.overwrite)
        with claim:
            result = set_test_set(args.dataset, test_ids_file=args.test_ids, test_probability=args.test_probability,
                                  seed=args.seed, output=args.output, progress=show_progress(args))
        if not args.quiet:
            print(f"{result['path']}: {result['n_test_records']:,} of {result['n_records']:,} records in the test set"
                  + (f" ({result['test_ids_listed']:,} ids listed, {result['test_ids_not_found']:,} not found)"
                     if result["test_ids_listed"] else ""))

    return run_cli(parser, run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
