"""The fine-tuned network as a Keras model: its config, a model saved alone, and older saves."""

import zipfile

import h5py
import keras
import numpy as np
import pytest

from backbone_harness import MICRO, SEQS
from proteinbert.errors import FormatError, InputError
from proteinbert.model import ProteinBertBackbone
from proteinbert.tokenizer import encode_batch
from proteinbert.training.finetuned_network import FinetunedProteinBert
from proteinbert.training.finetuning import (
    FinetuneConfig, FinetunedModel, OutputSpec, Stage, build_finetuning_model, finetune_from_backbone,
)

CASES = [
    (OutputSpec("global", "binary"), "all"),
    (OutputSpec("local", "categorical", ("H", "E", "C")), "last"),
    (OutputSpec("global", "multilabel", ("x", "y", "z", "w")), "outputs"),
]


def backbone(**kw):
    return ProteinBertBackbone(n_annotations=5, **{**MICRO, **kw})


def x_of(seqs=SEQS, length=40):
    return [encode_batch(seqs, length), np.zeros((len(seqs), 5), "float32")]


def weight_paths(keras_file) -> list[str]:
    paths = []
    with zipfile.ZipFile(keras_file) as archive, h5py.File(archive.open("model.weights.h5")) as h5:
        h5.visititems(lambda name, obj: paths.append(name) if isinstance(obj, h5py.Dataset) else None)
    return paths


@pytest.mark.parametrize("spec,hidden_layers", CASES)
def test_config_rebuilds_the_model(spec, hidden_layers):
    model = build_finetuning_model(backbone(), spec, hidden_layers, dropout_rate=0.25, seed=3, padding="bucket",
                                   seq_len=64)
    config = model.get_config()
    again = FinetunedProteinBert.from_config(config)
    assert again.get_config() == config
    assert (again.output_spec, again.hidden_layers, again.dropout_rate, again.seed) == (spec, hidden_layers, 0.25, 3)
    assert (again.padding, again.seq_len, again.n_annotations) == ("bucket", 64, 5)
    assert [w.path for w in again.weights] == [w.path for w in model.weights]
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(x_of(), verbose=0), model.predict(x_of(), verbose=0), atol=1e-6)
    per_residue = spec.level == "local"
    assert model.predict(x_of(), verbose=0).shape == ((3, 40, 3) if per_residue else (3, spec.n_outputs))


def test_the_backbone_is_not_a_second_copy_of_the_weights():
    # The global head leaves the residue output layer out; the model must not carry it.
    model = build_finetuning_model(backbone(), OutputSpec("global", "binary"))
    plain = keras.Model(model.inputs, model.outputs)  # the model that earlier versions saved
    assert [w.path for w in model.weights] == [w.path for w in plain.weights]
    assert not any(w.path.startswith("output-seq/") for w in model.weights)
    model.get_layer("pretrained").trainable = False
    assert [w.path for w in model.trainable_weights] == ["head-dense/kernel", "head-dense/bias"]


def test_saved_alone_it_loads_with_its_spec_and_padding(tmp_path):
    spec = OutputSpec("global", "categorical", ("a", "b", "c"))
    model = build_finetuning_model(backbone(), spec, seed=1, seq_len=96)
    expected = model.predict(x_of(), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded) is FinetunedProteinBert
    assert (loaded.output_spec, loaded.seq_len, loaded.padding) == (spec, 96, "fixed")
    np.testing.assert_allclose(loaded.predict(x_of(), verbose=0), expected, atol=1e-6)
    # the weight file has the layout of the plain Keras model that earlier versions saved
    keras.Model(model.inputs, model.outputs, name="proteinbert_finetuned").save(tmp_path / "plain.keras")
    assert weight_paths(tmp_path / "m.keras") == weight_paths(tmp_path / "plain.keras")
    # the fine-tuned-model API opens the file too, and pads as in training
    opened = FinetunedModel.load(tmp_path / "m.keras")
    assert opened.spec == spec and opened.training_padding == ("fixed", 96)
    probs = opened.predict(["MKVLAAGIVG", "MST"])
    assert np.asarray(probs).shape == (2, 3)
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, atol=1e-5)


def test_a_directory_of_an_earlier_version_still_loads(tmp_path):
    spec = OutputSpec("local", "binary")
    model = build_finetuning_model(backbone(), spec, seed=2)
    plain = keras.Model(model.inputs, model.outputs, name="proteinbert_finetuned")
    FinetunedModel(plain, spec, {"config": {"padding": "fixed", "stages": [{"seq_len": 64}]}}).save(tmp_path / "old")
    loaded = FinetunedModel.load(tmp_path / "old")
    assert not isinstance(loaded.model, FinetunedProteinBert) and loaded.training_padding == ("fixed", 64)
    np.testing.assert_allclose(loaded.model.predict(x_of(), verbose=0), model.predict(x_of(), verbose=0), atol=1e-6)


def test_a_spec_that_contradicts_the_model_is_refused(tmp_path):
    model = build_finetuning_model(backbone(), OutputSpec("global", "binary"))
    with pytest.raises(InputError, match="predicts"):
        FinetunedModel(model, OutputSpec("global", "numeric"))
    FinetunedModel(model, OutputSpec("global", "binary")).save(tmp_path / "d")
    (tmp_path / "d" / "output_spec.json").write_text(OutputSpec("global", "numeric").to_json())
    (tmp_path / "d" / "labels.txt").unlink()
    with pytest.raises(FormatError, match="output_spec.json"):
        FinetunedModel.load(tmp_path / "d")


def test_a_keras_file_without_a_spec_is_refused_by_name(tmp_path):
    backbone().save(tmp_path / "backbone.keras")
    with pytest.raises(InputError, match="backbone.keras.*without an output spec"):
        FinetunedModel.load(tmp_path / "backbone.keras")


@pytest.mark.parametrize("kwargs,message", [
    (dict(hidden_layers="first"), "hidden_layers"), (dict(padding="none"), "padding"),
    (dict(dropout_rate=1.0), "dropout_rate"), (dict(seq_len=2), "seq_len"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        FinetunedProteinBert(backbone(), OutputSpec("global", "binary"), **kwargs)


def test_virtual_padding_survives_the_config():
    model = build_finetuning_model(backbone(), OutputSpec("global", "binary"), virtual_pad_length=512)
    again = FinetunedProteinBert.from_config(model.get_config())
    assert again.backbone_architecture["virtual_pad_length"] == 512
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(x_of(length=32), verbose=0), model.predict(x_of(length=32), verbose=0),
                               atol=1e-6)


def test_finetuning_records_its_padding_in_the_model():
    config = FinetuneConfig(stages=(Stage("only", 1e-2, 1, True, 48, 4),), padding="bucket", run_eagerly=True)
    seqs = ["MKVLAAGIVG", "MSTNPKPQRK", "MKKLLPT", "MAAGHHR"]
    fm = finetune_from_backbone(backbone(), OutputSpec("global", "binary"), seqs, [0, 1, 0, 1], config=config)
    assert isinstance(fm.model, FinetunedProteinBert)
    assert (fm.model.padding, fm.model.seq_len) == ("bucket", 48)
    assert FinetunedModel(fm.model, fm.spec).training_padding == ("bucket", 48)  # without the metadata too
