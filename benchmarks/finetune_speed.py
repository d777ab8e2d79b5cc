"""Fine-tuning speed: variable-length batches vs padding everything to 512 (the 2021 way).

Signal peptide (40–70 residues) from ../shared/data/protein_benchmarks, a seeded subsample, the
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

    python benchmarks/finetune_speed.py --n-train 2000 --n-test 1000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROTEINBERT_SHARED", REPO.parent / "shared"))


class EpochTimer(keras.callbacks.Callback):
    """Each epoch's wall time (the first epoch after a compile includes tracing)."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main(argv=None):
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
    p.add_argument("--weights", default=str(SHARED / "fixtures" / "small_lamb.pkl"),
                   help="released-format weights (default: the small fixture model; the released file is not here)")
    p.add_argument("--random-released-size", action="store_true",
                   help="instead of --weights: the released architecture (16M parameters, 8,943 annotations) with "
                        "random weights, seeded; for speed only (its AUC means nothing)")
    p.add_argument("--modes", default="bucket,fixed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=parse_threads, metavar="INTRA,INTER",
                   help="TensorFlow CPU thread pools (proteinbert.hardware.set_cpu_threads), e.g. 1,2; "
                        "default: TensorFlow's, one per core")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        from proteinbert.hardware import set_cpu_threads

        set_cpu_threads(*args.threads)

    data = SHARED / "data" / "protein_benchmarks"
    train_all = pd.read_csv(data / "signalP_binary.train.csv", dtype=str)
    test_all = pd.read_csv(data / "signalP_binary.test.csv", dtype=str)
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(train_all))
    train = train_all.iloc[idx[:args.n_train]]
    valid = train_all.iloc[idx[args.n_train:args.n_train + args.n_valid]]
    test = test_all.iloc[np.sort(rng.choice(len(test_all), args.n_test, replace=False))]
    stages = default_stages(max_epochs=args.epochs)
    weights_name = "released size, random" if args.random_released_size else Path(args.weights).name
    print(f"signal peptide: {len(train)} train / {len(valid)} valid / {len(test)} test records, "
          f"lengths {train.seq.str.len().min()}-{train.seq.str.len().max()}; weights {weights_name}; "
          f"stages {[(s.name, s.learning_rate, s.max_epochs, s.seq_len, s.batch_size) for s in stages]}; "
          f"CPU cores {os.cpu_count()} (shared), TensorFlow threads {args.threads or 'default'}", flush=True)
    results = {}
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - {"bucket", "bucket-plain", "bucket-nocache", "fixed"})
    if unknown:
        p.error(f"unknown --modes {unknown}; choose from bucket, bucket-plain, bucket-nocache, fixed")
    for mode in modes:
        if args.random_released_size:
            keras.utils.set_random_seed(args.seed)  # the same initial weights in every mode
            backbone = ProteinBertBackbone(**RELEASED_CONFIG)
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
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
