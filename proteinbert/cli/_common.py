"""Shared CLI plumbing: argument parsing, logging set-up and exit codes.

Exit codes: 0 success, 1 data or I/O error, 2 usage error, 130 interrupted (SIGINT), 143 terminated
(SIGTERM, handled like SIGINT: partial outputs are removed, pretraining saves first).

Numeric options use the argparse ``type=`` helpers below (:func:`positive_int`, :func:`probability`
…), so every command refuses a negative, zero or non-finite value the same way, before any work.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import signal
import sys
import threading
from typing import Callable, Sequence

from ..errors import InputError, ProteinBertError, UsageError

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

logger = logging.getLogger("proteinbert")

__all__ = [
    "EXIT_OK", "EXIT_DATA", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "UsageError", "Terminated",
    "make_parser", "hide_aliases", "add_positional", "run_cli", "positive_int", "non_negative_int",
    "positive_float", "non_negative_float",
    "finite_float", "probability", "fraction_below_one", "seed_int", "parse_architecture",
    "add_threads_argument", "apply_threads", "parse_threads", "sigterm_as_interrupt", "default_text",
    "show_progress", "check_inputs",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT raises ``KeyboardInterrupt`` (so the same clean-up runs)."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- numeric argument types: one rule for every command ---------------------------------------------
def _number(text: str, kind, minimum=None, maximum=None, maximum_exclusive=False, what=None):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        value = None
    ok = value is not None and (kind is int or math.isfinite(value))
    ok = ok and (minimum is None or value >= minimum)
    ok = ok and (maximum is None or (value < maximum if maximum_exclusive else value <= maximum))
    if not ok:
        raise argparse.ArgumentTypeError(f"must be {what}. Received: {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (an argparse ``type``)."""
    return _number(text, int, 1, what="an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (an argparse ``type``)."""
    return _number(text, int, 0, what="an integer >= 0")


def seed_int(text: str) -> int:
    """A random seed: an integer ≥ 0 (numpy refuses negative seeds)."""
    return _number(text, int, 0, what="an integer >= 0")


def finite_float(text: str) -> float:
    """Any finite number (an argparse ``type``)."""
    return _number(text, float, what="a finite number")


def positive_float(text: str) -> float:
    """A finite number > 0 (an argparse ``type``)."""
    value = _number(text, float, 0.0, what="a finite number > 0")
    if value == 0.0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0. Received: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number ≥ 0 (an argparse ``type``)."""
    return _number(text, float, 0.0, what="a finite number >= 0")


def probability(text: str) -> float:
    """A number in [0, 1] (an argparse ``type``)."""
    return _number(text, float, 0.0, 1.0, what="a number in [0, 1]")


def fraction_below_one(text: str) -> float:
    """A number in [0, 1), e.g. a dropout rate (an argparse ``type``)."""
    return _number(text, float, 0.0, 1.0, maximum_exclusive=True, what="a number in [0, 1)")


#: Backbone sizes a user may set on the command line, with the type of each value.
ARCHITECTURE_OPTIONS = {
    "n_annotations": int, "d_seq": int, "d_global": int, "n_blocks": int, "n_heads": int, "d_key": int,
    "conv_kernel_size": int, "wide_conv_dilation_rate": int, "activation": str, "attention_mask": bool,
}


def parse_architecture(text: str, option: str = "--architecture", allowed=None) -> dict:
    """``--architecture`` JSON -> dict, refusing non-objects, unknown keys and bad values (UsageError)."""
    allowed = ARCHITECTURE_OPTIONS if allowed is None else {k: ARCHITECTURE_OPTIONS[k] for k in allowed}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}. Received: {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object such as '{{\"d_seq\": 32}}'. Received: {text!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise UsageError(f"{option}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    for key, v in value.items():
        kind = allowed[key]
        if kind is int and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise UsageError(f"{option}: {key} must be an integer >= 1. Received: {v!r}")
        if kind is not int and not isinstance(v, kind):
            raise UsageError(f"{option}: {key} must be a {kind.__name__}. Received: {v!r}")
    return value


def default_text(action: argparse.Action) -> str | None:
    """How ``--help`` shows an option's default, or None where there is none worth showing
    (positional arguments, switches, ``None``, empty values).

    >>> p = make_parser("x", "")
    >>> default_text(p.add_argument("--lr", type=float, default=2e-4))
    '0.0002'
    >>> default_text(p.add_argument("--xla", action="store_true")) is None
    True
    """
    value = action.default
    if not action.option_strings or value is None or value is False or value is argparse.SUPPRESS:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or None
    return (f"{value:g}" if isinstance(value, float) else str(value)) or None


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default (see :func:`default_text`) unless its help already speaks of a
    default, and leaves out the option strings marked by :func:`hide_aliases` (old spellings that
    still work)."""

    def _format_action(self, action):
        shown = default_text(action)
        speaks_of_it = "default" in (action.help or "").lower()
        if shown is not None and not speaks_of_it and action.help is not argparse.SUPPRESS:
            action = copy.copy(action)
            note = f"default: {shown}".replace("%", "%%")  # help texts are %-formatted
            if not action.help:
                action.help = note
            elif action.help.endswith(")"):  # "(0: never)" -> "(0: never; default: 1)", not two brackets
                action.help = f"{action.help[:-1]}; {note})"
            else:
                action.help = f"{action.help} ({note})"
        return super()._format_action(action)

    def _format_action_invocation(self, action):
        hidden = getattr(action, "hidden_aliases", ())
        if hidden and action.option_strings:
            action = copy.copy(action)
            action.option_strings = [o for o in action.option_strings if o not in hidden]
        return super()._format_action_invocation(action)


def hide_aliases(action: argparse.Action, *names: str) -> argparse.Action:
    """Keep ``names`` (e.g. an old ``--out``) working for ``action`` but out of ``--help``.

    >>> p = make_parser("x", "")
    >>> _ = hide_aliases(p.add_argument("-o", "--output", "--out"), "--out")
    >>> p.parse_args(["--out", "a"]).output, "--out OUTPUT" in p.format_help()
    ('a', False)
    """
    action.hidden_aliases = tuple(names)
    return action


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose positional inputs may also be given as options (:func:`add_positional`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._positional_options: list[tuple[str, str, str, bool]] = []

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for dest, option_dest, flags, required in self._positional_options:
            given = getattr(namespace, option_dest, None)
            if hasattr(namespace, option_dest):
                delattr(namespace, option_dest)
            if given is not None:
                if getattr(namespace, dest, None) is not None:
                    self.error(f"{dest.upper()} given twice: as an argument and as {flags}")
                setattr(namespace, dest, given)
            if required and getattr(namespace, dest, None) is None:
                self.error(f"the following arguments are required: {dest.upper()} (or {flags})")
        return namespace, extras


def add_positional(parser: argparse.ArgumentParser, dest: str, *flags: str, required: bool = True,
                   help: str | None = None, **kwargs) -> None:
    """A positional argument ``dest`` that can also be given as an option (e.g. ``-i/--input``).

    >>> p = make_parser("x", "")
    >>> add_positional(p, "dataset", "-i", "--input")
    >>> p.parse_args(["a.h5"]).dataset, p.parse_args(["-i", "a.h5"]).dataset
    ('a.h5', 'a.h5')
    """
    option_dest = f"_{dest}_as_option"
    parser.add_argument(dest, nargs="?", metavar=dest.upper(), help=help, **kwargs)
    parser.add_argument(*flags, dest=option_dest, metavar=dest.upper(), help=f"the same as {dest.upper()}",
                        **kwargs)
    parser._positional_options.append((dest, option_dest, "/".join(flags), required))


def make_parser(prog: str, description: str, progress_bars: bool = False) -> argparse.ArgumentParser:
    """The parser of the subcommand ``prog`` (shown as ``proteinbert prog``), with the shared flags.

    ``progress_bars``: the command shows progress bars, which ``-q`` turns off (as does the older
    ``--no-progress``, still accepted but no longer listed; see :func:`show_progress`).
    """
    from .. import __version__

    name = prog.replace("_", "-")
    parser = _Parser(prog=f"proteinbert {name}", description=description, formatter_class=_HelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only print warnings and errors" + ("; no progress bars" if progress_bars else ""))
    if progress_bars:
        # Progress bars only, log lines kept: what scripts written before -q turned bars off expect.
        parser.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug messages, and TensorFlow's own start-up messages (hidden by default)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"proteinbert {__version__}")
    return parser


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command draws progress bars: not with ``-q`` (nor the older ``--no-progress``)."""
    return not (args.quiet or getattr(args, "no_progress", False))


def check_inputs(files=None, dirs=None) -> None:
    """Refuse missing or unreadable inputs before any work (and before TensorFlow starts).

    ``files`` and ``dirs`` map an option (as the user typed it, e.g. ``"--fasta"``) to a path;
    ``None`` paths are skipped. Raises :class:`~proteinbert.errors.InputError` (exit code 1 in the
    CLIs) naming the option and the path.

    >>> check_inputs(dirs={"--data-dir": "."}, files={"--fasta": None})
    >>> check_inputs(files={"--fasta": "no/such.fa"})
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: --fasta no/such.fa does not exist
    """
    for wanted, paths in (("file", files or {}), ("directory", dirs or {})):
        for option, path in paths.items():
            if path is None:
                continue
            path = os.fspath(path)
            is_dir = os.path.isdir(path)
            if not os.path.exists(path):
                problem = "does not exist"
            elif wanted == "file" and is_dir:
                problem = "is a directory, not a file"
            elif wanted == "directory" and not is_dir:
                problem = "is not a directory"
            elif not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
                problem = "is not readable (permission denied)"
            else:
                continue
            raise InputError(f"{option} {path} {problem}")


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


def add_unknown_residues_argument(parser) -> None:
    """``--unknown-residues warn|error``: what to do with characters that are not amino-acid letters."""
    from ..tokenizer import DEFAULT_UNKNOWN_RESIDUES, UNKNOWN_RESIDUE_POLICIES

    parser.add_argument("--unknown-residues", choices=UNKNOWN_RESIDUE_POLICIES, default=DEFAULT_UNKNOWN_RESIDUES,
                        help="characters in a sequence that are not letters (digits, '*', '#' ...): 'warn' reads "
                             "them as <OTHER> and reports their count; 'error' fails (exit 1) naming the file, "
                             "record and characters (default: %(default)s)")


def add_threads_argument(parser) -> None:
    """``--threads INTRA,INTER`` on a parser (or argument group) of a command that runs TensorFlow."""
    parser.add_argument(
        "--threads", type=parse_threads, metavar="INTRA,INTER",
        help="TensorFlow CPU thread pools: threads within one operation, operations at once. Default: one "
             "per core within an operation; operations at once: 1 where TensorFlow's oneDNN operations are "
             "on (side by side they corrupt memory at random), else one per core. With TF_ENABLE_ONEDNN_OPTS=0, "
             "1,2 measured 30%% faster fine-tuning steps on short batches on a 2-core CPU")


def apply_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` and the oneDNN guard; call first in ``run``, before any TensorFlow work."""
    from ..hardware import guard_onednn_concurrency, set_cpu_threads

    if getattr(args, "threads", None) is not None:
        set_cpu_threads(*args.threads)
    guard_onednn_concurrency()


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
    # -v: our own debug messages, not every library's.
    logger.setLevel(logging.DEBUG if getattr(args, "verbose", False) and not args.quiet else logging.NOTSET)
    try:
        with sigterm_as_interrupt():
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
    except Terminated:
        print(f"{parser.prog}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
