"""Throughput of the default ProteinBERT (8943 annotations) on this machine.

Prints: forward tokens/s at 512x32; train-step tokens/s (both heads, LAMB) at (128,128),
(512,64), (1024,32); batch-1 forward time and peak RSS at 512, 2048, 8192, 32768 — in fp32
and mixed bfloat16. Each batch-1 length runs in a fresh subprocess so its peak RSS is its own.

    python benchmarks/throughput.py                 # everything
    python benchmarks/throughput.py --quick         # fewer repeats
    python benchmarks/throughput.py --only forward  # one section (forward/train/batch1)

Batch-1 lengths above --chunk-length (default 4096) are also timed through ChunkedForward, the
path the Embedder takes for long proteins.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_ANNOTATIONS = 8943


def _inputs(batch, length, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 25, size=(batch, length), dtype=np.int32)
    annotations = (rng.random((batch, N_ANNOTATIONS)) < 0.001).astype("float32")
    return tokens, annotations


def best_time(fn, repeats):
    """Best wall time of ``repeats`` calls of ``fn()`` (the caller has already warmed it up)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _model(dtype):
    from proteinbert.model import ProteinBertBackbone

    return ProteinBertBackbone(n_annotations=N_ANNOTATIONS, dtype=dtype)


def forward(dtype, batch=32, length=512, repeats=5, jit=False):
    import tensorflow as tf

    model = _model(dtype)
    fn = tf.function(lambda t, a: model([t, a], training=False), jit_compile=jit)
    tokens, annotations = _inputs(batch, length)
    fn(tokens, annotations)  # trace / compile
    best = best_time(lambda: fn(tokens, annotations)[1].numpy(), repeats)
    return {"section": "forward", "dtype": dtype or "float32", "jit": jit, "batch": batch, "length": length,
            "seconds": round(best, 4), "tokens_per_s": round(batch * length / best)}


def train(dtype, shapes, repeats=4, jit=False):
    import keras

    from proteinbert.model_generation import compile_pretraining_model

    model = _model(dtype)
    compile_pretraining_model(model)
    model.jit_compile = jit
    rows = []
    for length, batch in shapes:
        tokens, annotations = _inputs(batch, length, seed=1)
        sw_seq = (tokens != 25).astype("float32")
        sw_ann = keras.ops.ones((batch,))
        step = lambda: model.train_on_batch([tokens, annotations], [tokens, annotations],  # noqa: E731
                                            sample_weight=[sw_seq, sw_ann])
        step()
        best = best_time(step, repeats)
        rows.append({"section": "train", "dtype": dtype or "float32", "jit": jit, "batch": batch, "length": length,
                     "seconds": round(best, 4), "tokens_per_s": round(batch * length / best)})
    return rows


def _peak_rss_mb():
    # VmHWM is this process's own high-water mark; getrusage's ru_maxrss would also count the
    # parent's memory at the fork (Linux carries it across exec).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch1_child(dtype, length, repeats, jit=False, chunk_length=0):
    import tensorflow as tf

    model = _model(dtype)
    if chunk_length:
        from proteinbert.model import ChunkedForward

        chunked = ChunkedForward(model, chunk_length)
        fn = lambda t, a: chunked.predict(t, a)  # noqa: E731 - returns numpy arrays
    else:
        fn = tf.function(lambda t, a: model([t, a], training=False), jit_compile=jit)
    tokens, annotations = _inputs(1, length, seed=2)
    fn(tokens, annotations)
    best = best_time(lambda: np.asarray(fn(tokens, annotations)[1]), repeats)
    peak_mb = _peak_rss_mb()
    return {"section": "batch1", "dtype": dtype or "float32", "jit": jit, "chunk_length": chunk_length,
            "length": length,
            "seconds": round(best, 4),
            "peak_rss_mb": round(peak_mb)}


def batch1(dtype, length, repeats, jit=False, chunk_length=0):
    cmd = [sys.executable, __file__, "--child", str(length), "--repeats", str(repeats),
           "--chunk-length", str(chunk_length)]
    if dtype:
        cmd += ["--dtype", dtype]
    if jit:
        cmd += ["--jit"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=("forward", "train", "batch1"))
    p.add_argument("--dtypes", default="float32,mixed_bfloat16")
    p.add_argument("--jit", action="store_true", help="also try XLA jit_compile (forward, train, batch-1)")
    p.add_argument("--chunk-length", type=int, default=4096,
                   help="batch-1: also time ChunkedForward with this chunk length (0: whole sequence only)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(batch1_child(args.dtype, args.child, args.repeats, args.jit, args.chunk_length)))
        return
    dtypes = [None if d == "float32" else d for d in args.dtypes.split(",")]
    repeats = 2 if args.quick else 5
    rows = []
    for dtype in dtypes:
        for jit in ([False, True] if args.jit else [False]):
            if args.only in (None, "forward"):
                rows.append(forward(dtype, repeats=repeats, jit=jit))
                print(json.dumps(rows[-1]), flush=True)
            if args.only in (None, "train"):
                for row in train(dtype, [(128, 128), (512, 64), (1024, 32)], repeats=repeats, jit=jit):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        if args.only in (None, "batch1"):
            modes = [(False, 0)] + ([(True, 0)] if args.jit else []) + (
                [(False, args.chunk_length)] if args.chunk_length else [])
            for jit, chunk in modes:
                for length in (512, 2048, 8192, 32768):
                    if chunk and length <= chunk:
                        continue  # the Embedder only chunks beyond chunk_length
                    rows.append(batch1(dtype, length, 2 if args.quick else 3, jit, chunk))
                    print(json.dumps(rows[-1]), flush=True)
    b1 = {(r["dtype"], r["jit"], r["length"]): r["seconds"] for r in rows
          if r["section"] == "batch1" and not r["chunk_length"]}
    for d, j in {(r["dtype"], r["jit"]) for r in rows if r["section"] == "batch1"}:
        if (d, j, 512) in b1 and (d, j, 32768) in b1:
            print(f"{d} jit={j}: batch-1 time ratio 32768/512 = {b1[(d, j, 32768)] / b1[(d, j, 512)]:.1f}x "
                  "(64x the tokens)")


if __name__ == "__main__":
    main()
