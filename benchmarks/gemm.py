"""The float32 matrix-product rate TensorFlow reaches on this machine: the ceiling for the model.

ProteinBERT costs ~4.93 MFLOP per token forward (per block and token: 2 convolutions of
9 x 128 x 128 MACs, a 128 x 128 dense, attention keys 4 x 128 x 64 and values 4 x 128 x 128),
so tokens/s x 4.93e6 compared with these GFLOP/s says how close the model runs to the hardware.

    python benchmarks/gemm.py
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHAPES = [(4096, 4096, 4096), (16384, 1152, 128), (16384, 128, 512)]  # square; conv-as-GEMM; attention values


def main():
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        a = tf.constant(rng.random((m, k), dtype=np.float32))
        b = tf.constant(rng.random((k, n), dtype=np.float32))
        fn = tf.function(tf.matmul)
        fn(a, b).numpy()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fn(a, b).numpy()
            best = min(best, time.perf_counter() - start)
        print(f"matmul {m}x{k} @ {k}x{n}: {2 * m * k * n / best / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
