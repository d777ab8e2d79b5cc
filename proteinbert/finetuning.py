"""2021 import path of :mod:`proteinbert.legacy.finetuning` (its names, re-exported)."""

from .legacy.finetuning import (  # noqa: F401
    FinetuningModelGenerator, OutputSpec, OutputType, evaluate_by_len, finetune,
    get_model_with_hidden_layers_as_outputs,
)
