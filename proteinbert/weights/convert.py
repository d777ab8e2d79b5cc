"""Open and save backbones in every supported format, chosen by file extension.

* ``.pkl`` — the released 2021 format (readable by the 2021 code);
* ``.keras`` — a whole Keras model file (architecture + weights);
* ``.weights.h5`` — Keras weights only (the architecture must be given to read it back).

>>> model = load_backbone("small_lamb.pkl")  # doctest: +SKIP
>>> save_backbone(model, "small.keras")  # doctest: +SKIP
"""

from __future__ import annotations

import keras

from ..errors import InputError, WeightsError
from ..io_utils import atomic_write_path
from ..model.backbone import ProteinBertBackbone, rebuilt
from .locate import FORMATS, resolve_weights, weights_file, weights_format  # noqa: F401  (FORMATS re-exported)
from .pkl import write_pkl
from .released import backbone_from_released, check_finite, export_released_weights

def _with_dtype(model: ProteinBertBackbone, dtype) -> ProteinBertBackbone:
    return model if dtype is None or dtype == model.policy_name else rebuilt(model, dtype=dtype)


def load_backbone(path=None, dtype=None, architecture: dict | None = None) -> ProteinBertBackbone:
    """Open a backbone from ``.pkl``, ``.keras``, (with ``architecture``) ``.weights.h5``, or a
    pretraining save directory (``epoch_E_sample_S/``, which holds ``epoch_E_sample_S.pkl``).

    ``path`` may also name a preset with published weights (``load_backbone("released")``: the
    released file in ``~/proteinbert_models/``). ``path=None``: ``$PROTEINBERT_WEIGHTS``, else that
    file (see :func:`~proteinbert.weights.locate.resolve_weights`)."""
    from ..hardware import guard_onednn_concurrency

    guard_onednn_concurrency()  # often a script's first TensorFlow work (see its docstring)
    path = weights_file(resolve_weights(path))
    fmt = weights_format(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if fmt == ".pkl":
        return backbone_from_released(path, **({"dtype": dtype} if dtype else {}))
    if fmt == ".keras":
        model = open_keras_model(path)
        if not isinstance(model, ProteinBertBackbone):
            raise WeightsError(f"{path}: holds a {type(model).__name__}, not a ProteinBertBackbone")
        check_finite(((v.path, v.numpy()) for v in model.weights), str(path))
        return _with_dtype(model, dtype)
    if architecture is None:
        raise InputError(f"{path}: a .weights.h5 file holds no architecture; pass architecture=...")
    model = ProteinBertBackbone(**architecture, dtype=dtype)
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise WeightsError(f"{path}: weights do not fit the architecture {architecture} ({exc})") from exc
    check_finite(((v.path, v.numpy()) for v in model.weights), str(path))
    return model


def open_keras_model(path):
    """``keras.saving.load_model(path, compile=False)`` with errors that say what is wrong with the file."""
    import zipfile

    if not zipfile.is_zipfile(path):  # Keras would report a truncated or foreign file as "File not found"
        raise WeightsError(f"{path}: not a .keras file (those are zip archives; this one is truncated or "
                           "of another format)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{path}: not a loadable .keras model ({type(exc).__name__}: {exc})") from exc


def save_backbone(model: ProteinBertBackbone, path, optimizer_weights=None) -> None:
    """Save atomically in the format named by ``path``'s extension."""
    fmt = weights_format(path)
    if fmt == ".pkl":
        write_pkl(path, export_released_weights(model, optimizer_weights))
        return
    with atomic_write_path(path) as tmp:
        if fmt == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
