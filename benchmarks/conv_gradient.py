"""Convolution forward + backward: TensorFlow's own gradient vs ``proteinbert.model.tf_conv``.

One 1-D "same" convolution of the released model's shape (128 -> 128 channels, 9 taps) at
dilation 1 (the narrow convolution) and 5 (the wide one), on batches of 32 sequences. Prints
the forward time and the forward + backward time of each, with the largest relative
difference between the two gradients.

    python benchmarks/conv_gradient.py --lengths 80 512 --repeats 3
    python benchmarks/conv_gradient.py --quick     # seconds: 4 x 16 tokens, 16 channels
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import _harness  # noqa: E402

DILATIONS = (1, 5)  # the released model's narrow and wide convolutions
TAPS = 9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[80, 512])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--calls", type=int, default=10, help="calls per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="seconds: length 16, batch 4, 16 channels, 2 calls, 1 repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.batch, args.channels, args.calls, args.repeats = [16], 4, 16, 2, 1

    from proteinbert.hardware import tune_cpu_allocator

    tune_cpu_allocator()  # the commands' allocator settings, before TensorFlow starts
    import numpy as np
    import tensorflow as tf

    from proteinbert.model.tf_conv import same_conv1d

    _harness.print_header()
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, {args.channels} -> {args.channels} channels, {TAPS} taps; "
          "ms per call, wall / CPU")
    for length in args.lengths:
        x = tf.constant(rng.normal(size=(args.batch, length, args.channels)).astype("float32"))
        kernel = tf.Variable(0.05 * rng.normal(size=(TAPS, args.channels, args.channels)).astype("float32"))
        upstream = tf.constant(rng.normal(size=(args.batch, length, args.channels)).astype("float32"))
        for dilation in DILATIONS:
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
                    rows[name].append(_harness.wall_and_cpu_ms(fn, args.calls))
            print(f"L {length:5d}, dilation {dilation}: "
                  + "; ".join(f"{name} " + " ".join(f"{w:.1f}/{c:.1f}" for w, c in values)
                              for name, values in rows.items())
                  + f"; gradients differ by {diff:.1e} (relative)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
