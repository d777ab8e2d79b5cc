"""``pretrain``: joint masked-token + GO pretraining on an HDF5 dataset (resumable, multi-device)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from ..data.pretraining_batches import PretrainingDataSettings
from ..io_utils import check_output_path, claim_output
from ..presets import PRESETS
from ._common import add_positional, hide_aliases
from ._common import (
    EXIT_INTERRUPTED, UsageError, add_threads_argument, apply_threads, check_inputs, make_parser, non_negative_int,
    positive_float, positive_int, run_cli, seed_int, show_progress,
)

#: The data pipeline's defaults, shown by --help (the training defaults live in training.pretraining,
#: which imports TensorFlow: --help does not).
_DATA_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PretrainingDataSettings)}


def _episodes(text: str):
    try:
        episodes = tuple(tuple(int(x) for x in part.split(":")) for part in text.split(","))
    except ValueError:
        episodes = ()
    if not episodes or any(len(e) != 2 or min(e) < 1 for e in episodes):
        raise UsageError(f"--episodes must look like 128:128,512:64,1024:32 (seq_len:batch_size). Received: {text!r}")
    return episodes


def build_parser():
    p = make_parser("pretrain", "Pretrain ProteinBERT (masked tokens + GO annotations) on an HDF5 dataset "
                                "made by create_dataset (or a 2021 one).", progress_bars=True)
    add_positional(p, "dataset", "-i", "--input", help="pretraining HDF5 file")
    hide_aliases(p.add_argument("-o", "--output", "--output-dir", dest="output_dir", required=True,
                                help="directory for saves, history.tsv and TensorBoard logs"), "--output-dir")
    p.add_argument("--resume", action="store_true", help="continue exactly from the newest save in --output")
    p.add_argument("--init-weights", metavar="PKL",
                   help="start from a released-format .pkl (weights; LAMB state too if it fits)")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=positive_int, metavar="N",
                   help="stop after this many epochs in total (default: run until stopped)")
    g.add_argument("--time-budget", type=positive_float, metavar="MINUTES",
                   help="stop at the first epoch end after this many minutes (default: no limit)")
    g.add_argument("--steps-per-epoch", type=positive_int, default=100, metavar="N", help="batches per epoch")
    g.add_argument("--save-every", type=positive_int, default=10, metavar="N", help="save every N epochs")
    g.add_argument("--keep-every", type=non_negative_int, default=25, metavar="M",
                   help="keep every Mth save and the newest, delete the others (0 keeps only the newest)")
    g.add_argument("--lr", type=positive_float, default=2e-4, help="LAMB learning rate")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the model initialisation and of the data")
    d = p.add_argument_group("data")
    d.add_argument("--episodes", type=_episodes_arg, default=None, metavar="LEN:BATCH,...",
                   help="length episodes seq_len:batch_size,... (default: "
                        + ",".join(f"{n}:{b}" for n, b in _DATA_DEFAULTS["episodes"]) + ")")
    d.add_argument("--steps-per-episode", type=positive_int, default=_DATA_DEFAULTS["steps_per_episode"], metavar="N",
                   help="steps before switching episode")
    d.add_argument("--chunk-size", type=positive_int, default=_DATA_DEFAULTS["chunk_size"], metavar="N",
                   help="records read from the file at a time")
    d.add_argument("--holdout", type=non_negative_int, default=_DATA_DEFAULTS["holdout_records"], metavar="N",
                   help="keep the last N records of the file out of training and evaluate on them")
    d.add_argument("--eval-every", type=non_negative_int, default=1, metavar="N",
                   help="evaluate on the held-out records every N epochs (0: never)")
    d.add_argument("--eval-records", type=positive_int, default=512, metavar="N",
                   help="held-out records evaluated at most")
    d.add_argument("--eval-seq-len", type=positive_int, metavar="N",
                   help="model length of the evaluation (default: the first episode's)")
    a = p.add_argument_group("architecture (default: the released model's, shown below)")
    for name, what in (("d-seq", "channels per residue (local track)"),
                       ("d-global", "channels of the protein-level (global) track"),
                       ("n-blocks", "transformer-like blocks"), ("n-heads", "global attention heads"),
                       ("d-key", "key size of each attention head")):
        default = PRESETS["released"][name.replace("-", "_")]
        a.add_argument(f"--{name}", type=positive_int, default=None, metavar="N", help=f"{what} (default: {default})")
    r = p.add_argument_group("hardware")
    r.add_argument("--mixed-precision", action="store_true", help="compute in bfloat16 (mixed_bfloat16 policy)")
    r.add_argument("--xla", action="store_true", help="compile the training step with XLA")
    r.add_argument("--strategy", choices=("auto", "default", "mirrored", "multi-worker"), default="auto",
                   help="tf.distribute strategy; auto: multi-worker if TF_CONFIG lists several workers, "
                        "mirrored if there are several GPUs, else one device")
    r.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    add_threads_argument(r)
    return p


def _episodes_arg(text: str):
    import argparse

    try:
        return _episodes(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args) -> int:
    if args.resume and args.init_weights:
        raise UsageError("--resume and --init-weights exclude each other (a resumed run has its own weights)")
    inputs = {"DATASET": args.dataset, "--init-weights": args.init_weights}
    check_inputs(files=inputs)  # before TensorFlow starts
    if args.strategy == "multi-worker" or os.environ.get("TF_CONFIG"):
        # The workers of one multi-worker run share --output-dir: its chief takes the lock once the
        # strategy says who the chief is (Pretrainer); the other workers never write there.
        check_output_path(args.output_dir, inputs, "--output-dir", kind="into-dir")
        return _pretrain(args)
    # One run per output directory: a second one would silently replace this one's saves.
    with claim_output(args.output_dir, inputs, "--output-dir", kind="into-dir"):
        return _pretrain(args)


def _pretrain(args) -> int:
    from ..training.pretraining import PretrainingSettings, make_strategy, pretrain
    from ..data.pretraining_batches import DEFAULT_EPISODES

    apply_threads(args)
    strategy = make_strategy(args.strategy)  # before any other TensorFlow work
    if args.mixed_precision:
        from ..hardware import warn_if_bfloat16_is_slow

        warn_if_bfloat16_is_slow()
    data = PretrainingDataSettings(
        episodes=args.episodes or DEFAULT_EPISODES, steps_per_episode=args.steps_per_episode,
        chunk_size=args.chunk_size, holdout_records=args.holdout, seed=args.seed,
    )
    settings = PretrainingSettings(
        output_dir=args.output_dir, data=data, learning_rate=args.lr, steps_per_epoch=args.steps_per_epoch,
        max_epochs=args.epochs, time_budget_s=None if args.time_budget is None else args.time_budget * 60,
        save_every_epochs=args.save_every, keep_every_saves=args.keep_every,
        dtype="mixed_bfloat16" if args.mixed_precision else None, jit_compile=args.xla,
        eval_every_epochs=args.eval_every, eval_max_records=args.eval_records, eval_seq_len=args.eval_seq_len,
        tensorboard=not args.no_tensorboard, progress=show_progress(args), seed=args.seed,
    )
    architecture = {k: v for k, v in dict(d_seq=args.d_seq, d_global=args.d_global, n_blocks=args.n_blocks,
                                          n_heads=args.n_heads, d_key=args.d_key).items() if v is not None}
    result = pretrain(args.dataset, settings, architecture=architecture, init_weights=args.init_weights,
                      resume=args.resume, strategy=strategy)
    summary = {"stopped": result.stopped, "step": result.step, "epoch": result.epoch, "samples": result.samples,
               "last_save": str(result.last_save.path) if result.last_save else None}
    if result.history:
        summary["last_epoch"] = result.history[-1]
    print(json.dumps(summary, indent=1))
    return EXIT_INTERRUPTED if result.stopped == "interrupted" else 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
