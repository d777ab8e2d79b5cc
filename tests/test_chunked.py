"""ChunkedForward: the chunk-by-chunk forward pass equals the ordinary one."""

import numpy as np
import pytest

from proteinbert.cli import embed as embed_cli
from proteinbert.embeddings import EmbeddingSettings, embed
from proteinbert.errors import InputError
from proteinbert.model import ChunkedForward, ProteinBertBackbone, hidden_representation_model
from proteinbert.weights import backbone_from_released
from backbone_harness import tiny_sizes

TINY = dict(tiny_sizes(), n_annotations=7)


def _model(**overrides):
    import keras

    keras.utils.set_random_seed(3)
    return ProteinBertBackbone(**{**TINY, **overrides})


def _inputs(batch, length, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 26, (batch, length)).astype("int32")
    tokens[1, length // 2:] = 25  # a padded row
    return tokens, (rng.random((batch, 7)) < 0.3).astype("float32")


@pytest.mark.parametrize("attention_mask", [False, True])
@pytest.mark.parametrize("length,chunk", [(50, 16), (37, 37), (10, 64), (100, 7), (64, 32)])
def test_predict_equals_full_forward(attention_mask, length, chunk):
    model = _model(attention_mask=attention_mask)
    tokens, annotations = _inputs(3, length)
    full = model.predict([tokens, annotations], verbose=0)
    chunked = ChunkedForward(model, chunk).predict(tokens, annotations)
    # chunk 7 is smaller than the wide convolution's reach (20): halos then span several chunks.
    assert ChunkedForward(model, chunk).halo == 20
    for a, b in zip(full, chunked):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-6)


@pytest.mark.parametrize("layers", ["all", "last"])
def test_hidden_equals_hidden_model(layers):
    model = _model()
    tokens, annotations = _inputs(2, 90, seed=1)
    local, glob = hidden_representation_model(model, layers).predict([tokens, annotations], verbose=0)
    c_local, c_glob = ChunkedForward(model, 32).hidden(tokens, annotations, layers)
    assert c_local.shape == local.shape and c_glob.shape == glob.shape
    np.testing.assert_allclose(c_local, local, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c_glob, glob, rtol=0, atol=1e-5)
    assert ChunkedForward(model, 32).hidden(tokens, annotations, layers, per_residue=False)[0] is None


def test_released_weights_parity_chunked(fixtures_dir):
    model = backbone_from_released(fixtures_dir / "small_lamb.pkl")
    expected = np.load(fixtures_dir / "small_expected.npz")
    for suffix in ("", "_L2"):  # lengths 64 and 128, chunks of 24 positions
        X, A = expected["X_seq" + suffix], expected["X_annotations" + suffix]
        out_seq, out_annot = ChunkedForward(model, 24).predict(X, A)
        np.testing.assert_allclose(out_seq, expected["output_seq" + suffix], rtol=0, atol=1e-5)
        np.testing.assert_allclose(out_annot, expected["output_annotations" + suffix], rtol=0, atol=1e-5)
        hidden_seq, hidden_global = ChunkedForward(model, 24).hidden(X, A, "all")
        np.testing.assert_allclose(hidden_seq, expected["hidden_seq" + suffix], rtol=0, atol=1e-4)
        np.testing.assert_allclose(hidden_global, expected["hidden_global" + suffix], rtol=0, atol=1e-4)


def test_mixed_bfloat16_close_to_float32():
    tokens, annotations = _inputs(2, 80, seed=2)
    full = _model().predict([tokens, annotations], verbose=0)
    bf16 = ChunkedForward(_model(dtype="mixed_bfloat16"), 24).predict(tokens, annotations)
    np.testing.assert_allclose(bf16[0], full[0], atol=3e-2)
    np.testing.assert_allclose(bf16[1], full[1], atol=3e-2)


def test_embedder_uses_chunks_beyond_chunk_length(shared_data):
    from proteinbert.data.fasta import read_fasta

    seqs = [r.seq for _, r in zip(range(12), read_fasta(shared_data / "swissprot_go_2014" / "sp2014_go.2k.fasta.gz"))]
    model = _model(n_annotations=6)
    for layers in ("last", "all"):
        whole = embed(model, seqs, EmbeddingSettings(layers=layers, per_residue=True, chunk_length=None))
        chunked = embed(model, seqs, EmbeddingSettings(layers=layers, per_residue=True, chunk_length=48))
        np.testing.assert_allclose(chunked.protein, whole.protein, rtol=0, atol=1e-5)
        for a, b in zip(chunked.residue, whole.residue):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_bad_chunk_length():
    model = _model()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="chunk_length"):
            ChunkedForward(model, bad)
        with pytest.raises(InputError, match="chunk_length"):
            EmbeddingSettings(chunk_length=bad)
    with pytest.raises(InputError, match="tokens must be"):
        ChunkedForward(model, 8).predict(np.zeros((2, 5), "int32"), np.zeros((3, 7), "float32"))
    assert embed_cli.main(["--weights", "w.pkl", "-i", "x.fa", "-o", "o.h5", "--chunk-length", "-1"]) == 2


def test_virtual_padding_backbone_is_exact_beyond_its_length_and_refused_below():
    from proteinbert.model import with_virtual_padding

    plain = _model()
    virtual = with_virtual_padding(plain, 64)
    tokens, annotations = _inputs(2, 120)
    got = ChunkedForward(virtual, chunk_length=32).predict(tokens, annotations)
    for a, b in zip(got, plain.predict([tokens, annotations], verbose=0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="virtual_pad_length=64.*length 40"):
        ChunkedForward(virtual, chunk_length=16).predict(tokens[:, :40], annotations)
