"""2021 import path of :mod:`proteinbert.legacy.model_generation` (its names, re-exported)."""

from .legacy.model_generation import (  # noqa: F401
    InputEncoder, PretrainingModelGenerator, compile_pretraining_model, translate_create_model_kwargs,
)
