"""``proteinbert``: one command with subcommands, and the process set-up they all share.

``proteinbert SUBCOMMAND ...`` runs ``proteinbert.cli.<subcommand>.main``; each subcommand module
is imported only when chosen, so ``proteinbert --help`` starts no TensorFlow. The console script,
``python -m proteinbert``, ``python -m proteinbert.cli.<name>`` and the ``bin/`` launchers all
come here (see :func:`run_as_command`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
import tempfile
from typing import Callable, Sequence

from .. import __version__
from ._common import EXIT_USAGE

#: subcommand -> (module in proteinbert.cli, one-line description)
COMMANDS = {
    "embed": ("embed", "embed the proteins of a FASTA file (per-protein/per-residue vectors: HDF5, npz or .npy)"),
    "finetune": ("finetune", "fine-tune on labelled sequences (CSV or FASTA + labels); write a model directory"),
    "predict": ("predict", "apply a fine-tuned model directory to a CSV or FASTA file"),
    "predict-go": ("predict_go", "predict GO terms for a FASTA file with a pretraining save (TSV)"),
    "create-dataset": ("create_dataset", "build a pretraining dataset (HDF5) from UniRef/UniProt/FASTA and GO"),
    "set-test-set": ("set_test_set", "(re)designate the test set of a pretraining dataset"),
    "pretrain": ("pretrain", "pretrain ProteinBERT on a dataset made by create-dataset"),
    "convert-weights": ("convert_weights", "convert weights between .pkl, .keras and .weights.h5"),
    "export": ("export", "export a fine-tuned model or a backbone to ONNX or a TensorFlow SavedModel"),
    "benchmark-suite": ("benchmark_suite", "fine-tune on every ProteinBERT benchmark present; write a table"),
    "compare-suites": ("compare_suites", "compare two benchmark-suite tables benchmark by benchmark"),
    "run-pipeline": ("run_pipeline", "dataset, pretraining, fine-tuning and a report in one command"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (``--help`` and ``--version``; the subcommands parse their own arguments)."""
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="proteinbert", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="proteinbert [-h] [--version] COMMAND [ARGS ...]",
        description="ProteinBERT: protein language model — embeddings, fine-tuning, prediction, pretraining.",
        epilog=f"commands:\n{listing}\n\n'proteinbert COMMAND --help' describes each one.")
    parser.add_argument("--version", action="version", version=f"proteinbert {__version__}")
    return parser


# -- process set-up ---------------------------------------------------------------------------------

# absl's C++ log lines (TensorFlow's start-up messages): "I0000 00:00:1796119241.847 6239 port.cc:153] ..."
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _drop_info_and_warning_lines(text: str) -> str:
    """``text`` without absl info/warning records (continuation lines included); errors stay."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if match:
            dropping = match.group(1) in "IW"
        elif line.strip() == _ABSL_PREAMBLE:
            dropping = True
        elif dropping and (line.startswith("Traceback") or re.search(r"\w*(Warning|Error):", line)):
            dropping = False  # Python's own output, not the rest of a log record
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _filtered_stderr():
    """Capture file descriptor 2 (C++ writes there directly) and replay it without the noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. a closed or redirected stream): leave it alone
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = _drop_info_and_warning_lines(capture.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def _import_quietly(run_import: Callable[[], None]) -> None:
    with _filtered_stderr():
        run_import()


def _wants_verbose(argv: Sequence[str]) -> bool:
    args = list(argv)
    if "--" in args:
        args = args[:args.index("--")]
    return any(a in ("-v", "--verbose") for a in args)


def prepare_process(argv: Sequence[str] = ()) -> None:
    """What a command sets for its whole process, before TensorFlow is imported.

    * TensorFlow's C++ start-up messages are hidden, unless ``-v``/``--verbose`` is in ``argv``
      (an explicit ``TF_CPP_MIN_LOG_LEVEL`` wins; 0 shows everything): level 3, because on a CPU-only machine TensorFlow logs a
      failed CUDA initialisation as an error; real failures still reach the user as Python
      exceptions. The lines TensorFlow prints while it loads, before that setting takes effect,
      are filtered out of stderr during ``import tensorflow``; any other output there is kept.
    * Python's ``absl`` logger (Keras's notices) shows errors only, unless verbose.
    * :func:`proteinbert.hardware.tune_cpu_allocator`.
    """
    from ..hardware import tune_cpu_allocator

    if not _wants_verbose(argv):
        if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") != "0":
            from .._import_hooks import around_first_import

            around_first_import("tensorflow", _import_quietly)
        import logging

        logging.getLogger("absl").setLevel(logging.ERROR)
    tune_cpu_allocator()


# -- entry points -----------------------------------------------------------------------------------

def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """Set up the process and run subcommand ``name`` (e.g. ``"create-dataset"``) on ``argv``."""
    module_name, _ = COMMANDS[name]
    prepare_process(argv)
    module = importlib.import_module(f".{module_name}", __package__)
    return module.main(list(argv))


def run_as_command(main: Callable[[], int], argv: Sequence[str] | None = None) -> int:
    """``python -m proteinbert.cli.<name>``: the subcommand's ``main``, with the same process set-up."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prepare_process(argv)
    return main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``proteinbert`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-"):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version exit 0, unknown options 2
            return int(exc.code or 0)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    name = argv[0].replace("_", "-")  # the bin/ names (create_dataset) work too
    if name not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"proteinbert: error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)
        return EXIT_USAGE
    return run_subcommand(name, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
