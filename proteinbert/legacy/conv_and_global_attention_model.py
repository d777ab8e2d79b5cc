"""2021 module names: ``create_model``, ``get_model_with_hidden_layers_as_outputs``, ``GlobalAttention``."""

from __future__ import annotations

from ..model.backbone import ProteinBertBackbone, hidden_representation_model
from ..model.layers import GlobalAttention
from ..tokenizer import VOCAB_SIZE


def create_model(seq_len=None, vocab_size: int = VOCAB_SIZE, n_annotations: int | None = None, d_hidden_seq: int = 128,
                 d_hidden_global: int = 512, n_blocks: int = 6, n_heads: int = 4, d_key: int = 64,
                 conv_kernel_size: int = 9, wide_conv_dilation_rate: int = 5, activation: str = "gelu"):
    """The 2021 signature; ``seq_len`` is accepted and ignored (the model takes every length)."""
    return ProteinBertBackbone(
        n_annotations=n_annotations, vocab_size=vocab_size, d_seq=d_hidden_seq, d_global=d_hidden_global,
        n_blocks=n_blocks, n_heads=n_heads, d_key=d_key, conv_kernel_size=conv_kernel_size,
        wide_conv_dilation_rate=wide_conv_dilation_rate, activation=activation,
    )


def get_model_with_hidden_layers_as_outputs(model):
    """Outputs ``[local (B, L, 1562), global (B, 15599)]`` for the released model (2021 concatenation)."""
    return hidden_representation_model(model, layers="all")


__all__ = ["create_model", "get_model_with_hidden_layers_as_outputs", "GlobalAttention"]
