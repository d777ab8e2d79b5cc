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

    KERAS_BACKEND=jax python benchmarks/keras_backends.py [--quick] [--fixtures ../shared/fixtures]
    python benchmarks/keras_backends.py --only-virtual --dtypes float32   # TensorFlow, this CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import N_ANNOTATIONS, _inputs, best_time  # noqa: E402  (this folder is on sys.path)


def _best(fn, repeats):
    fn()  # compile
    return best_time(fn, repeats)


def _row(**fields):
    print(json.dumps(fields), flush=True)
    return fields


def forward(dtype, repeats, batch=32, length=512, virtual=None):
    from proteinbert.model import ProteinBertBackbone

    model = ProteinBertBackbone(n_annotations=N_ANNOTATIONS, dtype=dtype, virtual_pad_length=virtual)
    x = list(_inputs(batch, length))
    best = _best(lambda: model.predict_on_batch(x), repeats)  # returns host arrays: the device has finished
    return _row(section="forward", dtype=dtype, batch=batch, length=length, virtual_pad_length=virtual,
                seconds=round(best, 5), tokens_per_s=round(batch * length / best))


def train(dtype, repeats, shapes, virtual=None):
    import keras

    from proteinbert.model import ProteinBertBackbone

    model = ProteinBertBackbone(n_annotations=N_ANNOTATIONS, dtype=dtype, virtual_pad_length=virtual)
    model.compile(optimizer=keras.optimizers.Lamb(learning_rate=2e-4, epsilon=1e-6),
                  loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    rows = []
    for length, batch in shapes:
        tokens, annotations = _inputs(batch, length, seed=1)
        weights = [(tokens != 25).astype("float32"), np.ones((batch,), "float32")]
        best = _best(lambda: model.train_on_batch([tokens, annotations], [tokens, annotations],
                                                  sample_weight=weights), repeats)
        rows.append(_row(section="train", dtype=dtype, batch=batch, length=length, virtual_pad_length=virtual,
                         seconds=round(best, 5), tokens_per_s=round(batch * length / best)))
    return rows


def batch1(dtype, repeats, lengths):
    from proteinbert.model import ProteinBertBackbone

    model = ProteinBertBackbone(n_annotations=N_ANNOTATIONS, dtype=dtype)
    rows = []
    for length in lengths:
        x = list(_inputs(1, length, seed=2))
        best = _best(lambda: model.predict_on_batch(x), repeats)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and no 32768 batch-1")
    p.add_argument("--dtypes", default="float32,mixed_bfloat16")
    p.add_argument("--fixtures", type=Path, help="folder with small_lamb.pkl and small_expected.npz")
    p.add_argument("--only-virtual", action="store_true",
                   help="only virtual padding's cost: forward and train step at 32 x 80, with and without, twice")
    p.add_argument("--json", type=Path, help="also write every row here")
    args = p.parse_args(argv)

    import keras

    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    elif keras.backend.backend() == "torch":
        import torch

        devices = [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else ["cpu"]
    rows = [_row(section="setup", backend=keras.backend.backend(), keras=keras.__version__, devices=devices,
                 cpu_count=os.cpu_count())]
    repeats = 3 if args.quick else 10
    if args.only_virtual:
        for dtype in args.dtypes.split(","):
            for _ in range(2):  # interleaved, against drift in a shared machine's speed
                for virtual in (None, 512):
                    rows.append(forward(dtype, repeats, length=80, virtual=virtual))
                    rows += train(dtype, repeats, [(80, 32)], virtual=virtual)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return
    if args.fixtures:
        rows += parity(args.fixtures)
    for dtype in args.dtypes.split(","):
        rows.append(forward(dtype, repeats))
        rows.append(forward(dtype, repeats, length=80))
        rows.append(forward(dtype, repeats, length=80, virtual=512))
        rows += train(dtype, repeats, [(128, 128), (512, 64), (1024, 32)])
        rows += batch1(dtype, repeats, [512, 2048, 8192] + ([] if args.quick else [32768]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
