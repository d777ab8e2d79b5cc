"""Convolution forward + backward: TensorFlow's own gradient vs ``proteinbert.model.tf_conv``.

One 1-D "same" convolution of the released model's shape (128 -> 128 channels, 9 taps) at
dilation 1 (the narrow convolution) and 5 (the wide one), on batches of 32 sequences. Prints
the forward time and the forward + backward time of each, with the largest relative
difference between the two gradients.

    python benchmarks/conv_gradient.py --lengths 80 512 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _timed(fn, n: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per call."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(n):
        fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return 1e3 * (time.perf_counter() - start) / n, 1e3 * cpu / n


def main(argv=None) -> int:
    from proteinbert.hardware import tune_cpu_allocator

    tune_cpu_allocator()  # the commands' allocator settings, before TensorFlow starts
    import numpy as np
    import tensorflow as tf

    from proteinbert.model.tf_conv import same_conv1d

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[80, 512])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--calls", type=int, default=10, help="calls per timing")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, {args.channels} -> {args.channels} channels, 9 taps; ms per call, wall / CPU")
    for length in args.lengths:
        x = tf.constant(rng.normal(size=(args.batch, length, args.channels)).astype("float32"))
        kernel = tf.Variable(0.05 * rng.normal(size=(9, args.channels, args.channels)).astype("float32"))
        upstream = tf.constant(rng.normal(size=(args.batch, length, args.channels)).astype("float32"))
        for dilation in (1, 5):
            def gradients(conv):
                @tf.function
                def run():
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        loss = tf.reduce_sum(conv(x, kernel) * upstream)
                    return tape.gradient(loss, [x, kernel])
                return run

            native = gradients(lambda x, k: tf.nn.convolution(x, k, padding="SAME", dilations=dilation))
            ours = gradients(lambda x, k: same_conv1d(x, k, dilation))
            forward = tf.function(lambda: tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation))
            diff = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
                       for a, b in zip(native(), ours()))
            forward()
            rows = {"forward": [], "TF gradient": [], "tf_conv gradient": []}
            for _ in range(args.repeats):
                for name, fn in zip(rows, (forward, native, ours)):
                    rows[name].append(_timed(fn, args.calls))
            print(f"L {length:5d}, dilation {dilation}: "
                  + "; ".join(f"{name} " + " ".join(f"{w:.1f}/{c:.1f}" for w, c in values)
                              for name, values in rows.items())
                  + f"; gradients differ by {diff:.1e} (relative)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
