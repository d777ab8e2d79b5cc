"""Every backbone configuration passes the shared backbone check (tests/backbone_harness.py)."""

import numpy as np
import pytest

from backbone_harness import inputs, run_backbone_test, tiny_backbone


@pytest.mark.parametrize("settings", [
    {},
    {"n_blocks": 1, "n_heads": 4, "d_key": 4},
    {"attention_mask": True},
    {"virtual_pad_length": 64},
    {"activation": "relu", "conv_kernel_size": 5, "wide_conv_dilation_rate": 3},
], ids=["tiny", "one-block", "attention-mask", "virtual-padding", "other-activation"])
def test_backbone(settings, tmp_path):
    run_backbone_test(tiny_backbone(**settings), tmp_path)


def test_block_updates_are_the_backbone_wiring():
    """Recomputing the first block from its ProteinBertBlock gives the backbone's own hidden state."""
    import keras

    backbone = tiny_backbone()
    x = inputs(backbone)
    block = backbone.blocks[0]
    probe = keras.Model(backbone.inputs, [backbone.get_layer("embedding-seq-input").output,
                                          backbone.get_layer("dense-global-input").output,
                                          backbone.get_layer("seq-merge2-norm-block1").output,
                                          backbone.get_layer("global-merge2-norm-block1").output])
    local, glob, local_out, glob_out = (np.asarray(t) for t in probe(x))
    _, local_again = block.local_update(local, block.global_to_seq(glob), block.narrow_conv(local),
                                        block.wide_conv(local))
    np.testing.assert_allclose(np.asarray(local_again), local_out, atol=1e-5)
    attended = block.attention([glob, local_again])
    _, glob_again = block.global_update(glob, attended)
    np.testing.assert_allclose(np.asarray(glob_again), glob_out, atol=1e-5)


def test_presets_are_the_defaults():
    from proteinbert.benchmark_suite import TINY_ARCHITECTURE
    from proteinbert.cli._common import ARCHITECTURE_OPTIONS
    from proteinbert.model import RELEASED_CONFIG, ProteinBertBackbone
    from proteinbert.pipeline import PipelineSettings
    from proteinbert.presets import ARCHITECTURE_KEYS, PRESETS, preset
    from proteinbert.errors import InputError

    backbone = ProteinBertBackbone(n_annotations=3)  # the backbone's defaults are the released sizes
    assert {k: v for k, v in backbone.architecture.items() if k in RELEASED_CONFIG and k != "n_annotations"} == {
        k: v for k, v in PRESETS["released"].items() if k != "n_annotations"}
    assert PipelineSettings().architecture == dict(PRESETS["main-job"])
    assert TINY_ARCHITECTURE == dict(PRESETS["tiny"])
    assert set(ARCHITECTURE_OPTIONS) <= set(ARCHITECTURE_KEYS) <= set(backbone.architecture)
    with pytest.raises(InputError, match="unknown architecture preset 'huge'"):
        preset("huge")
    with pytest.raises(InputError, match=r"unknown architecture keys \['d_sequence'\]"):
        preset("tiny", d_sequence=3)
