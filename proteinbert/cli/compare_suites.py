"""``compare_suites``: two benchmark-suite tables side by side, e.g. pretrained against from scratch.

Example::

    compare_suites results/pretrained results/scratch --labels pretrained "from scratch" --spread 0.005

Prints one Markdown row per benchmark finished in both tables (the two scores, their difference and
which is higher), then how many benchmarks each side won. ``--spread`` (a seed standard deviation)
counts smaller differences as neither side's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import make_parser, non_negative_float, run_cli


def build_parser():
    p = make_parser("compare_suites", "Compare two benchmark-suite tables (the OUT.csv of benchmark_suite), "
                                      "benchmark by benchmark. Exit codes: 0 ok, 1 data or I/O error, 2 usage error.")
    p.add_argument("first", help="a suite table: OUT.csv, or the OUT prefix given to benchmark_suite")
    p.add_argument("second", help="the table to compare it with")
    p.add_argument("--labels", nargs=2, metavar=("FIRST", "SECOND"), default=("first", "second"),
                   help="names of the two columns (default: first second)")
    p.add_argument("--spread", type=non_negative_float, default=0.0, metavar="SD",
                   help="differences no larger than SD (a seed standard deviation) count for neither side "
                        "(default: 0)")
    p.add_argument("-o", "--output", metavar="MD", help="also write the Markdown to this file (replaced whole)")
    return p


def run(args):
    from ..benchmark_tables import compare, comparison_markdown, read_table, table_csv
    from ..io_utils import atomic_write_path
    from ..output_claims import claim_output

    tables = [table_csv(t) for t in (args.first, args.second)]
    comparison = compare(read_table(tables[0]), read_table(tables[1]), spread=args.spread)
    text = comparison_markdown(comparison, tuple(args.labels), spread=args.spread, sources=tables)
    if args.output is not None:
        with claim_output(args.output, {"FIRST": tables[0], "SECOND": tables[1]}) as out, \
                atomic_write_path(out) as tmp:
            Path(tmp).write_text(text)
    if not args.quiet:
        print(text, end="")


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
