"""Throughput of the default ProteinBERT (8943 annotations) on this machine, and the ceiling for it.

Prints one JSON line per measurement, after a ``machine`` line (CPU, cores, oneDNN, versions):

* ``forward``: tokens/s at 32 x 512;
* ``train``: train-step tokens/s (both heads, LAMB) at (128,128), (512,64), (1024,32);
* ``batch1``: batch-1 forward time and peak RSS at 512, 2048, 8192, 32768, each length in a fresh
  subprocess so its peak RSS is its own; lengths above ``--chunk-length`` (default 4096) are also
  timed through ``ChunkedForward``, the path the Embedder takes for long proteins;
* ``gemm``: the float32 matrix-product rate TensorFlow reaches here. The model costs about
  4.93 MFLOP per token forward (per block and token: 2 convolutions of 9 x 128 x 128 MACs, a
  128 x 128 dense, attention keys 4 x 128 x 64 and values 4 x 128 x 128), so tokens/s x 4.93e6
  against these GFLOP/s says how close the model runs to the hardware.

Model sections run in float32 and mixed bfloat16 (``--dtypes``).

    python benchmarks/throughput.py                 # everything
    python benchmarks/throughput.py --only forward  # one section (forward/train/batch1/gemm)
    python benchmarks/throughput.py --quick         # seconds: a tiny model, tiny shapes, float32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402

SECTIONS = ("forward", "train", "batch1", "gemm")


@dataclass(frozen=True)
class Sizes:
    """What one run measures; :data:`FULL` is the published set, :data:`QUICK` a smoke test."""

    architecture: dict = field(default_factory=lambda: {"n_annotations": _harness.N_ANNOTATIONS})
    forward: tuple = (32, 512)  # (batch, length)
    train: tuple = ((128, 128), (512, 64), (1024, 32))  # (length, batch)
    batch1: tuple = (512, 2048, 8192, 32768)
    gemm: tuple = ((4096, 4096, 4096), (16384, 1152, 128), (16384, 128, 512))  # square; conv as GEMM; values
    repeats: int = 5
    batch1_repeats: int = 3


FULL = Sizes()
QUICK = Sizes(architecture=_harness.QUICK_ARCHITECTURE, forward=(4, 64), train=((64, 4),), batch1=(256,),
              gemm=((256, 256, 256),), repeats=1, batch1_repeats=1)


def _model(sizes: Sizes, dtype):
    from proteinbert.model import ProteinBertBackbone

    return ProteinBertBackbone(**sizes.architecture, dtype=dtype)


def _n_annotations(sizes: Sizes) -> int:
    return sizes.architecture["n_annotations"]


def forward(sizes: Sizes, dtype, jit=False) -> dict:
    import tensorflow as tf

    batch, length = sizes.forward
    model = _model(sizes, dtype)
    fn = tf.function(lambda t, a: model([t, a], training=False), jit_compile=jit)
    tokens, annotations = _harness.synthetic_inputs(batch, length, _n_annotations(sizes))
    fn(tokens, annotations)  # trace / compile
    best = _harness.best_time(lambda: fn(tokens, annotations)[1].numpy(), sizes.repeats)
    return {"section": "forward", "dtype": dtype or "float32", "jit": jit, "batch": batch, "length": length,
            "seconds": round(best, 4), "tokens_per_s": round(batch * length / best)}


def train(sizes: Sizes, dtype, jit=False) -> list[dict]:
    import keras

    from proteinbert.model_generation import compile_pretraining_model

    model = _model(sizes, dtype)
    compile_pretraining_model(model)
    model.jit_compile = jit
    rows = []
    for length, batch in sizes.train:
        tokens, annotations = _harness.synthetic_inputs(batch, length, _n_annotations(sizes), seed=1)
        sw_seq = (tokens != 25).astype("float32")
        sw_ann = keras.ops.ones((batch,))
        step = lambda: model.train_on_batch([tokens, annotations], [tokens, annotations],  # noqa: E731
                                            sample_weight=[sw_seq, sw_ann])
        step()
        best = _harness.best_time(step, sizes.repeats)
        rows.append({"section": "train", "dtype": dtype or "float32", "jit": jit, "batch": batch, "length": length,
                     "seconds": round(best, 4), "tokens_per_s": round(batch * length / best)})
    return rows


def batch1_child(sizes: Sizes, dtype, length, jit=False, chunk_length=0) -> dict:
    import tensorflow as tf

    model = _model(sizes, dtype)
    if chunk_length:
        from proteinbert.model import ChunkedForward

        chunked = ChunkedForward(model, chunk_length)
        fn = lambda t, a: chunked.predict(t, a)  # noqa: E731 - returns numpy arrays
    else:
        fn = tf.function(lambda t, a: model([t, a], training=False), jit_compile=jit)
    tokens, annotations = _harness.synthetic_inputs(1, length, _n_annotations(sizes), seed=2)
    fn(tokens, annotations)
    best = _harness.best_time(lambda: np.asarray(fn(tokens, annotations)[1]), sizes.batch1_repeats)
    return {"section": "batch1", "dtype": dtype or "float32", "jit": jit, "chunk_length": chunk_length,
            "length": length, "seconds": round(best, 4), "peak_rss_mb": round(_harness.peak_rss_mb())}


def batch1(quick: bool, dtype, length, jit=False, chunk_length=0) -> dict:
    cmd = [sys.executable, __file__, "--child", str(length), "--chunk-length", str(chunk_length)]
    cmd += (["--dtype", dtype] if dtype else []) + (["--jit"] if jit else []) + (["--quick"] if quick else [])
    result = _harness.run_result_child(cmd)
    if result is None:
        raise SystemExit(f"the batch-1 child at length {length} failed")
    return result


def gemm(sizes: Sizes) -> list[dict]:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in sizes.gemm:
        a = tf.constant(rng.random((m, k), dtype=np.float32))
        b = tf.constant(rng.random((k, n), dtype=np.float32))
        fn = tf.function(tf.matmul)
        fn(a, b).numpy()
        best = _harness.best_time(lambda: fn(a, b).numpy(), sizes.repeats)
        rows.append({"section": "gemm", "shape": f"{m}x{k} @ {k}x{n}", "seconds": round(best, 5),
                     "gflop_per_s": round(2 * m * k * n / best / 1e9, 1)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="seconds: a tiny model and tiny shapes (default dtype float32)")
    p.add_argument("--only", choices=SECTIONS)
    p.add_argument("--dtypes", help="comma-separated (default: float32,mixed_bfloat16; float32 with --quick)")
    p.add_argument("--jit", action="store_true", help="also try XLA jit_compile (forward, train, batch-1)")
    p.add_argument("--chunk-length", type=int,
                   help="batch-1: also time ChunkedForward with this chunk length (0: whole sequence only; "
                        "default 4096, 128 with --quick)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    chunk_length = args.chunk_length if args.chunk_length is not None else (128 if args.quick else 4096)
    if args.child:
        _harness.emit_result(batch1_child(sizes, args.dtype, args.child, args.jit, chunk_length))
        return 0
    dtypes = [None if d == "float32" else d
              for d in (args.dtypes or ("float32" if args.quick else "float32,mixed_bfloat16")).split(",")]
    _harness.print_header(as_json=True, quick=args.quick)
    sections = [args.only] if args.only else SECTIONS
    rows = []

    def report(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    for dtype in dtypes:
        for jit in ([False, True] if args.jit else [False]):
            if "forward" in sections:
                report(forward(sizes, dtype, jit))
            if "train" in sections:
                for row in train(sizes, dtype, jit):
                    report(row)
        if "batch1" in sections:
            modes = [(False, 0)] + ([(True, 0)] if args.jit else []) + ([(False, chunk_length)] if chunk_length else [])
            for jit, chunk in modes:
                for length in sizes.batch1:
                    if chunk and length <= chunk:
                        continue  # the Embedder only chunks beyond chunk_length
                    report(batch1(args.quick, dtype, length, jit, chunk))
    if "gemm" in sections:
        for row in gemm(sizes):
            report(row)
    shortest, longest = sizes.batch1[0], sizes.batch1[-1]
    b1 = {(r["dtype"], r["jit"], r["length"]): r["seconds"] for r in rows
          if r["section"] == "batch1" and not r["chunk_length"]}
    for d, j in sorted({(r["dtype"], r["jit"]) for r in rows if r["section"] == "batch1"}):
        if longest > shortest and (d, j, shortest) in b1 and (d, j, longest) in b1:
            print(f"{d} jit={j}: batch-1 time ratio {longest}/{shortest} = "
                  f"{b1[(d, j, longest)] / b1[(d, j, shortest)]:.1f}x ({longest // shortest}x the tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
