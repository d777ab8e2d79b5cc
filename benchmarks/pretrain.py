"""Pretraining throughput: the data pipeline alone vs training, per length episode.

For each episode ``(seq_len, batch)`` it prints

* pipeline: batches/s, samples/s and tokens/s of ``PretrainingBatches`` alone (read, crop, corrupt)
  and through the prefetching ``tf.data`` pipeline;
* training: step time, samples/s and tokens/s (padded positions) with batches coming from the
  pipeline, and the same steps on batches cached in memory beforehand. Equal times mean training
  never waits on data.

Example (CPU, small model; ``proteinbert create-dataset`` makes the HDF5, e.g. from ``data/``)::

    python benchmarks/pretrain.py --dataset sp2k.h5 --d-seq 64 --d-global 256 --n-blocks 4 --d-key 32 \\
        --episodes 128:32,256:16,512:8 --steps 20
    python benchmarks/pretrain.py --quick    # seconds: a dataset from data/, a tiny model, 2 steps

On a GPU add ``--mixed-precision --xla`` and the default architecture/episodes. The timings go
through two private methods of ``Pretrainer`` (its ``tf.data`` iterator and its compiled step),
the only way to time the step without the rest of a run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402

QUICK = dict(episodes="64:4", steps=2, **{k: v for k, v in _harness.QUICK_ARCHITECTURE.items() if k != "n_annotations"})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="pretraining HDF5 (required unless --quick)")
    p.add_argument("--episodes", default="128:128,512:64,1024:32")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement (after 3 warm-up steps)")
    for name, default in (("d-seq", 128), ("d-global", 512), ("n-blocks", 6), ("n-heads", 4), ("d-key", 64)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--xla", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="seconds: without --dataset, one made from data/ in a temporary folder; a tiny model, "
                        "episode 64:4, 2 steps")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    elif args.dataset is None:
        p.error("--dataset is required (or --quick)")
    if args.dataset is not None and not Path(args.dataset).is_file():
        p.error(f"--dataset {args.dataset}: no such file")
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as workdir:
        dataset = args.dataset or str(_harness.build_pretraining_dataset(workdir))
        measure(args, dataset)
    return 0


def measure(args, dataset: str) -> list:
    """Print one line per episode (and return the figures)."""
    import tensorflow as tf

    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.data.pretraining_batches import PretrainingBatches, PretrainingDataSettings
    from proteinbert.training.pretraining_input import close_iterator
    from proteinbert.training.pretraining import Pretrainer, PretrainingSettings

    episodes = [tuple(int(x) for x in e.split(":")) for e in args.episodes.split(",")]
    arch = dict(d_seq=args.d_seq, d_global=args.d_global, n_blocks=args.n_blocks, n_heads=args.n_heads,
                d_key=args.d_key)
    from proteinbert.hardware import guard_onednn_concurrency

    guard_onednn_concurrency()  # as the commands do, before the first TensorFlow operation
    _harness.print_header(architecture=arch, mixed_precision=args.mixed_precision, xla=args.xla)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    print(f"device: {devices[0].name} ({'GPU' if 'GPU' in devices[0].name else 'CPU'}), "
          f"{os.cpu_count()} CPUs visible; architecture {arch}; mixed precision {args.mixed_precision}; "
          f"XLA {args.xla}")
    n = args.steps
    rows = []
    for L, B in episodes:
        data = PretrainingDataSettings(episodes=((L, B),), chunk_size=4096, seed=1)
        # pipeline alone
        with PretrainingDataset(dataset) as ds:
            stream = PretrainingBatches(ds, data)
            stream.next_batch()
            t = time.perf_counter()
            for _ in range(n):
                stream.next_batch()
            numpy_s = (time.perf_counter() - t) / n
        with tempfile.TemporaryDirectory() as out:
            settings = PretrainingSettings(output_dir=out, data=data, progress=False, tensorboard=False,
                                           dtype="mixed_bfloat16" if args.mixed_precision else None,
                                           jit_compile=args.xla, eval_every_epochs=0)
            trainer = Pretrainer(dataset, settings, architecture=arch)
            stop = threading.Event()
            it = trainer._dataset_iterator(stop)
            for _ in range(2):
                next(it)
            t = time.perf_counter()
            for _ in range(n):
                next(it)
            tfdata_s = (time.perf_counter() - t) / n
            step = trainer._build_step(it.element_spec)
            for _ in range(3):
                step(next(it)).numpy()
            t = time.perf_counter()
            for _ in range(n):
                step(next(it)).numpy()
            piped_s = (time.perf_counter() - t) / n
            cached = [next(it) for _ in range(n)]
            cached = [{k: tf.identity(v) for k, v in x.items()} for x in cached]
            t = time.perf_counter()
            for x in cached:
                step(x).numpy()
            cached_s = (time.perf_counter() - t) / n
            close_iterator(it, stop)
            trainer.dataset.close()
        rows.append((L, B, numpy_s, tfdata_s, piped_s, cached_s))
        print(f"episode ({L}, {B}): data alone {B / numpy_s:8.0f} samples/s {L * B / numpy_s:9.0f} tokens/s "
              f"(tf.data {B / tfdata_s:8.0f} samples/s) | training with pipeline {piped_s * 1e3:7.1f} ms/step "
              f"{B / piped_s:7.1f} samples/s {L * B / piped_s:8.0f} tokens/s | on cached batches "
              f"{cached_s * 1e3:7.1f} ms/step (pipeline/cached = {piped_s / cached_s:.2f})", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
