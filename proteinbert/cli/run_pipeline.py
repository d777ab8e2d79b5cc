"""``run_pipeline``: the main job — dataset, pretraining, fine-tuning and a report, in one command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..io_utils import claim_output
from ..pipeline import STEPS, PipelineSettings
from ._common import (
    UsageError, check_inputs, make_parser, non_negative_int, positive_int, run_cli, seed_int, show_progress,
)
from ._common import hide_aliases
from .benchmark_suite import DATA_ENV as BENCHMARKS_ENV

#: Environment variable naming the folder of the bundled inputs when --data-dir is not given.
DATA_ENV = "PROTEINBERT_DATA"
#: The repository root when the package runs from a source checkout (not once pip-installed).
_CHECKOUT = Path(__file__).resolve().parents[2]
#: The library's defaults (sizes, budgets, the bundled file names), shown by --help.
_DEFAULTS = PipelineSettings()
_BUNDLED = {"--fasta": _DEFAULTS.fasta.name, "--go-tsv": _DEFAULTS.go_tsv.name, "--go-obo": _DEFAULTS.go_obo.name}


def build_parser():
    p = make_parser("run_pipeline", "Build the pretraining dataset from the bundled Swiss-Prot proteins + GO, "
                    "pretrain a small ProteinBERT, fine-tune it on membrane-vs-not (GO:0016020) and, when the "
                    "benchmark CSVs are found, on signal peptides; compare with from-scratch baselines and "
                    "write plots and report.md. Finished steps are skipped on re-runs.")
    hide_aliases(p.add_argument("-o", "--output", "--output-dir", dest="output_dir",
                                default=str(_DEFAULTS.output_dir), help="where everything goes"), "--output-dir")
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"folder with {', '.join(_BUNDLED.values())} (default: ${DATA_ENV}, else data/ of the "
                        "source checkout this package runs from; not needed with --fasta, --go-tsv and --go-obo)")
    p.add_argument("--fasta", help="your own FASTA(.gz) (with --go-tsv) instead of the bundled one")
    p.add_argument("--go-tsv", metavar="TSV", help="TSV(.gz) accession -> GO ids for --fasta")
    p.add_argument("--go-obo", metavar="OBO",
                   help=f"Gene Ontology OBO (default: the bundled 2019 release, {_BUNDLED['--go-obo']})")
    p.add_argument("--benchmarks-dir", metavar="DIR", default=os.environ.get(BENCHMARKS_ENV),
                   help=f"folder with signalP_binary.{{train,test}}.csv (default: ${BENCHMARKS_ENV}); "
                        "the signal-peptide step is skipped without it")
    p.add_argument("--go-term", metavar="GO_ID", default=_DEFAULTS.go_term,
                   help=f"GO term of the derived task (default: {_DEFAULTS.go_term}, membrane)")
    p.add_argument("--min-records", type=positive_int, default=_DEFAULTS.min_records_per_term, metavar="N",
                   help="keep GO terms with at least N proteins")
    p.add_argument("--pretrain-epochs", type=positive_int, default=_DEFAULTS.pretrain_epochs, metavar="N",
                   help="pretraining epochs")
    p.add_argument("--steps-per-epoch", type=positive_int, default=_DEFAULTS.steps_per_epoch, metavar="N",
                   help="batches per pretraining epoch")
    p.add_argument("--finetune-epochs", type=positive_int, default=_DEFAULTS.finetune_epochs, metavar="N",
                   help="fine-tuning epochs per stage at most")
    p.add_argument("--membrane-train", type=non_negative_int, default=_DEFAULTS.membrane_train_records or 0,
                   metavar="N", help="membrane training+validation proteins at most (0 = all)")
    p.add_argument("--holdout", type=non_negative_int, default=_DEFAULTS.holdout_records, metavar="N",
                   help="proteins held out of pretraining = membrane test set")
    p.add_argument("--signalp-train", type=positive_int, default=_DEFAULTS.signalp_train_records, metavar="N",
                   help="signal-peptide training records")
    p.add_argument("--signalp-test", type=positive_int, default=_DEFAULTS.signalp_test_records, metavar="N",
                   help="signal-peptide test records")
    p.add_argument("--xla", action="store_true", help="compile training steps with XLA")
    p.add_argument("--redo", action="append", default=[], metavar="STEP",
                   help=f"run STEP again even if done ({', '.join(STEPS)}, all); repeatable")
    p.add_argument("--seed", type=seed_int, default=_DEFAULTS.seed,
                   help="seed of the dataset, the splits and the models")
    return p


def default_data_dir() -> tuple[Path, str] | None:
    """The folder of the bundled inputs when ``--data-dir`` is not given, and what named it:
    ``$PROTEINBERT_DATA``, else ``data/`` of the source checkout this package runs from (an
    installed package has none), else None.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {DATA_ENV: "/srv/proteinbert-data"}):
    ...     default_data_dir()
    (PosixPath('/srv/proteinbert-data'), '$PROTEINBERT_DATA')
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "data").is_dir():
        return _CHECKOUT / "data", "the checkout's data folder"
    return None


def input_paths(args) -> dict[str, Path]:
    """``--fasta``, ``--go-tsv`` and ``--go-obo``: as given, else the bundled files of the data folder.

    Raises :class:`UsageError` if a bundled file is needed and no data folder is known, and
    :class:`~proteinbert.errors.InputError` if the folder is missing.
    """
    given = {"--fasta": args.fasta, "--go-tsv": args.go_tsv, "--go-obo": args.go_obo}
    needed = [option for option, value in given.items() if not value]
    if not needed:
        return {option: Path(value) for option, value in given.items()}
    if args.data_dir:
        data, source = Path(args.data_dir), "--data-dir"
    else:
        found = default_data_dir()
        if found is None:
            raise UsageError(f"no data folder: pass --data-dir DIR or set {DATA_ENV}=DIR, a folder holding "
                             f"{', '.join(_BUNDLED[o] for o in needed)} (or give {', '.join(needed)} instead)")
        data, source = found
    check_inputs(dirs={source: data})
    return {option: Path(value) if value else data / _BUNDLED[option] for option, value in given.items()}


def run(args) -> int:
    from .._optional import check_available
    from ..pipeline import run_pipeline

    bad = [s for s in args.redo if s not in STEPS + ("all",)]
    if bad:
        raise UsageError(f"--redo takes {', '.join(STEPS)} or all. Received: {', '.join(bad)}")
    if bool(args.fasta) != bool(args.go_tsv):
        raise UsageError("--fasta and --go-tsv go together")
    inputs = input_paths(args)
    check_inputs(files=inputs)  # before TensorFlow starts
    check_available("matplotlib", "plots", "run-pipeline's report")  # now, not after the training
    benchmarks = Path(args.benchmarks_dir) if args.benchmarks_dir else None
    settings = PipelineSettings(
        output_dir=args.output_dir, fasta=inputs["--fasta"], go_tsv=inputs["--go-tsv"], go_obo=inputs["--go-obo"],
        benchmarks_dir=benchmarks if benchmarks and benchmarks.is_dir() else None,
        go_term=args.go_term, min_records_per_term=args.min_records, seed=args.seed,
        pretrain_epochs=args.pretrain_epochs, steps_per_epoch=args.steps_per_epoch,
        finetune_epochs=args.finetune_epochs, holdout_records=args.holdout,
        membrane_train_records=args.membrane_train or None, signalp_train_records=args.signalp_train,
        signalp_test_records=args.signalp_test, jit_compile=args.xla, redo=tuple(args.redo),
        progress=show_progress(args),
    )
    with claim_output(args.output_dir, inputs, "--output-dir", kind="into-dir"):
        summary = run_pipeline(settings)
    print(json.dumps(summary, indent=1))
    print(f"\nReport: {summary['report']}")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
