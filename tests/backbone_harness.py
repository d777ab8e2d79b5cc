"""One tiny-backbone factory and one backbone check, shared by the tests (keras-hub's
``run_backbone_test`` in spirit): serialisation, every length, dtype policies, save and reload."""

from __future__ import annotations

import numpy as np

from proteinbert.presets import preset
from proteinbert.tokenizer import encode_batch

SEQS = ["MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "M"]


def tiny_sizes(**overrides) -> dict:
    """The ``tiny`` preset's sizes with ``overrides``, without ``n_annotations`` (APIs such as
    pretraining take that from the data; add it where a backbone is built directly)."""
    sizes = preset("tiny", **overrides)
    sizes.pop("n_annotations")
    return sizes


#: The one-block model of the plumbing tests (commands, files, fine-tuning runs): fractions of a second a step.
MICRO = tiny_sizes(d_seq=8, d_global=16, n_blocks=1, d_key=4)


def tiny_backbone(**overrides):
    """A randomly initialised backbone of the ``tiny`` preset (``overrides`` change sizes or settings)."""
    from proteinbert.model import ProteinBertBackbone

    return ProteinBertBackbone(**{**preset("tiny"), **overrides})


def inputs(backbone, seqs=SEQS, length: int | None = None, seed: int = 0):
    """``[tokens, annotations]`` for ``seqs`` padded to ``length`` (default: the longest + 2)."""
    length = length or max(map(len, seqs)) + 2
    rng = np.random.default_rng(seed)
    annotations = (rng.random((len(seqs), backbone.n_annotations)) < 0.2).astype("float32")
    return [encode_batch(seqs, length), annotations]


def run_backbone_test(backbone, tmp_path, atol: float = 1e-6) -> None:
    """Assert the properties every backbone configuration must have."""
    import keras

    from proteinbert.model import ProteinBertBackbone, rebuilt

    x = inputs(backbone)
    seq_probs, annot_probs = (np.asarray(t) for t in backbone(x))
    # shapes and probabilities
    assert seq_probs.shape == (len(SEQS), x[0].shape[1], backbone.vocab_size)
    assert annot_probs.shape == (len(SEQS), backbone.n_annotations)
    np.testing.assert_allclose(seq_probs.sum(-1), 1.0, atol=1e-5)
    assert ((annot_probs > 0) & (annot_probs < 1)).all()
    # one instance, every length: a longer batch works and gives per-position outputs of that length
    longer = inputs(backbone, length=x[0].shape[1] + 37)
    assert np.asarray(backbone(longer)[0]).shape[1] == x[0].shape[1] + 37
    # the config rebuilds the same architecture; the blocks are the model's own layers
    config = backbone.get_config()
    again = ProteinBertBackbone.from_config(config)
    assert again.get_config() == config
    assert len(backbone.blocks) == backbone.n_blocks
    assert [b.attention.name for b in backbone.blocks] == [
        f"global-attention-block{i}" for i in range(1, backbone.n_blocks + 1)]
    assert all(backbone.get_layer(b.narrow_conv.name) is b.narrow_conv for b in backbone.blocks)
    # weights copied into a rebuilt model give the same numbers
    copy = rebuilt(backbone)
    np.testing.assert_allclose(np.asarray(copy(x)[1]), annot_probs, atol=atol)
    # save and reload (.keras), in a fresh object
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert isinstance(reloaded, ProteinBertBackbone) and reloaded.get_config() == config
    np.testing.assert_allclose(np.asarray(reloaded(x)[0]), seq_probs, atol=atol)
    # a mixed-precision copy computes in bfloat16 and still answers in float32, close to float32
    mixed = rebuilt(backbone, dtype="mixed_bfloat16")
    mixed_annot = mixed(x)[1]
    assert keras.backend.standardize_dtype(mixed_annot.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(mixed_annot), annot_probs, atol=0.05)
