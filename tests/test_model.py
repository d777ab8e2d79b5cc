import json

import keras
import numpy as np
import pytest

from proteinbert.errors import InputError
from proteinbert.model import GlobalAttention, ProteinBertBackbone, hidden_representation_model, with_virtual_padding
from proteinbert.tokenizer import encode_batch
from proteinbert.weights import released_weight_names

TINY = dict(n_annotations=7, d_seq=16, d_global=24, n_blocks=2, n_heads=3, d_key=4)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return ProteinBertBackbone(**TINY)


def _inputs(seqs, length, n_annotations=7, seed=0):
    rng = np.random.default_rng(seed)
    return [encode_batch(seqs, length), (rng.random((len(seqs), n_annotations)) < 0.3).astype("float32")]


def test_output_shapes_and_probabilities(tiny):
    seq_probs, annot_probs = tiny.predict(_inputs(["MKV", "ACDEFGHIK"], 16), verbose=0)
    assert seq_probs.shape == (2, 16, 26) and annot_probs.shape == (2, 7)
    np.testing.assert_allclose(seq_probs.sum(-1), 1.0, atol=1e-5)
    assert ((annot_probs > 0) & (annot_probs < 1)).all()


def test_one_instance_serves_every_length(tiny):
    for length in (5, 16, 33, 300):
        seq_probs, _ = tiny.predict(_inputs(["MKV"], length), verbose=0)
        assert seq_probs.shape == (1, length, 26)
    assert tiny.inputs[0].shape == (None, None)


def test_hidden_representation_widths(tiny):
    local_all, global_all = hidden_representation_model(tiny, "all").predict(_inputs(["MKV"], 12), verbose=0)
    # local: 2 norms per block x d_seq + output-seq; global: dense-global-input + 2 norms per block + output.
    assert local_all.shape == (1, 12, 4 * 16 + 26) and global_all.shape == (1, 24 + 4 * 24 + 7)
    assert tiny.hidden_width("local", "all") == 90 and tiny.hidden_width("global", "all") == 127
    local_last, global_last = hidden_representation_model(tiny, "last").predict(_inputs(["MKV"], 12), verbose=0)
    assert local_last.shape == (1, 12, 16) and global_last.shape == (1, 24)
    # The last layer is a slice of the concatenation: the final seq-merge2-norm block.
    np.testing.assert_allclose(local_all[..., 3 * 16 : 4 * 16], local_last, atol=1e-6)


def test_released_widths_for_default_config():
    model = ProteinBertBackbone(n_annotations=8943)
    assert model.hidden_width("local", "all") == 1562
    assert model.hidden_width("global", "all") == 15599
    assert model.hidden_width("local", "last") == 128 and model.hidden_width("global", "last") == 512


def test_default_weight_layout_matches_released(fixtures_dir):
    layout = json.loads((fixtures_dir / "default_weight_layout.json").read_text())
    model = ProteinBertBackbone(n_annotations=8943)
    assert model.count_params() == layout["total_params"] == 15_981_321
    ours = [(v.path, list(v.shape)) for v in model.weights]
    theirs = [(w["name"].removesuffix(":0"), w["shape"]) for w in layout["weights"]]
    assert ours == theirs
    assert released_weight_names(6) == [name for name, _ in theirs]


def test_layer_names_are_the_2021_names(tiny):
    names = {layer.name for layer in tiny.layers}
    for b in (1, 2):
        for stem in ("global-to-seq-dense", "global-to-seq-reshape", "narrow-conv", "wide-conv", "seq-merge1",
                     "seq-merge1-norm", "seq-dense", "seq-merge2", "seq-merge2-norm", "global-dense1",
                     "global-attention", "global-merge1", "global-merge1-norm", "global-dense2", "global-merge2",
                     "global-merge2-norm"):
            assert f"{stem}-block{b}" in names
    assert {"embedding-seq-input", "dense-global-input", "output-seq", "output-annotations"} <= names


def test_config_roundtrip_and_keras_file(tiny, tmp_path):
    config = tiny.get_config()
    clone = ProteinBertBackbone.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, ProteinBertBackbone) and reloaded.architecture == tiny.architecture
    x = _inputs(["MKVLA", "GG"], 20)
    for a, b in zip(tiny.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # same weights; kernels may reorder sums


def test_global_attention_config_roundtrip():
    layer = GlobalAttention(n_heads=2, d_key=3, d_value=5, name="ga")
    clone = GlobalAttention.from_config(layer.get_config())
    assert (clone.n_heads, clone.d_key, clone.d_value, clone.name) == (2, 3, 5, "ga")
    out = layer([np.ones((2, 4), "float32"), np.ones((2, 9, 6), "float32")])
    assert tuple(out.shape) == (2, 10)


def test_global_attention_matches_reference_formula():
    rng = np.random.default_rng(1)
    layer = GlobalAttention(n_heads=2, d_key=3, d_value=4)
    x, s = rng.normal(size=(2, 5)).astype("float32"), rng.normal(size=(2, 7, 6)).astype("float32")
    out = np.asarray(layer([x, s]))
    Wq, Wk, Wv = (np.asarray(w) for w in (layer.Wq, layer.Wk, layer.Wv))
    from scipy.special import erf  # scipy ships with scikit-learn

    gelu = lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2)))  # noqa: E731
    expected = []
    for b in range(2):
        heads = []
        for h in range(2):
            q = np.tanh(x[b] @ Wq[h])
            k = np.tanh(s[b] @ Wk[h])
            v = gelu(s[b] @ Wv[h])
            a = np.exp(k @ q / np.sqrt(3))
            heads.append((a / a.sum()) @ v)
        expected.append(np.concatenate(heads))
    np.testing.assert_allclose(out, np.array(expected), atol=1e-5)


def test_padding_takes_part_unless_masked():
    keras.utils.set_random_seed(3)
    plain = ProteinBertBackbone(**TINY)
    masked = ProteinBertBackbone(**TINY, attention_mask=True)
    masked.set_weights(plain.get_weights())
    short, long = _inputs(["MKVLAG"], 10), _inputs(["MKVLAG"], 40)
    # Without the mask the padded length changes the protein-level output (as in 2021).
    assert np.abs(plain.predict(short, verbose=0)[1] - plain.predict(long, verbose=0)[1]).max() > 1e-4
    # The mask changes outputs only where there is padding to hide.
    full = _inputs(["MKVLAGHH"], 10)
    np.testing.assert_allclose(plain.predict(full, verbose=0)[1], masked.predict(full, verbose=0)[1], atol=1e-6)
    assert np.abs(plain.predict(long, verbose=0)[1] - masked.predict(long, verbose=0)[1]).max() > 1e-4


def test_attention_mask_ignores_masked_positions():
    rng = np.random.default_rng(2)
    layer = GlobalAttention(n_heads=2, d_key=3, d_value=4)
    x, s = rng.normal(size=(1, 5)).astype("float32"), rng.normal(size=(1, 9, 6)).astype("float32")
    mask = np.array([[True] * 6 + [False] * 3])
    junk = s.copy()
    junk[:, 6:] = 100.0  # whatever sits under the mask must not matter
    np.testing.assert_allclose(np.asarray(layer([x, junk], padding_mask=mask)), np.asarray(layer([x, s[:, :6]])),
                               atol=1e-5)


def test_one_fit_step_changes_weights(tiny):
    model = ProteinBertBackbone(**TINY)
    model.compile(optimizer=keras.optimizers.Lamb(1e-2, epsilon=1e-6),
                  loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    x = _inputs(["MKVLAG", "ACDE"], 12)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, [x[0], x[1]], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())) > 40


def test_mixed_bfloat16_is_close_to_float32(tiny):
    mixed = ProteinBertBackbone(**TINY, dtype="mixed_bfloat16")
    mixed.set_weights(tiny.get_weights())
    x = _inputs(["MKVLAGHHEE", "ACDE"], 16)
    for a, b in zip(tiny.predict(x, verbose=0), mixed.predict(x, verbose=0)):
        assert b.dtype == np.float32
        assert np.abs(a - b).max() < 0.05  # bfloat16 keeps 8 bits of mantissa


@pytest.mark.parametrize("bad,match", [
    (dict(n_heads=5), "n_heads must divide d_global"),
    (dict(d_seq=0), "d_seq must be a positive int"),
    (dict(n_annotations="8943"), "n_annotations must be a positive int"),
])
def test_bad_architecture_is_a_clear_error(bad, match):
    with pytest.raises(InputError, match=match):
        ProteinBertBackbone(**{**TINY, **bad})


# -- virtual padding: the 2021 fixed-length attention at the cost of the bucket length -------------

def test_virtual_padding_keeps_the_weight_contract(tiny):
    virtual = with_virtual_padding(tiny, 512)
    assert virtual.architecture == {**tiny.architecture, "virtual_pad_length": 512}
    assert [w.path for w in virtual.weights] == [w.path for w in tiny.weights]
    assert [layer.name for layer in virtual.layers if layer.weights] == [
        layer.name for layer in tiny.layers if layer.weights]
    for a, b in zip(virtual.get_weights(), tiny.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert with_virtual_padding(tiny, None) is tiny and with_virtual_padding(virtual, 512) is virtual


def test_virtual_padding_reproduces_padding_to_its_length(tiny):
    seqs = ["MKVLAGHHKLLLPPWERTY", "MKV", "ACDEFGHIKLMNPQRSTVWY" * 2]
    x512 = _inputs(seqs, 512)
    reference = tiny.predict(x512, verbose=0)
    virtual = with_virtual_padding(tiny, 512)
    errors = {}
    for length in (48, 64, 128, 256):
        x = [x512[0][:, :length], x512[1]]
        got = virtual.predict(x, verbose=0)
        plain = tiny.predict(x, verbose=0)
        errors[length] = np.abs(got[1] - reference[1]).max()
        assert errors[length] < np.abs(plain[1] - reference[1]).max() / 10
        # Real positions' token probabilities follow (the global state feeds them); near the end of a
        # short bucket the convolutions' zero padding still differs from <PAD> states, so on average.
        real = x[0] != 25
        local_error = np.abs(got[0] - reference[0][:, :length])[real]
        assert local_error.mean() < np.abs(plain[0] - reference[0][:, :length])[real].mean()
        if length >= 128:
            assert local_error.max() < 1e-5
    # Once the pads next to the sequence are all present (2 blocks x 20 positions), only rounding is left.
    assert errors[128] < 1e-5 and errors[256] < 1e-5
    assert errors[48] > errors[128]


def test_virtual_padding_is_exact_at_and_beyond_its_length(tiny):
    virtual = with_virtual_padding(tiny, 64)
    for length in (64, 100):
        x = _inputs(["MKVLAG", "ACDEFGHIK" * 5], length)
        for a, b in zip(virtual.predict(x, verbose=0), tiny.predict(x, verbose=0)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_virtual_padding_config_roundtrip_and_keras_file(tiny, tmp_path):
    virtual = with_virtual_padding(tiny, 256)
    clone = ProteinBertBackbone.from_config(json.loads(json.dumps(virtual.get_config())))
    assert clone.virtual_pad_length == 256
    path = tmp_path / "virtual.keras"
    virtual.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.virtual_pad_length == 256
    x = _inputs(["MKVLA", "GG"], 24)
    for a, b in zip(virtual.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_virtual_padding_under_mixed_precision_is_close(tiny):
    virtual = with_virtual_padding(tiny, 512)
    bf16 = ProteinBertBackbone(**virtual.architecture, dtype="mixed_bfloat16")
    bf16.set_weights(virtual.get_weights())
    x = _inputs(["MKVLAGHHKLLLPPWERTY", "MKV"], 64)
    np.testing.assert_allclose(bf16.predict(x, verbose=0)[1], virtual.predict(x, verbose=0)[1], atol=0.05)


@pytest.mark.parametrize("bad, match", [
    (dict(virtual_pad_length=0), "virtual_pad_length must be a positive int"),
    (dict(virtual_pad_length=512, attention_mask=True), "cannot be combined with attention_mask"),
])
def test_bad_virtual_padding_is_a_clear_error(bad, match):
    with pytest.raises(InputError, match=match):
        ProteinBertBackbone(**TINY, **bad)


@pytest.mark.parametrize("kernel_size, dilation", [(9, 1), (9, 5), (3, 2), (4, 1)])
def test_convolution_gradients_match_tensorflow_autodiff(kernel_size, dilation):
    # ColumnConv1D's TensorFlow speed path has its own gradient (proteinbert.model.tf_conv); it must
    # equal autodiff through Keras's Conv1D (even kernels take Keras's path).
    import tensorflow as tf

    from proteinbert.model.layers import ColumnConv1D

    rng = np.random.default_rng(kernel_size + dilation)
    x = tf.constant(rng.normal(size=(3, 23, 6)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(3, 23, 5)).astype("float32"))
    ours = ColumnConv1D(5, kernel_size, padding="same", dilation_rate=dilation, activation="gelu")
    plain = keras.layers.Conv1D(5, kernel_size, padding="same", dilation_rate=dilation, activation="gelu")
    ours.build((None, None, 6))
    plain.build((None, None, 6))
    plain.set_weights([w + 0.1 * rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()])
    ours.set_weights(plain.get_weights())
    results = []
    for layer in (ours, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        results.append([y] + tape.gradient(loss, [x, layer.kernel.value, layer.bias.value]))
    for got, expected in zip(*results):
        assert float(tf.reduce_max(tf.abs(expected))) > 0.1
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=2e-5)
