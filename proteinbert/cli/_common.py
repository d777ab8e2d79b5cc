"""Shared CLI plumbing: argument parsing, logging set-up and exit codes.

Exit codes: 0 success, 1 data or I/O error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from ..errors import ProteinBertError

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

logger = logging.getLogger("proteinbert")


class UsageError(Exception):
    """Raised by a CLI's ``run`` for an argument combination argparse cannot check."""


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_threads(text: str) -> tuple[int, int]:
    """``"INTRA,INTER"`` -> ``(intra, inter)``, both >= 1 (an argparse ``type``)."""
    parts = text.split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected two integers >= 1 as INTRA,INTER (e.g. 1,2). Received: {text!r}")
    return values


def add_threads_argument(parser) -> None:
    """``--threads INTRA,INTER`` on a parser (or argument group) of a command that runs TensorFlow."""
    parser.add_argument(
        "--threads", type=parse_threads, metavar="INTRA,INTER",
        help="TensorFlow CPU thread pools: threads within one operation, operations at once. 1,2 measured "
             "30%% faster fine-tuning steps on short batches on a 2-core CPU; on many cores INTRA=1 can be "
             "slower. Default: TensorFlow's (one per core)")


def apply_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads``; call first in ``run``, before any TensorFlow work."""
    if getattr(args, "threads", None) is not None:
        from ..hardware import set_cpu_threads

        set_cpu_threads(*args.threads)


def run_cli(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int | None],
            argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, configure logging, call ``run(args)`` and translate errors to exit codes."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True,
    )
    try:
        code = run(args)
        return EXIT_OK if code is None else int(code)
    except UsageError as exc:
        if args.debug:
            raise
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ProteinBertError, OSError) as exc:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
