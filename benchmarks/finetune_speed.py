"""Fine-tuning speed: variable-length batches vs padding everything to 512 (the 2021 way).

Signal peptide (40–70 residues; ``signalP_binary.{train,test}.csv`` of the ProteinBERT benchmarks, in
``--data-dir``, default ``$PROTEINBERT_BENCHMARKS``), a seeded subsample, the
2021 schedule shape (frozen → unfrozen → one final epoch at length 1024) with a capped number of
epochs. Same model, same seed, same data; the modes differ in padding (and the frozen-stage cache):

* ``bucket``: every batch padded to its own length bucket (here 48, 64 or
  80 tokens), evaluated the same way, with virtual padding to 512 (the attention counts the
  2021 model's ``<PAD>`` positions without computing them); the frozen stage trains the head on
  representations computed once (``cache_frozen_features``, same numbers).
* ``bucket-plain``: as ``bucket`` without virtual padding (``virtual_pad_length=None``).
* ``bucket-nocache``: as ``bucket`` without the cache.
* ``fixed`` (the library default): every batch padded to the stage length (512; 1024 in the final stage), no cache, no
  virtual padding, evaluated with each record padded to 512 — what the 2021 code did.

``--random-released-size`` times the released architecture (random weights: speed only). The
small fixture model is so small that a step's fixed costs (op dispatch, optimizer updates)
dominate it, which caps what shorter batches can gain.

Prints each stage's wall time and epochs, and the test AUC of both. Timings on a shared CPU are
noisy; the per-epoch ratio is the figure to read.

    python benchmarks/finetune_speed.py --weights small_lamb.pkl --n-train 2000 --n-test 1000 --epochs 3
    python benchmarks/finetune_speed.py --quick    # seconds: a tiny random model, 64 records, 1 epoch a stage

``--weights`` defaults to ``$PROTEINBERT_WEIGHTS``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import _harness  # noqa: E402

MODES = ("bucket", "bucket-plain", "bucket-nocache", "fixed")
QUICK = dict(n_train=64, n_valid=32, n_test=32, epochs=1)  # and a tiny random model, stages at 128 / 256


class EpochTimer(keras.callbacks.Callback):
    """Each epoch's wall time (the first epoch after a compile includes tracing)."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main(argv=None) -> int:
    from proteinbert.cli._common import parse_threads
    from proteinbert.model import RELEASED_CONFIG, ProteinBertBackbone
    from proteinbert.training.evaluation import evaluate_by_len
    from proteinbert.training.finetuning import FinetuneConfig, OutputSpec, default_stages, finetune_from_backbone
    from proteinbert.training.jobs import load_backbone

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-valid", type=int, default=400)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3, help="max epochs per stage (early stopping may stop sooner)")
    p.add_argument("--data-dir", default=os.environ.get("PROTEINBERT_BENCHMARKS"),
                   help="folder holding signalP_binary.{train,test}.csv (default: $PROTEINBERT_BENCHMARKS)")
    p.add_argument("--weights", default=os.environ.get("PROTEINBERT_WEIGHTS"),
                   help="released-format weights (default: $PROTEINBERT_WEIGHTS)")
    p.add_argument("--random-released-size", action="store_true",
                   help="instead of --weights: the released architecture (16M parameters, 8,943 annotations) with "
                        "random weights, seeded; for speed only (its AUC means nothing)")
    p.add_argument("--modes", default="bucket,fixed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=parse_threads, metavar="INTRA,INTER",
                   help="TensorFlow CPU thread pools (proteinbert.hardware.set_cpu_threads), e.g. 1,2; "
                        "default: the commands' (one operation at a time where oneDNN is on)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="seconds: a tiny random model (no --weights), 64/32/32 records, 1 epoch a stage, "
                        "stages at length 128 (final 256)")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if not args.data_dir:
        p.error("give --data-dir (or set PROTEINBERT_BENCHMARKS): the folder of signalP_binary.{train,test}.csv")
    data = Path(args.data_dir)
    missing = [n for n in ("signalP_binary.train.csv", "signalP_binary.test.csv") if not (data / n).is_file()]
    if missing:
        p.error(f"--data-dir {data}: no {' or '.join(missing)} there")
    if not (args.quick or args.random_released_size):
        if not args.weights:
            p.error("give --weights (or set PROTEINBERT_WEIGHTS), --random-released-size or --quick")
        if not Path(args.weights).is_file():
            p.error(f"--weights {args.weights}: no such file")
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"unknown --modes {unknown}; choose from {', '.join(MODES)}")
    from proteinbert.hardware import guard_onednn_concurrency, set_cpu_threads

    if args.threads:
        set_cpu_threads(*args.threads)
    guard_onednn_concurrency()  # as the commands do, before the first TensorFlow operation

    train_all = pd.read_csv(data / "signalP_binary.train.csv", dtype=str)
    test_all = pd.read_csv(data / "signalP_binary.test.csv", dtype=str)
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(train_all))
    train = train_all.iloc[idx[:args.n_train]]
    valid = train_all.iloc[idx[args.n_train:args.n_train + args.n_valid]]
    test = test_all.iloc[np.sort(rng.choice(len(test_all), args.n_test, replace=False))]
    stages = (default_stages(seq_len=128, final_seq_len=256, max_epochs=args.epochs) if args.quick
              else default_stages(max_epochs=args.epochs))
    weights_name = ("tiny random" if args.quick else "released size, random" if args.random_released_size
                    else Path(args.weights).name)
    _harness.print_header(weights=weights_name, threads=args.threads or "default")
    print(f"signal peptide: {len(train)} train / {len(valid)} valid / {len(test)} test records, "
          f"lengths {train.seq.str.len().min()}-{train.seq.str.len().max()}; weights {weights_name}; "
          f"stages {[(s.name, s.learning_rate, s.max_epochs, s.seq_len, s.batch_size) for s in stages]}; "
          f"CPU cores {os.cpu_count()} (shared), TensorFlow threads {args.threads or 'default'}", flush=True)
    results = {}
    for mode in modes:
        if args.quick or args.random_released_size:
            keras.utils.set_random_seed(args.seed)  # the same initial weights in every mode
            backbone = ProteinBertBackbone(**(_harness.QUICK_ARCHITECTURE if args.quick else RELEASED_CONFIG))
        else:
            backbone = load_backbone(args.weights)
        config = FinetuneConfig(stages=stages, padding="fixed" if mode == "fixed" else "bucket",
                                cache_frozen_features=mode in ("bucket", "bucket-plain"), seed=args.seed)
        timer = EpochTimer()
        start = time.perf_counter()
        model = finetune_from_backbone(backbone, OutputSpec("global", "binary"), list(train.seq), list(train.label),
                                       list(valid.seq), list(valid.label), config=config, callbacks=[timer],
                                       virtual_pad_length=None if mode in ("fixed", "bucket-plain") else 512)
        total = time.perf_counter() - start
        t0 = time.perf_counter()
        ev = evaluate_by_len(model, list(test.seq), list(test.label),
                             padding="model_len" if mode == "fixed" else "bucket")
        eval_s = time.perf_counter() - t0
        stage_rows = model.metadata["stages"]
        stages_out, at = [], 0
        for s in stage_rows:
            epoch_times = timer.times[at:at + s["epochs"]]
            at += s["epochs"]
            # Epochs after the first of a compile exclude tracing; the first of the final stage has none
            # when the previous stage had the same trainable layers (no recompile).
            stages_out.append(dict(name=s["name"], epochs=s["epochs"], wall_s=s["wall_s"],
                                   s_per_epoch=s["wall_s"] / max(1, s["epochs"]), epoch_s=epoch_times,
                                   history=s["history"]))
        results[mode] = dict(total_s=total, eval_s=eval_s, auc=ev.overall, stages=stages_out)
        print(f"\n[{mode}] total fine-tuning {total:.1f} s, test AUC {ev.overall:.4f}, evaluation {eval_s:.1f} s")
        for s in results[mode]["stages"]:
            print(f"  {s['name']:<9} {s['epochs']} epoch(s) {s['wall_s']:8.1f} s  "
                  f"(epochs: {', '.join(f'{t:.1f}' for t in s['epoch_s'])} s); validation "
                  + "; ".join(f"{k} {', '.join(f'{v:.4f}' for v in vs)}" for k, vs in s["history"].items()
                              if k.startswith("val_")))
        sys.stdout.flush()
    if "bucket" in results and "fixed" in results:
        b, f = results["bucket"], results["fixed"]
        print("\nspeed-up (fixed / bucket):")
        for sb, sf in zip(b["stages"], f["stages"]):
            steady_b = sb["epoch_s"][1:] or sb["epoch_s"]
            steady_f = sf["epoch_s"][1:] or sf["epoch_s"]
            print(f"  {sb['name']:<9} stage {sf['wall_s'] / sb['wall_s']:.1f}x; per epoch after tracing "
                  f"{np.mean(steady_f) / np.mean(steady_b):.1f}x")
        print(f"  total {f['total_s'] / b['total_s']:.1f}x; evaluation {f['eval_s'] / b['eval_s']:.1f}x; "
              f"AUC bucket {b['auc']:.4f} vs fixed {f['auc']:.4f}")
    if args.json:
        _harness.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
