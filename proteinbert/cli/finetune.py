"""``finetune``: fine-tune ProteinBERT on labelled sequences; write a model directory and test metrics.

Example::

    proteinbert finetune --train signalP_binary.train.csv --test signalP_binary.test.csv \\
        --level global --task binary --weights epoch_92400_sample_23500000.pkl -o signalp_model
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..data.batching import PADDINGS
from ..errors import InputError
from ..io_utils import claim_output
from ._common import add_unknown_residues_argument
from ._common import (
    UsageError, add_threads_argument, apply_threads, check_inputs, fraction_below_one, make_parser, non_negative_int,
    parse_architecture, positive_float, positive_int, run_cli, seed_int,
)
from ._common import hide_aliases


def build_parser():
    p = make_parser("finetune", "Fine-tune ProteinBERT (staged schedule) and evaluate on a test split.")
    _add_inputs_and_outputs(p)
    _add_epoch_logs(p)
    _add_model(p)
    _add_schedule(p)
    return p


def _add_inputs_and_outputs(p) -> None:
    """Splits, columns, the model directory, the checkpoint folder."""
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("-i", "--input", "--train", dest="train", required=True,
                    help="training CSV (columns seq,label) or FASTA (with --train-labels); required")
    io.add_argument("--valid", help="validation CSV/FASTA for early stopping and the learning-rate schedule "
                                    "(default: none; they then follow the training loss)")
    io.add_argument("--test", help="test CSV/FASTA: metrics by length are written to the model directory "
                                   "(default: none)")
    for split in ("train", "valid", "test"):
        io.add_argument(f"--{split}-labels",
                        help=f"CSV with columns id,label for a FASTA --{split} (default: none; a CSV has its labels)")
    io.add_argument("--seq-col", default="seq", help="CSV column with the sequences (default: %(default)s)")
    io.add_argument("--label-col", default="label", help="CSV column with the labels (default: %(default)s)")
    io.add_argument("--id-col",
                    help="CSV column with record ids (default: the row number from 0; FASTA: the record id)")
    hide_aliases(io.add_argument("-o", "--output", "--out", dest="out", required=True,
                                 help="model directory to create; required"), "--out")
    io.add_argument("--overwrite", action="store_true",
                    help="replace an existing model directory, --csv-log and --tensorboard event files")
    io.add_argument("--max-records", type=positive_int,
                    help="use only the first N records of each split (quick runs; default: all)")
    io.add_argument("--checkpoint-dir", metavar="DIR",
                    help="save the run into DIR after every epoch, and continue the run saved there if it was "
                         "stopped (same options, data and starting weights); deleted once the model is written "
                         "(default: off)")
    add_unknown_residues_argument(io)


def _add_epoch_logs(p) -> None:
    """TensorBoard and CSV epoch logs."""
    logs = p.add_argument_group("epoch logs (every epoch of every stage, numbered across stages; one log line "
                                "per epoch unless -q)")
    logs.add_argument("--tensorboard", metavar="DIR",
                      help="write TensorBoard event files into DIR: loss, validation metrics, lr, seconds and the "
                           "stage at each epoch, one run for all stages (default: off)")
    logs.add_argument("--csv-log", metavar="FILE",
                      help="write one CSV row per epoch: stage, epoch, stage_epoch, loss, metrics, validation "
                           "loss and metrics, lr, seconds (default: off)")


def _add_model(p) -> None:
    """Output type, starting weights, head."""
    m = p.add_argument_group("model")
    m.add_argument("--level", choices=("global", "local"), default="global",
                   help="per protein or per residue (default: %(default)s)")
    m.add_argument("--task", choices=("binary", "categorical", "numeric", "multilabel"), default="binary",
                   help="the label type; multilabel: ';'-separated labels, global level only (default: %(default)s)")
    start = m.add_mutually_exclusive_group()
    start.add_argument("--weights", help="released-format .pkl (2021 weights or a pretraining save: the .pkl "
                                         "or its directory) or a saved .keras backbone (default: "
                                         "$PROTEINBERT_WEIGHTS, else ~/proteinbert_models/epoch_92400_sample_23500000.pkl)")
    start.add_argument("--from-scratch", action="store_true",
                       help="no pretraining: random initialisation (default: start from --weights)")
    m.add_argument("--architecture", default="{}",
                   help='with --from-scratch: JSON of backbone sizes, e.g. \'{"d_seq": 32, "n_blocks": 2}\' '
                        '(default: {}: the released model\'s sizes)')
    m.add_argument("--hidden-layers", choices=("all", "last"), default="all",
                   help="head input: the 2021 concatenation of all layers, or the last block only "
                        "(default: %(default)s)")
    m.add_argument("--dropout", type=fraction_below_one, default=0.5,
                   help="dropout rate in [0, 1) (default: %(default)s)")
    m.add_argument("--virtual-pad-length", type=non_negative_int, metavar="N",
                   help="global attention as if every batch were padded to N tokens, as the 2021 code padded to "
                        "its seq-len, at the cost of the batch's own length; for --padding bucket "
                        "(default: --seq-len with --padding bucket, else off; 0: off)")


def _add_schedule(p) -> None:
    """Stages, padding, seed, threads."""
    s = p.add_argument_group("schedule (default: the 2021 one)")
    s.add_argument("--stage", action="append", metavar="NAME:LR:EPOCHS:frozen|unfrozen[:SEQ_LEN[:BATCH]]",
                   help="replace the default stages (repeat for several; SEQ_LEN defaults to 512, BATCH to 32); "
                        "the options below then do not apply (default: frozen, unfrozen, final as set below)")
    s.add_argument("--seq-len", type=positive_int, default=512,
                   help="model length of the frozen and unfrozen stages (default: %(default)s)")
    s.add_argument("--batch-size", type=positive_int, default=32,
                   help="batch size up to --seq-len; longer batches are scaled down by the length ratio "
                        "(default: %(default)s)")
    s.add_argument("--max-epochs", type=positive_int, default=40,
                   help="epochs per stage at most; early stopping on the validation loss, else the training loss "
                        "(default: %(default)s)")
    s.add_argument("--lr", type=positive_float, default=1e-4,
                   help="learning rate of the unfrozen stage (default: %(default)g)")
    s.add_argument("--frozen-lr", type=positive_float, default=1e-2,
                   help="learning rate of the frozen stage, pretrained layers fixed (default: %(default)g)")
    s.add_argument("--no-frozen-stage", action="store_true",
                   help="leave out the frozen stage (default: frozen stage first)")
    s.add_argument("--final-epochs", type=non_negative_int, default=1,
                   help="epochs of the final stage at --final-seq-len; 0 leaves it out (default: %(default)s)")
    s.add_argument("--final-seq-len", type=positive_int, default=1024,
                   help="model length of the final stage (default: %(default)s)")
    s.add_argument("--final-lr", type=positive_float, default=1e-5,
                   help="learning rate of the final stage (default: %(default)g)")
    s.add_argument("--padding", choices=PADDINGS, default="fixed",
                   help="fixed (default): every batch padded to the stage's seq-len, as in 2021; bucket: each "
                        "batch to its length bucket, faster on short proteins but less accurate "
                        "(docs/results/finetune_accuracy.md)")
    s.add_argument("--crop-len", type=positive_int,
                   help="crop longer sequences to this many residues (default: off)")
    s.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the initial weights (the head's, and the backbone's with --from-scratch), "
                        "dropout and batch order (default: %(default)s)")
    s.add_argument("--run-eagerly", action="store_true",
                   help="no graph compilation (debugging; faster only for a few tiny batches; default: off)")
    add_threads_argument(s)


def _job(args):
    from ..training.finetuning import FinetuneConfig, check_epoch_logs, default_stages, parse_stage
    from ..training.jobs import FinetuneJob

    architecture = parse_architecture(args.architecture)
    if architecture and not args.from_scratch:
        raise UsageError("--architecture only applies with --from-scratch (weights imply their architecture)")
    # Virtual padding stands in for the pads that buckets leave out; fixed padding has them all.
    virtual = (args.seq_len if args.padding == "bucket" else 0) if args.virtual_pad_length is None \
        else args.virtual_pad_length
    try:
        if args.stage:
            stages = tuple(parse_stage(s) for s in args.stage)
        else:
            stages = default_stages(args.seq_len, args.batch_size, args.max_epochs, args.lr, not args.no_frozen_stage,
                                    args.frozen_lr, args.final_epochs, args.final_seq_len, args.final_lr)
        config = FinetuneConfig(stages=stages, padding=args.padding, crop_len=args.crop_len, seed=args.seed,
                                run_eagerly=args.run_eagerly, tensorboard_dir=args.tensorboard,
                                csv_log=args.csv_log, replace_logs=args.overwrite,
                                checkpoint_dir=args.checkpoint_dir)
        if not _continues(args.checkpoint_dir):  # a continued run continues its own logs
            check_epoch_logs(config)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    return FinetuneJob(
        train=args.train, out_dir=args.out, level=args.level, task=args.task, valid=args.valid, test=args.test,
        train_labels=args.train_labels, valid_labels=args.valid_labels, test_labels=args.test_labels,
        seq_col=args.seq_col, label_col=args.label_col, id_col=args.id_col, weights=args.weights,
        architecture=architecture, hidden_layers=args.hidden_layers, dropout_rate=args.dropout, config=config,
        virtual_pad_length=virtual or None,
        max_records=args.max_records, overwrite=args.overwrite, unknown_residues=args.unknown_residues,
    )


def _continues(checkpoint_dir) -> bool:
    from ..training.finetune_checkpoint import STATE_FILE

    return checkpoint_dir is not None and (Path(checkpoint_dir) / STATE_FILE).is_file()


def run(args):
    if not args.from_scratch:
        from ..weights.locate import resolve_weights

        args.weights = str(resolve_weights(args.weights))  # a missing file is reported before any work
    job = _job(args)  # every usage error before any work
    # then missing inputs, before TensorFlow starts
    check_inputs(files={f"--{name.replace('_', '-')}": getattr(args, name)
                        for name in ("train", "valid", "test", "train_labels", "valid_labels", "test_labels")})
    inputs = {f"--{name.replace('_', '-')}": getattr(args, name)
              for name in ("train", "valid", "test", "train_labels", "valid_labels", "test_labels", "weights")}
    logs = [(option, path, kind) for option, path, kind in (("--csv-log", args.csv_log, "file"),
                                                             ("--tensorboard", args.tensorboard, "into-dir"),
                                                             ("--checkpoint-dir", args.checkpoint_dir, "dir"))
            if path is not None]
    for option, path, _ in logs:
        # The model directory is written in one go at the end: nothing may be written into it before.
        if Path(path).resolve().is_relative_to(Path(args.out).resolve()):
            raise UsageError(f"{option} {path} lies inside --out {args.out}, which is replaced at the end; "
                             "put it elsewhere")
    with contextlib.ExitStack() as claims:
        claims.enter_context(claim_output(args.out, inputs, "--out", overwrite=args.overwrite, kind="dir"))
        for option, path, kind in logs:
            claims.enter_context(claim_output(path, inputs, option, kind=kind))
        apply_threads(args)
        from ..training.jobs import run_finetune_job

        result = run_finetune_job(job)
    if result.evaluation is not None:
        print(result.evaluation.results.to_string(index=False))
    print(f"model written to {result.out_dir}")


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
