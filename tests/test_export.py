"""The erf form of the exact GELU, and ``proteinbert.export`` / ``proteinbert export``: ONNX (run with
onnxruntime; skipped where it is not installed) and SavedModel, checked against Keras."""

import importlib.util
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from proteinbert.cli.export import main as export_main
from proteinbert.errors import ExportError
from proteinbert.export import ExportResult, export_model
from proteinbert.model import ProteinBertBackbone
from proteinbert.model.layers import gelu
from proteinbert.tokenizer import encode_batch
from proteinbert.training.finetuning import (
    FinetuneConfig, FinetunedModel, OutputSpec, Stage, build_finetuning_model, finetune_from_backbone,
)
from backbone_harness import MICRO

TINY = dict(MICRO, n_annotations=5)
# Checked before any fixture is built: without the `onnx` extra these tests skip at once.
needs_onnx = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "tf2onnx", "onnxruntime")),
                                reason="the onnx extra (onnx, tf2onnx, onnxruntime) is not installed")


def _float32_grid():
    dense = np.linspace(-20, 20, 2_000_001)
    wide = np.geomspace(1e-30, 3e38, 20_001)
    special = [0.0, -0.0, np.finfo(np.float32).tiny, np.finfo(np.float32).max, -np.finfo(np.float32).max]
    return np.concatenate([dense, wide, -wide, special]).astype(np.float32)


def test_erf_gelu_is_the_exact_gelu_to_1e_6_in_float32():
    x = _float32_grid()
    exact = keras.activations.gelu(x, approximate=False).numpy()  # Keras's exact GELU (with erfc)
    ours = np.asarray(gelu(x))
    assert ours.dtype == np.float32
    finite = np.isfinite(exact)
    assert finite.sum() == len(x) and np.isfinite(ours).all()
    difference = np.abs(ours - exact)
    assert difference.max() <= 1e-6
    # Beyond |x| = 20 the two agree exactly (x, or 0 / -0 in the far negative tail).
    far = np.abs(x) > 20
    assert np.array_equal(ours[far], exact[far])
    # Gradients agree too (training uses them).
    t = tf.constant(np.linspace(-12, 12, 100_001, dtype=np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(t)
        ya, yb = gelu(t), tf.nn.gelu(t, approximate=False)
    np.testing.assert_allclose(tape.gradient(ya, t).numpy(), tape.gradient(yb, t).numpy(), atol=2e-6)


def test_the_model_computes_gelu_with_erf_not_erfc():
    backbone = ProteinBertBackbone(**TINY)
    function = tf.function(lambda t, a: backbone([t, a], training=False)).get_concrete_function(
        tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, TINY["n_annotations"]), tf.float32))
    ops = {op.type for op in function.graph.get_operations()}
    assert "Erf" in ops and "Erfc" not in ops
    # The weight contract is unchanged: the layers keep their names, the config its activation name.
    assert backbone.get_config()["activation"] == "gelu"
    assert backbone.get_layer("seq-dense-block1").activation is gelu


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A tiny model fine-tuned for one epoch and saved as `proteinbert finetune` saves it, and its sequences."""
    backbone = ProteinBertBackbone(**TINY)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(rng.integers(8, 40)))) for _ in range(12)]
    config = FinetuneConfig(stages=(Stage("only", 1e-2, 1, True, 48, 8),), run_eagerly=True)
    model = finetune_from_backbone(backbone, OutputSpec("global", "binary"), seqs, [i % 2 for i in range(12)],
                                   config=config)
    return model.save(tmp_path_factory.mktemp("finetuned") / "model"), seqs


@needs_onnx
def test_onnx_export_of_a_finetuned_model_matches_keras(tmp_path, finetuned):
    import onnx
    import onnxruntime as ort

    model_dir, seqs = finetuned
    result = export_model(model_dir, tmp_path / "model.onnx")
    assert isinstance(result, ExportResult) and result.format == "onnx" and result.kind == "finetuned"
    assert result.max_abs_difference is not None and result.max_abs_difference < 1e-5
    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert "Erfc" not in {n.op_type for n in proto.graph.node}
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["proteinbert.output_spec"] == {"level": "global", "task": "binary", "labels": []}
    assert (meta["proteinbert.padding"], meta["proteinbert.seq_len"]) == ("fixed", 48)

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["tokens", "annotations"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    keras_model = FinetunedModel.load(model_dir)
    expected = np.stack(keras_model.predict(seqs))  # fixed padding to 48, as trained
    tokens = encode_batch(seqs, 48)
    (got,) = session.run(["output"], {"tokens": tokens, "annotations": np.zeros((len(seqs), 5), np.float32)})
    assert got.shape == (len(seqs), 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Any other length runs too, with the Keras model's numbers at that length.
    tokens = encode_batch(seqs[:3], 75)
    (got,) = session.run(["output"], {"tokens": tokens, "annotations": np.zeros((3, 5), np.float32)})
    want = keras_model.model([tokens, np.zeros((3, 5), np.float32)], training=False)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


@needs_onnx
def test_onnx_export_of_a_backbone_and_of_keras_gelu_models(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    tokens = encode_batch(["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=n)) for n in (30, 71)], 80)
    annotations = (rng.random((2, 5)) < 0.3).astype(np.float32)
    # Keras's own GELU (erfc), as in models saved before the erf form: converted as 1 - erf.
    legacy = ProteinBertBackbone(**TINY, activation=keras.activations.gelu)
    for backbone, layers, names in ((ProteinBertBackbone(**TINY), None, ["token_probabilities",
                                                                         "annotation_probabilities"]),
                                    (legacy, "all", ["residue_embeddings", "protein_embeddings"])):
        path = tmp_path / f"backbone-{layers}.onnx"
        result = export_model(backbone, path, layers=layers)
        assert list(result.outputs) == names and result.max_abs_difference < 1e-5
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(names, {"tokens": tokens, "annotations": annotations})
        if layers is None:
            want = backbone([tokens, annotations], training=False)
        else:
            from proteinbert.model import hidden_representation_model

            want = hidden_representation_model(backbone, layers)([tokens, annotations], training=False)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(w), atol=1e-5)
        assert got[0].shape[:2] == (2, 80)


def test_savedmodel_export_matches_keras_and_refuses_to_overwrite(tmp_path):
    backbone = ProteinBertBackbone(**TINY)
    model = FinetunedModel(build_finetuning_model(backbone, OutputSpec("local", "categorical", ("a", "b", "c"))),
                           OutputSpec("local", "categorical", ("a", "b", "c")), {})
    destination = tmp_path / "served"
    result = export_model(model, destination)
    assert result.format == "savedmodel" and result.max_abs_difference < 1e-5
    assert json.loads((destination / "proteinbert.json").read_text())["output_spec"]["labels"] == ["a", "b", "c"]
    loaded = tf.saved_model.load(str(destination))
    tokens = encode_batch(["MKVLAAGIVW", "MKT"], 33)
    out = loaded.serve(tf.constant(tokens), tf.zeros((2, 5)))["output"].numpy()
    np.testing.assert_allclose(out, model.model([tokens, np.zeros((2, 5), np.float32)], training=False), atol=1e-6)
    assert out.shape == (2, 33, 3)
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        export_model(model, destination)
    assert export_model(model, destination, overwrite=True, verify=False).max_abs_difference is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # nothing left beside it


def test_a_failed_check_leaves_no_file(tmp_path, monkeypatch):
    import proteinbert.export as export

    monkeypatch.setattr(export, "VERIFY_TOLERANCE", -1.0)  # any difference, even 0, now fails
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_model(ProteinBertBackbone(**TINY), tmp_path / "served")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_export_command(tmp_path, capsys, finetuned):
    model_dir, _ = finetuned
    out = tmp_path / "m.onnx"
    assert export_main([str(model_dir), str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and f"wrote {out} (onnx, finetuned; outputs output" in printed
    assert export_main([str(model_dir), str(out), "-q"]) == 2  # exists
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert export_main([str(model_dir), str(tmp_path / "m.h5"), "-q"]) == 2  # which format?
    assert "cannot tell the export format" in capsys.readouterr().err
    assert export_main([str(model_dir), str(model_dir), "--format", "savedmodel", "-q"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert export_main([str(tmp_path / "missing"), str(tmp_path / "x.onnx"), "-q"]) == 1


@needs_onnx
def test_without_onnxruntime_or_tf2onnx_and_an_op_onnx_lacks(tmp_path, monkeypatch, caplog):
    import sys

    import tf2onnx

    from proteinbert.errors import MissingDependencyError

    backbone = ProteinBertBackbone(**TINY)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` now fails as if it were not installed
        with pytest.raises(MissingDependencyError, match=r"pip install 'proteinbert\[onnx\]'"):
            export_model(backbone, tmp_path / "a.onnx")
    # Without onnxruntime the file is written and checked by onnx's checker, but not run.
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "onnxruntime", None)
        with caplog.at_level("WARNING", logger="proteinbert.export"):
            result = export_model(backbone, tmp_path / "a.onnx")
    assert result.max_abs_difference is None and (tmp_path / "a.onnx").is_file()
    assert "onnxruntime is not installed" in caplog.text and "a.onnx passed onnx's checker" in caplog.text
    # An op ONNX lacks (Keras's erfc GELU, without the conversion to 1 - erf) is refused, and nothing written.
    convert = tf2onnx.convert.from_function
    monkeypatch.setattr(tf2onnx.convert, "from_function",
                        lambda *args, custom_op_handlers=None, **kwargs: convert(*args, **kwargs))
    with pytest.raises(ExportError, match="Erfc"):
        export_model(ProteinBertBackbone(**TINY, activation=keras.activations.gelu), tmp_path / "b.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx"]
