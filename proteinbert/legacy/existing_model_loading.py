"""Load the released ProteinBERT weights from a local file (never downloads, never prompts).

The 2021 functions and arguments are kept: ``load_pretrained_model(local_model_dump_dir=...,
local_model_dump_file_name=..., create_model_kwargs=...)``. The file can also be named by the
``PROTEINBERT_WEIGHTS`` environment variable.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import WeightsError
from ..weights.locate import DEFAULT_WEIGHTS_DIR, DOWNLOAD_URL, RELEASED_WEIGHTS_FILE, resolve_weights
from ..weights.locate import WEIGHTS_ENV_VAR  # noqa: F401  (kept for 2021-style imports)
from ..weights.pkl import read_pkl
from ..weights.released import infer_architecture
from .model_generation import _LEGACY_KWARGS, InputEncoder, PretrainingModelGenerator, translate_create_model_kwargs

logger = logging.getLogger(__name__)

_MODERN_TO_LEGACY = {modern: legacy for legacy, modern in _LEGACY_KWARGS.items()}

DEFAULT_LOCAL_MODEL_DUMP_DIR = DEFAULT_WEIGHTS_DIR
DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME = RELEASED_WEIGHTS_FILE
DEFAULT_REMOTE_MODEL_DUMP_URL = DOWNLOAD_URL + RELEASED_WEIGHTS_FILE


def resolve_weights_path(local_model_dump_dir=None, local_model_dump_file_name=None) -> Path:
    """Where the weights file is: the explicit 2021 arguments (either one; the other defaults),
    else :func:`~proteinbert.weights.locate.resolve_weights` (``$PROTEINBERT_WEIGHTS``, then
    ``~/proteinbert_models/``)."""
    explicit = None
    if local_model_dump_dir is not None or local_model_dump_file_name is not None:
        explicit = Path(local_model_dump_dir or DEFAULT_LOCAL_MODEL_DUMP_DIR).expanduser() / (
            local_model_dump_file_name or DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME)
    return resolve_weights(explicit)


def load_pretrained_model_from_dump(dump_file_path, create_model_function=None, create_model_kwargs=None,
                                    optimizer_class=None, lr: float = 2e-4, other_optimizer_kwargs=None,
                                    annots_loss_weight: float = 1.0, load_optimizer_weights: bool = False):
    """Read a released-format ``.pkl`` -> ``(PretrainingModelGenerator, InputEncoder)``.

    The architecture is taken from ``create_model_kwargs`` (2021 names accepted); arguments left
    out are inferred from the file's array shapes.
    """
    weights = read_pkl(dump_file_path)
    inferred = infer_architecture(weights)
    asked = translate_create_model_kwargs(create_model_kwargs)
    conflicts = [f"{k}={v!r} (file implies {inferred[k]!r})" for k, v in asked.items()
                 if k in inferred and k != "n_annotations" and inferred[k] != v]
    if conflicts:
        raise WeightsError(f"{dump_file_path}: create_model_kwargs do not fit the weights: {', '.join(conflicts)}")
    inferred.pop("n_annotations")
    kwargs = {**inferred, **asked}
    if create_model_function is not None:  # it takes the 2021 keyword names
        kwargs = {_MODERN_TO_LEGACY.get(k, k): v for k, v in kwargs.items()}
    generator = PretrainingModelGenerator(
        create_model_function, weights.n_annotations, kwargs, optimizer_class, lr, other_optimizer_kwargs,
        model_weights=weights.model_weights,
        optimizer_weights=weights.optimizer_weights if load_optimizer_weights else None,
        annots_loss_weight=annots_loss_weight,
    )
    return generator, InputEncoder(weights.n_annotations)


def load_pretrained_model(local_model_dump_dir=None, local_model_dump_file_name=None, remote_model_dump_url=None,
                          download_model_dump_if_not_exists: bool = False, validate_downloading: bool = False,
                          create_model_function=None, create_model_kwargs=None, optimizer_class=None,
                          lr: float = 2e-4, other_optimizer_kwargs=None, annots_loss_weight: float = 1.0,
                          load_optimizer_weights: bool = False):
    """The 2021 entry point. Reads a local file only: ``remote_model_dump_url``,
    ``download_model_dump_if_not_exists`` and ``validate_downloading`` are accepted and ignored
    (no download, no prompt); a missing file raises an error saying where to get it.
    """
    if download_model_dump_if_not_exists:
        logger.info("proteinbert never downloads weights; reading a local file only")
    path = resolve_weights_path(local_model_dump_dir, local_model_dump_file_name)
    return load_pretrained_model_from_dump(path, create_model_function, create_model_kwargs, optimizer_class, lr,
                                           other_optimizer_kwargs, annots_loss_weight, load_optimizer_weights)
