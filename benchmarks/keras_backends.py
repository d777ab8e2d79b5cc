"""The backbone on any Keras 3 backend: speed, bfloat16 and released-weight parity.

The model code uses ``keras.ops`` only, so the backbone runs on JAX or PyTorch as well as on
TensorFlow (the training, data and chunked-inference modules use TensorFlow). This script
measures what the backbone alone does on the backend and device in hand — e.g. a GPU machine
without TensorFlow — with Keras's own compiled functions:

* forward tokens/s at 32 x 512 (``predict_on_batch``), float32 and mixed bfloat16;
* train-step tokens/s (both heads, LAMB, ``train_on_batch``) at (128,128), (512,64), (1024,32);
* batch-1 forward seconds at 512, 2048, 8192, 32768;
* virtual padding's cost: a 32 x 80 forward with and without ``virtual_pad_length=512``;
* with ``--fixtures`` (a folder holding ``small_lamb.pkl`` and ``small_expected.npz``): the
  largest difference from the 2021 outputs, float32 and bfloat16.

Prints one JSON line per measurement, after a ``setup`` line (backend, devices) and a ``machine``
line (CPU, cores, oneDNN, versions).

    KERAS_BACKEND=jax python benchmarks/keras_backends.py [--fixtures DIR]
    python benchmarks/keras_backends.py --only-virtual --dtypes float32   # TensorFlow, this CPU
    python benchmarks/keras_backends.py --quick    # seconds: a tiny model, tiny shapes, float32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The package may be used from a checkout that is not installed (a GPU machine with JAX only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _harness  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """What one run measures; :data:`FULL` is the published set, :data:`QUICK` a smoke test."""

    architecture: dict = field(default_factory=lambda: {"n_annotations": _harness.N_ANNOTATIONS})
    forward: tuple = (32, 512)  # (batch, length)
    short: tuple = (32, 80)  # (batch, length) of the virtual-padding comparison
    train: tuple = ((128, 128), (512, 64), (1024, 32))  # (length, batch)
    batch1: tuple = (512, 2048, 8192, 32768)
    repeats: int = 10


FULL = Sizes()
QUICK = Sizes(architecture=_harness.QUICK_ARCHITECTURE, forward=(4, 64), short=(4, 32), train=((64, 4),),
              batch1=(128, 512), repeats=1)


def _best(fn, repeats):
    fn()  # compile
    return _harness.best_time(fn, repeats)


def _row(**fields):
    print(json.dumps(fields), flush=True)
    return fields


def _backbone(sizes: Sizes, dtype, virtual=None):
    from proteinbert.model import ProteinBertBackbone

    return ProteinBertBackbone(**sizes.architecture, dtype=dtype, virtual_pad_length=virtual)


def forward(sizes: Sizes, dtype, shape=None, virtual=None):
    batch, length = shape or sizes.forward
    model = _backbone(sizes, dtype, virtual)
    x = list(_harness.synthetic_inputs(batch, length, sizes.architecture["n_annotations"]))
    best = _best(lambda: model.predict_on_batch(x), sizes.repeats)  # returns host arrays: the device has finished
    return _row(section="forward", dtype=dtype, batch=batch, length=length, virtual_pad_length=virtual,
                seconds=round(best, 5), tokens_per_s=round(batch * length / best))


def train(sizes: Sizes, dtype, shapes, virtual=None):
    import keras

    model = _backbone(sizes, dtype, virtual)
    model.compile(optimizer=keras.optimizers.Lamb(learning_rate=2e-4, epsilon=1e-6),
                  loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    rows = []
    for length, batch in shapes:
        tokens, annotations = _harness.synthetic_inputs(batch, length, sizes.architecture["n_annotations"], seed=1)
        weights = [(tokens != 25).astype("float32"), np.ones((batch,), "float32")]
        best = _best(lambda: model.train_on_batch([tokens, annotations], [tokens, annotations],
                                                  sample_weight=weights), sizes.repeats)
        rows.append(_row(section="train", dtype=dtype, batch=batch, length=length, virtual_pad_length=virtual,
                         seconds=round(best, 5), tokens_per_s=round(batch * length / best)))
    return rows


def batch1(sizes: Sizes, dtype, lengths):
    model = _backbone(sizes, dtype)
    rows = []
    for length in lengths:
        x = list(_harness.synthetic_inputs(1, length, sizes.architecture["n_annotations"], seed=2))
        best = _best(lambda: model.predict_on_batch(x), sizes.repeats)
        rows.append(_row(section="batch1", dtype=dtype, length=length, seconds=round(best, 5)))
    return rows


def parity(fixtures: Path):
    from proteinbert.model import ProteinBertBackbone
    from proteinbert.weights import backbone_from_released

    expected = np.load(fixtures / "small_expected.npz")
    fp32 = backbone_from_released(fixtures / "small_lamb.pkl")
    bf16 = ProteinBertBackbone(**fp32.architecture, dtype="mixed_bfloat16")
    bf16.set_weights(fp32.get_weights())
    rows = []
    for name, model in (("float32", fp32), ("mixed_bfloat16", bf16)):
        for suffix in ("", "_L2"):
            x = [expected["X_seq" + suffix], expected["X_annotations" + suffix]]
            seq, annot = (np.asarray(o, dtype=np.float32) for o in model.predict_on_batch(x))
            rows.append(_row(section="parity", dtype=name, length=int(x[0].shape[1]),
                             max_abs_diff_seq=float(np.abs(seq - expected["output_seq" + suffix]).max()),
                             max_abs_diff_annotations=float(
                                 np.abs(annot - expected["output_annotations" + suffix]).max())))
    return rows


def _devices(backend: str) -> list:
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else ["cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    return []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="seconds: a tiny model, tiny shapes, 1 repeat (default dtype float32)")
    p.add_argument("--dtypes", help="comma-separated (default: float32,mixed_bfloat16; float32 with --quick)")
    p.add_argument("--fixtures", type=Path, help="folder with small_lamb.pkl and small_expected.npz")
    p.add_argument("--only-virtual", action="store_true",
                   help="only virtual padding's cost: forward and train step at 32 x 80, with and without, twice")
    p.add_argument("--json", type=Path, help="also write every row here")
    args = p.parse_args(argv)
    if args.fixtures is not None:
        missing = [n for n in ("small_lamb.pkl", "small_expected.npz") if not (args.fixtures / n).is_file()]
        if missing:
            p.error(f"--fixtures {args.fixtures}: no {' or '.join(missing)} there")
    sizes = QUICK if args.quick else FULL
    dtypes = (args.dtypes or ("float32" if args.quick else "float32,mixed_bfloat16")).split(",")

    import keras

    backend = keras.backend.backend()
    rows = [_row(section="setup", backend=backend, keras=keras.__version__, devices=_devices(backend),
                 cpu_count=os.cpu_count())]
    rows.append({"section": "machine", **_harness.print_header(as_json=True, quick=args.quick)})
    if args.only_virtual:
        for dtype in dtypes:
            for _ in range(2):  # interleaved, against drift in a shared machine's speed
                for virtual in (None, 512):
                    rows.append(forward(sizes, dtype, shape=sizes.short, virtual=virtual))
                    rows += train(sizes, dtype, [sizes.short[::-1]], virtual=virtual)
    else:
        if args.fixtures:
            rows += parity(args.fixtures)
        for dtype in dtypes:
            rows.append(forward(sizes, dtype))
            rows.append(forward(sizes, dtype, shape=sizes.short))
            rows.append(forward(sizes, dtype, shape=sizes.short, virtual=512))
            rows += train(sizes, dtype, sizes.train)
            rows += batch1(sizes, dtype, sizes.batch1)
    if args.json:
        _harness.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
