"""Weights: the released ``.pkl`` format (restricted unpickler), conversions, and where the file is.

Names are resolved lazily, so :func:`resolve_weights` (in :mod:`proteinbert.weights.locate`) can
be used before Keras and TensorFlow start.
"""

from .locate import DOWNLOAD_URL, RELEASED_WEIGHTS_FILE, WEIGHTS_ENV_VAR, default_weights_path, resolve_weights

_EXPORTS = {
    "ReleasedWeights": "pkl", "read_pkl": "pkl", "safe_unpickle": "pkl", "write_pkl": "pkl",
    "backbone_from_released": "released", "export_released_weights": "released",
    "infer_architecture": "released", "load_released_weights": "released", "released_variables": "released",
    "released_weight_names": "released",
    "load_backbone": "convert", "save_backbone": "convert", "weights_format": "convert",
}

__all__ = sorted(_EXPORTS) + [
    "DOWNLOAD_URL", "RELEASED_WEIGHTS_FILE", "WEIGHTS_ENV_VAR", "default_weights_path", "resolve_weights",
]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'proteinbert.weights' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
