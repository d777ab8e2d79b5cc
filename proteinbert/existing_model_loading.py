"""Load the released ProteinBERT weights from a local file (never downloads, never prompts).

The 2021 functions and arguments are kept: ``load_pretrained_model(local_model_dump_dir=...,
local_model_dump_file_name=..., create_model_kwargs=...)``. The file can also be named by the
``PROTEINBERT_WEIGHTS`` environment variable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import WeightsError
from .model_generation import InputEncoder, PretrainingModelGenerator, translate_create_model_kwargs
from .weights.pkl import read_pkl
from .weights.released import infer_architecture

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL_DUMP_DIR = "~/proteinbert_models"
DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME = "epoch_92400_sample_23500000.pkl"
DEFAULT_REMOTE_MODEL_DUMP_URL = "ftp://ftp.cs.huji.ac.il/users/nadavb/protein_bert/epoch_92400_sample_23500000.pkl"
WEIGHTS_ENV_VAR = "PROTEINBERT_WEIGHTS"


def resolve_weights_path(local_model_dump_dir=None, local_model_dump_file_name=None) -> Path:
    """Where the weights file is: explicit arguments, else ``$PROTEINBERT_WEIGHTS``, else the 2021 default."""
    if local_model_dump_dir is None and local_model_dump_file_name is None and os.environ.get(WEIGHTS_ENV_VAR):
        path = Path(os.environ[WEIGHTS_ENV_VAR]).expanduser()
    else:
        path = Path(local_model_dump_dir or DEFAULT_LOCAL_MODEL_DUMP_DIR).expanduser() / (
            local_model_dump_file_name or DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME)
    if not path.is_file():
        raise WeightsError(
            f"ProteinBERT weights not found at {path}. Download the released file "
            f"({DEFAULT_LOCAL_MODEL_DUMP_FILE_NAME}, ~180 MB) from {DEFAULT_REMOTE_MODEL_DUMP_URL} "
            f"and put it at {path}, or point ${WEIGHTS_ENV_VAR} (or local_model_dump_dir / "
            "local_model_dump_file_name) at your copy."
        )
    return path


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
