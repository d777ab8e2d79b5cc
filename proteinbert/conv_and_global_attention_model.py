"""2021 import path of :mod:`proteinbert.legacy.conv_and_global_attention_model` (its names, re-exported)."""

from .legacy.conv_and_global_attention_model import (  # noqa: F401
    GlobalAttention, create_model, get_model_with_hidden_layers_as_outputs,
)
