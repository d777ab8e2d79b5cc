"""2021 import path of :mod:`proteinbert.legacy.existing_model_loading` (its names, re-exported)."""

from .legacy.existing_model_loading import (  # noqa: F401
    DEFAULT_LOCAL_MODEL_DUMP_DIR, DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME, DEFAULT_REMOTE_MODEL_DUMP_URL,
    WEIGHTS_ENV_VAR, load_pretrained_model, load_pretrained_model_from_dump, resolve_weights_path,
)
