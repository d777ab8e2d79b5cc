"""``run_pipeline``: the main job — dataset, pretraining, fine-tuning and a report, in one command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..io_utils import claim_output
from ._common import UsageError, make_parser, non_negative_int, positive_int, run_cli, seed_int
from ._common import hide_aliases

REPO = Path(__file__).resolve().parents[2]


def build_parser():
    p = make_parser("run_pipeline", "Build the pretraining dataset from the bundled Swiss-Prot proteins + GO, "
                    "pretrain a small ProteinBERT, fine-tune it on membrane-vs-not (GO:0016020) and, when the "
                    "benchmark CSVs are found, on signal peptides; compare with from-scratch baselines and "
                    "write plots and report.md. Finished steps are skipped on re-runs.")
    hide_aliases(p.add_argument("-o", "--output", "--output-dir", dest="output_dir", default="outputs",
                                help="where everything goes (default: outputs)"), "--output-dir")
    p.add_argument("--data-dir", default=str(REPO / "data"),
                   help="folder with sp2014_go.2k.fasta.gz, sp2014_go.2k.go.tsv.gz, go-2019-01-27.obo.gz")
    p.add_argument("--fasta", help="your own FASTA(.gz) (with --go-tsv) instead of the bundled one")
    p.add_argument("--go-tsv", help="TSV(.gz) accession -> GO ids for --fasta")
    p.add_argument("--go-obo", help="Gene Ontology OBO (default: the bundled 2019 release)")
    p.add_argument("--benchmarks-dir", default=os.environ.get("PROTEINBERT_BENCHMARKS"),
                   help="folder with signalP_binary.{train,test}.csv (default: $PROTEINBERT_BENCHMARKS); "
                        "the signal-peptide step is skipped without it")
    p.add_argument("--go-term", default="GO:0016020", help="GO term of the derived task (default: membrane)")
    p.add_argument("--min-records", type=positive_int, default=50, help="keep GO terms with at least N proteins (default 50)")
    p.add_argument("--pretrain-epochs", type=positive_int, default=12, help="pretraining epochs (default 12)")
    p.add_argument("--steps-per-epoch", type=positive_int, default=20, help="batches per pretraining epoch (default 20)")
    p.add_argument("--finetune-epochs", type=positive_int, default=3, help="fine-tuning epochs per stage at most (default 3)")
    p.add_argument("--membrane-train", type=non_negative_int, default=800,
                   help="membrane training+validation proteins at most (default 800; 0 = all)")
    p.add_argument("--holdout", type=non_negative_int, default=400, help="proteins held out of pretraining = membrane test set")
    p.add_argument("--signalp-train", type=positive_int, default=800, help="signal-peptide training records (default 800)")
    p.add_argument("--signalp-test", type=positive_int, default=500, help="signal-peptide test records (default 500)")
    p.add_argument("--xla", action="store_true", help="compile training steps with XLA")
    p.add_argument("--redo", action="append", default=[], metavar="STEP",
                   help="run STEP again even if done (dataset, pretrain, membrane, signalp, report, all); repeatable")
    p.add_argument("--seed", type=seed_int, default=0)
    return p


def run(args) -> int:
    from .._optional import check_available
    from ..pipeline import STEPS, PipelineSettings, run_pipeline

    check_available("matplotlib", "plots", "run-pipeline's report")  # now, not after the training

    bad = [s for s in args.redo if s not in STEPS + ("all",)]
    if bad:
        raise UsageError(f"--redo takes {', '.join(STEPS)} or all. Received: {', '.join(bad)}")
    if bool(args.fasta) != bool(args.go_tsv):
        raise UsageError("--fasta and --go-tsv go together")
    data = Path(args.data_dir)
    benchmarks = Path(args.benchmarks_dir) if args.benchmarks_dir else None
    settings = PipelineSettings(
        output_dir=args.output_dir,
        fasta=args.fasta or data / "sp2014_go.2k.fasta.gz",
        go_tsv=args.go_tsv or data / "sp2014_go.2k.go.tsv.gz",
        go_obo=args.go_obo or data / "go-2019-01-27.obo.gz",
        benchmarks_dir=benchmarks if benchmarks and benchmarks.is_dir() else None,
        go_term=args.go_term, min_records_per_term=args.min_records, seed=args.seed,
        pretrain_epochs=args.pretrain_epochs, steps_per_epoch=args.steps_per_epoch,
        finetune_epochs=args.finetune_epochs, holdout_records=args.holdout,
        membrane_train_records=args.membrane_train or None, signalp_train_records=args.signalp_train, signalp_test_records=args.signalp_test,
        jit_compile=args.xla, redo=tuple(args.redo),
    )
    inputs = {"--fasta": settings.fasta, "--go-tsv": settings.go_tsv, "--go-obo": settings.go_obo}
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
