import os
import pickle

import numpy as np
import pytest

from proteinbert.errors import UnsafePickleError, WeightsError
from proteinbert.model import ProteinBertBackbone, hidden_representation_model
from proteinbert.tokenizer import encode_batch
from proteinbert.weights import (
    ReleasedWeights, backbone_from_released, export_released_weights, load_backbone, load_released_weights, read_pkl,
    save_backbone, write_pkl,
)

SMALL = dict(d_seq=32, d_global=64, n_blocks=2, n_heads=4, d_key=16)


@pytest.fixture(scope="module")
def small_pkl(fixtures_dir):
    return fixtures_dir / "small_lamb.pkl"


@pytest.fixture(scope="module")
def expected(fixtures_dir):
    return np.load(fixtures_dir / "small_expected.npz")


@pytest.fixture(scope="module")
def small_model(small_pkl):
    return backbone_from_released(small_pkl)


def test_read_pkl_contents(small_pkl):
    w = read_pkl(small_pkl)
    assert w.n_annotations == 50 and len(w.model_weights) == 53
    # optimizer state: iterations + 53 first + 53 second moments
    assert len(w.optimizer_weights) == 107 and int(w.optimizer_weights[0]) == 16


def test_architecture_is_inferred(small_model):
    assert small_model.architecture == dict(n_annotations=50, vocab_size=26, **SMALL, conv_kernel_size=9,
                                            wide_conv_dilation_rate=5, activation="gelu", attention_mask=False,
                                            virtual_pad_length=None)


@pytest.mark.parametrize("suffix", ["", "_L2"])
def test_parity_with_2021_outputs_from_one_instance(small_model, expected, suffix):
    # Both recorded lengths (64 and 128) go through the SAME model instance.
    X, A = expected["X_seq" + suffix], expected["X_annotations" + suffix]
    assert (encode_batch(list(expected["seqs"]), X.shape[1]) == X).all()
    out_seq, out_annot = small_model.predict([X, A], verbose=0)
    np.testing.assert_allclose(out_seq, expected["output_seq" + suffix], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out_annot, expected["output_annotations" + suffix], rtol=0, atol=1e-5)
    hidden_seq, hidden_global = hidden_representation_model(small_model, "all").predict([X, A], verbose=0)
    assert hidden_seq.shape[-1] == 154 and hidden_global.shape[-1] == 370
    np.testing.assert_allclose(hidden_seq, expected["hidden_seq" + suffix], rtol=0, atol=1e-4)
    np.testing.assert_allclose(hidden_global, expected["hidden_global" + suffix], rtol=0, atol=1e-4)


def test_unsafe_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps((50, [Evil()], [])))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refusing to load io\.open"):
        read_pkl(bad)
    assert not marker.exists()


def test_os_system_pickle_is_refused(tmp_path):
    bad = tmp_path / "evil2.pkl"
    bad.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "x").encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match="refusing"):
        read_pkl(bad)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("payload,match", [
    (b"not a pickle at all", "not a readable weights pickle"),
    (pickle.dumps({"a": 1}), "expected a tuple"),
    (pickle.dumps(("50", [], [])), "n_annotations must be a positive int"),
    (pickle.dumps((50, ["x"], [])), "list of numpy arrays"),
])
def test_wrong_format_is_a_clear_error(tmp_path, payload, match):
    path = tmp_path / "w.pkl"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match=match):
        read_pkl(path)


def test_truncated_pickle(tmp_path, small_pkl):
    path = tmp_path / "cut.pkl"
    path.write_bytes(small_pkl.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="cut.pkl"):
        read_pkl(path)


def test_every_mismatch_is_reported_at_once(small_pkl):
    model = ProteinBertBackbone(n_annotations=49, **{**SMALL, "d_key": 8})
    with pytest.raises(WeightsError) as info:
        load_released_weights(model, small_pkl)
    message = str(info.value)
    assert "n_annotations: the file has 50, the model 49" in message
    assert "global-attention-block1/Wq" in message and "global-attention-block2/Wk" in message
    assert "output-annotations/kernel" in message and "small_lamb.pkl" in message


def test_count_mismatch_names_the_blocks(small_pkl):
    with pytest.raises(WeightsError, match="weight count: the file has 53 arrays, the model expects 76"):
        load_released_weights(ProteinBertBackbone(n_annotations=50, **{**SMALL, "n_blocks": 3}), small_pkl)


def test_conflicting_override_is_refused(small_pkl):
    with pytest.raises(WeightsError, match="d_seq=128 was asked for but the file implies d_seq=32"):
        backbone_from_released(small_pkl, d_seq=128)


def test_pkl_roundtrip_is_exact(tmp_path, small_pkl, small_model):
    out = tmp_path / "again.pkl"
    original = read_pkl(small_pkl)
    write_pkl(out, export_released_weights(small_model, original.optimizer_weights))
    again = read_pkl(out)
    assert again.n_annotations == 50
    for a, b in zip(original.model_weights + original.optimizer_weights, again.model_weights + again.optimizer_weights):
        np.testing.assert_array_equal(a, b)
    # Protocol 4 keeps the file readable by the 2021 stack (Python 3.6+).
    assert out.read_bytes()[:2] == b"\x80\x04"
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5", ".pkl"])
def test_convert_formats_keep_outputs(tmp_path, small_model, expected, suffix):
    path = tmp_path / f"model{suffix}"
    save_backbone(small_model, path)
    reloaded = load_backbone(path, architecture=small_model.architecture)
    x = [expected["X_seq"], expected["X_annotations"]]
    for a, b in zip(small_model.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_convert_weights_reads_a_pretraining_save_directory(tmp_path, small_model, small_pkl, capsys):
    """A save directory (what `pretrain` writes) converts like its .pkl, optimizer state dropped."""
    from proteinbert.cli import convert_weights as convert_cli

    save = tmp_path / "epoch_2_sample_800"
    save.mkdir()
    (save / "epoch_2_sample_800.pkl").write_bytes(small_pkl.read_bytes())
    out = tmp_path / "weights.pkl"
    assert convert_cli.main([str(save), str(out)]) == 0, capsys.readouterr().err
    got = read_pkl(out)
    assert got.optimizer_weights == [] and got.n_annotations == 50
    for a, b in zip(read_pkl(small_pkl).model_weights, got.model_weights):
        np.testing.assert_array_equal(a, b)
    empty = tmp_path / "epoch_4_sample_1600"
    empty.mkdir()
    assert convert_cli.main([str(empty), str(tmp_path / "other.pkl")]) == 1
    assert f"{empty} is a directory without a .pkl weights file" in capsys.readouterr().err
    assert not (tmp_path / "other.pkl").exists()


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.pkl"
    target.write_bytes(b"previous good file")
    with pytest.raises(Exception):  # a lambda cannot be pickled: the write fails midway
        write_pkl(target, ReleasedWeights(50, [np.zeros(2)], [lambda: 0]))
    assert target.read_bytes() == b"previous good file" and os.listdir(tmp_path) == ["out.pkl"]
