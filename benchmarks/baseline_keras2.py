"""Reference speed of the ProteinBERT architecture on TensorFlow 2.15 / Keras 2 on *this* machine.

The 2021 code ran on TensorFlow 2.15 / Keras 2. This script rebuilds the same architecture (same
layers and widths, exact GELU, all heads of the global attention, one fixed-length model per shape,
as the 2021 code does) in plain tf.keras 2, so that the old software stack can be timed on the
hardware at hand, beside ``throughput.py``.

It runs in its own environment, not the project's (TF 2.15 cannot share a venv with TF 2.21):

    python3 -m venv /tmp/tf215 && /tmp/tf215/bin/pip install tensorflow-cpu==2.15.1
    /tmp/tf215/bin/python benchmarks/baseline_keras2.py            # forward, train, batch-1
    /tmp/tf215/bin/python benchmarks/baseline_keras2.py --quick    # seconds: a tiny model, tiny shapes

Run under Keras 3 it stops with exit code 2. BASELINE_ATTENTION=einsum computes all heads in one
einsum instead of a loop over heads. Prints one JSON line per measurement, in the same fields as
``throughput.py``, after a ``machine`` line. The optimizer is Adam (LAMB needs
tensorflow-addons; the optimizer update is <1% of a step at these shapes).
"""

import argparse
import importlib.metadata
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Shared with throughput.py, so both time, feed and measure the model the same way (the harness
# imports only the standard library and numpy at module level: it works in the TF 2.15 venv).
import _harness  # noqa: E402
from _harness import N_ANNOTATIONS, best_time, synthetic_inputs  # noqa: E402

VOCAB = 26
ATTENTION = os.environ.get("BASELINE_ATTENTION", "loop")  # "loop" or "einsum" (all heads at once)


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the architecture (``build``'s keywords) and the shapes, as throughput.py."""

    architecture: tuple = ()  # (name, value) pairs overriding build()'s defaults
    forward: tuple = (32, 512)  # (batch, length)
    train: tuple = ((128, 128), (512, 64), (1024, 32))  # (length, batch)
    batch1: tuple = (512, 2048, 8192, 32768)
    repeats: int = 5
    batch1_repeats: int = 3


FULL = Sizes()
QUICK = Sizes(architecture=tuple(_harness.QUICK_ARCHITECTURE.items()), forward=(4, 64), train=((64, 4),),
              batch1=(128, 512), repeats=1, batch1_repeats=1)


def build(seq_len, n_annotations=N_ANNOTATIONS, d_seq=128, d_global=512, n_blocks=6, n_heads=4, d_key=64,
          kernel=9, dilation=5):
    import tensorflow as tf
    from tensorflow import keras

    gelu = lambda t: tf.nn.gelu(t, approximate=False)  # noqa: E731 - exact GELU, as the original

    class GlobalAttention(keras.layers.Layer):
        def __init__(self, n_heads, d_key, d_value, **kw):
            super().__init__(**kw)
            self.n_heads, self.d_key, self.d_value = n_heads, d_key, d_value

        def build(self, shapes):
            (_, dg), (_, _, ds) = shapes
            self.Wq = self.add_weight(name="Wq", shape=(self.n_heads, dg, self.d_key), initializer="glorot_uniform")
            self.Wk = self.add_weight(name="Wk", shape=(self.n_heads, ds, self.d_key), initializer="glorot_uniform")
            self.Wv = self.add_weight(name="Wv", shape=(self.n_heads, ds, self.d_value), initializer="glorot_uniform")

        def call(self, inputs):
            x, s = inputs
            if ATTENTION == "loop":  # one head at a time, plain matmuls (usually the faster form)
                heads = []
                for h in range(self.n_heads):
                    q = tf.tanh(tf.matmul(x, self.Wq[h]))
                    k = tf.tanh(tf.tensordot(s, self.Wk[h], 1))
                    v = gelu(tf.tensordot(s, self.Wv[h], 1))
                    a = tf.nn.softmax(tf.einsum("bk,blk->bl", q, k) / self.d_key ** 0.5, axis=-1)
                    heads.append(tf.einsum("bl,blv->bv", a, v))
                return tf.concat(heads, -1)
            q = tf.tanh(tf.einsum("bg,hgk->bhk", x, self.Wq))
            k = tf.tanh(tf.einsum("bls,hsk->bhlk", s, self.Wk))
            v = gelu(tf.einsum("bls,hsv->bhlv", s, self.Wv))
            a = tf.nn.softmax(tf.einsum("bhk,bhlk->bhl", q, k) / self.d_key ** 0.5, axis=-1)
            out = tf.einsum("bhl,bhlv->bhv", a, v)
            return tf.reshape(out, (-1, self.n_heads * self.d_value))

    L = keras.layers
    tokens = keras.Input((seq_len,), dtype="int32")
    annotations = keras.Input((n_annotations,), dtype="float32")
    seq = L.Embedding(VOCAB, d_seq)(tokens)
    glob = L.Dense(d_global, activation=gelu)(annotations)
    for _ in range(n_blocks):
        g2s = L.Reshape((1, d_seq))(L.Dense(d_seq, activation=gelu)(glob))
        narrow = L.Conv1D(d_seq, kernel, padding="same", dilation_rate=1, activation=gelu)(seq)
        wide = L.Conv1D(d_seq, kernel, padding="same", dilation_rate=dilation, activation=gelu)(seq)
        seq = L.LayerNormalization()(L.Add()([seq, g2s, narrow, wide]))
        seq = L.LayerNormalization()(L.Add()([seq, L.Dense(d_seq, activation=gelu)(seq)]))
        dense1 = L.Dense(d_global, activation=gelu)(glob)
        attention = GlobalAttention(n_heads, d_key, d_global // n_heads)([glob, seq])
        glob = L.LayerNormalization()(L.Add()([glob, dense1, attention]))
        glob = L.LayerNormalization()(L.Add()([glob, L.Dense(d_global, activation=gelu)(glob)]))
    out_seq = L.Dense(VOCAB, activation="softmax")(seq)
    out_ann = L.Dense(n_annotations, activation="sigmoid")(glob)
    return keras.Model([tokens, annotations], [out_seq, out_ann])


def forward(sizes, batch, length, repeats):
    import tensorflow as tf

    arch = dict(sizes.architecture)
    model = build(length, **arch)
    fn = tf.function(lambda t, a: model([t, a], training=False))
    tokens, annotations = synthetic_inputs(batch, length, arch.get("n_annotations", N_ANNOTATIONS))
    fn(tokens, annotations)
    return best_time(lambda: fn(tokens, annotations)[1].numpy(), repeats)


def train(sizes, batch, length, repeats):
    from tensorflow import keras

    arch = dict(sizes.architecture)
    model = build(length, **arch)
    model.compile(optimizer=keras.optimizers.Adam(2e-4),
                  loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    tokens, annotations = synthetic_inputs(batch, length, arch.get("n_annotations", N_ANNOTATIONS), seed=1)
    sw_seq = (tokens != 25).astype("float32")
    sw_ann = np.ones((batch,), "float32")
    step = lambda: model.train_on_batch([tokens, annotations], [tokens, annotations],  # noqa: E731
                                        sample_weight=[sw_seq, sw_ann])
    step()
    return best_time(step, repeats)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("forward", "train", "batch1"))
    p.add_argument("--repeats", type=int, help="timed calls per measurement (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="seconds: a tiny model and tiny shapes")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import tensorflow as tf
    from tensorflow import keras

    # TF 2.15's tf.keras has no __version__; the installed keras package is then the same Keras 2.
    keras_version = getattr(keras, "__version__", None) or importlib.metadata.version("keras")
    if not keras_version.startswith("2."):
        p.error(f"this script needs TensorFlow <= 2.15 with Keras 2; this interpreter ({sys.executable}) has "
                f"TensorFlow {tf.__version__} with Keras {keras_version}. Run it with the interpreter of such "
                "an environment (see --help)")
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or sizes.repeats
    if args.child:
        seconds = forward(sizes, 1, args.child, sizes.batch1_repeats)
        _harness.emit_result({"section": "batch1", "length": args.child, "seconds": round(seconds, 4),
                              "peak_rss_mb": round(_harness.peak_rss_mb()), "tf": tf.__version__})
        return 0
    _harness.print_header(as_json=True, quick=args.quick, attention=ATTENTION)
    if args.only in (None, "forward"):
        batch, length = sizes.forward
        s = forward(sizes, batch, length, repeats)
        print(json.dumps({"section": "forward", "batch": batch, "length": length, "seconds": round(s, 4),
                          "tokens_per_s": round(batch * length / s), "tf": tf.__version__, "attention": ATTENTION}),
              flush=True)
    if args.only in (None, "train"):
        for length, batch in sizes.train:
            s = train(sizes, batch, length, max(1 if args.quick else 2, repeats - 1))
            print(json.dumps({"section": "train", "batch": batch, "length": length, "seconds": round(s, 4),
                              "tokens_per_s": round(batch * length / s), "tf": tf.__version__,
                              "attention": ATTENTION}), flush=True)
    if args.only in (None, "batch1"):
        for length in sizes.batch1:
            cmd = [sys.executable, __file__, "--child", str(length)] + (["--quick"] if args.quick else [])
            result = _harness.run_result_child(cmd)
            if result is None:
                return 1
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
