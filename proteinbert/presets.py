"""Architecture presets: the sizes every command, the main job, the benchmark suite and the tests use.

Data only (no TensorFlow), so command-line parsers can show these defaults without starting it.

* ``released``: the 2021 model (file :data:`RELEASED_WEIGHTS_FILE`); its sizes are the backbone's
  defaults;
* ``main-job``: what a 2-core CPU pretrains in minutes (the main job's model);
* ``tiny``: seconds per step; CI settings and tests.

>>> preset("tiny")["d_seq"], preset("released", n_blocks=2)["n_blocks"]
(16, 2)
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import InputError

#: The released weights file (ProteinBERT 2021). Its checksum was never published with it.
RELEASED_WEIGHTS_FILE = "epoch_92400_sample_23500000.pkl"

#: Presets with published weights, and their file (found where the released file is looked for).
PRESET_WEIGHTS = MappingProxyType({"released": RELEASED_WEIGHTS_FILE})

#: Backbone keyword arguments that describe an architecture (what a caller may set).
ARCHITECTURE_KEYS = ("n_annotations", "vocab_size", "d_seq", "d_global", "n_blocks", "n_heads", "d_key",
                     "conv_kernel_size", "wide_conv_dilation_rate", "activation", "attention_mask")

PRESETS = MappingProxyType({
    "released": MappingProxyType(dict(n_annotations=8943, d_seq=128, d_global=512, n_blocks=6, n_heads=4, d_key=64,
                                      conv_kernel_size=9, wide_conv_dilation_rate=5)),
    # The released architecture takes hours per epoch on 2 CPU cores.
    "main-job": MappingProxyType(dict(d_seq=64, d_global=256, n_blocks=4, n_heads=4, d_key=32)),
    "tiny": MappingProxyType(dict(n_annotations=16, d_seq=16, d_global=32, n_blocks=2, n_heads=2, d_key=8)),
})


def preset(name: str, **overrides) -> dict:
    """The sizes of preset ``name`` with ``overrides`` applied (a new dict)."""
    if name not in PRESETS:
        raise InputError(f"unknown architecture preset {name!r}; presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InputError(f"unknown architecture keys {unknown}; allowed: {', '.join(ARCHITECTURE_KEYS)}")
    return {**PRESETS[name], **overrides}


__all__ = ["ARCHITECTURE_KEYS", "PRESETS", "PRESET_WEIGHTS", "RELEASED_WEIGHTS_FILE", "preset"]
