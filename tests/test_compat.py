"""Code written for the 2021 protein-bert package keeps working."""

import numpy as np
import pytest

from proteinbert.errors import WeightsError

TINY_2021 = dict(d_hidden_seq=8, d_hidden_global=16, n_blocks=1, n_heads=2, d_key=4)


def test_2021_readme_snippet(fixtures_dir):
    from proteinbert import load_pretrained_model
    from proteinbert.conv_and_global_attention_model import get_model_with_hidden_layers_as_outputs

    expected = np.load(fixtures_dir / "small_expected.npz")
    seqs, seq_len = list(expected["seqs"]), 64
    pretrained_model_generator, input_encoder = load_pretrained_model(
        local_model_dump_dir=str(fixtures_dir), local_model_dump_file_name="small_lamb.pkl")
    model = get_model_with_hidden_layers_as_outputs(pretrained_model_generator.create_model(seq_len))
    encoded_x = input_encoder.encode_X(seqs, seq_len)
    local_representations, global_representations = model.predict(encoded_x, verbose=0)
    assert local_representations.shape == (5, 64, 154) and global_representations.shape == (5, 370)
    # encode_X gives zero annotations; the fixture switched some on, so compare the seq part only
    assert (encoded_x[0] == expected["X_seq"]).all() and not encoded_x[1].any()


def test_env_var_and_kwargs(fixtures_dir, monkeypatch):
    from proteinbert import load_pretrained_model

    monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(fixtures_dir / "small_lamb.pkl"))
    gen, enc = load_pretrained_model(create_model_kwargs=dict(d_hidden_seq=32, n_blocks=2))
    assert gen.n_annotations == 50 == enc.n_annotations
    assert gen.architecture["d_seq"] == 32
    with pytest.raises(WeightsError, match="d_seq=128"):
        load_pretrained_model(create_model_kwargs=dict(d_hidden_seq=128))


def test_missing_file_says_where_to_get_it(tmp_path, monkeypatch):
    from proteinbert import load_pretrained_model

    monkeypatch.delenv("PROTEINBERT_WEIGHTS", raising=False)
    with pytest.raises(WeightsError) as info:
        load_pretrained_model(local_model_dump_dir=str(tmp_path))
    msg = str(info.value)
    assert str(tmp_path / "epoch_92400_sample_23500000.pkl") in msg and "ftp://" in msg


def test_create_model_2021_signature_and_generator_isolation():
    from proteinbert import InputEncoder, PretrainingModelGenerator
    from proteinbert.conv_and_global_attention_model import create_model

    model = create_model(512, 26, 5, **TINY_2021)
    assert model.get_layer("narrow-conv-block1").kernel.shape == (9, 8, 8)
    gen = PretrainingModelGenerator(create_model, 5, create_model_kwargs=TINY_2021,
                                    model_weights=model.get_weights())
    a, b = gen.create_model(128), gen.create_model(256, compile=False)
    for w in a.weights:
        w.assign(w + 1.0)  # changing one model must not touch the other or the generator
    np.testing.assert_array_equal(b.get_weights()[0], model.get_weights()[0])
    x = InputEncoder(5).encode_X(["MKV"], 16)
    out = a.fit(x, [x[0], x[1]], verbose=0)
    assert np.isfinite(out.history["loss"][0])
    gen.update_state(a)
    np.testing.assert_array_equal(gen.create_model(64).get_weights()[0], a.get_weights()[0])


def test_2021_import_paths_are_the_legacy_modules():
    """The 2021 modules live in proteinbert.legacy; their old paths re-export the same objects."""
    import importlib

    import proteinbert

    for name in ("model_generation", "existing_model_loading", "finetuning", "conv_and_global_attention_model"):
        old, new = importlib.import_module(f"proteinbert.{name}"), importlib.import_module(f"proteinbert.legacy.{name}")
        public = [n for n in dir(new) if not n.startswith("_") and getattr(new, n).__class__.__name__ in (
            "function", "type", "ABCMeta")]
        for attr in public:
            if getattr(getattr(new, attr), "__module__", "") == new.__name__:
                assert getattr(old, attr) is getattr(new, attr), (name, attr)
    assert proteinbert.FinetuningModelGenerator is importlib.import_module("proteinbert.legacy.finetuning").FinetuningModelGenerator
    assert proteinbert.load_pretrained_model.__module__ == "proteinbert.legacy.existing_model_loading"
