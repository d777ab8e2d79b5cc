"""Weights: the released ``.pkl`` format (restricted unpickler) and conversions."""

from .pkl import ReleasedWeights, read_pkl, safe_unpickle, write_pkl
from .released import (
    backbone_from_released, export_released_weights, infer_architecture, load_released_weights,
    released_variables, released_weight_names,
)

__all__ = [
    "ReleasedWeights", "read_pkl", "safe_unpickle", "write_pkl", "backbone_from_released",
    "export_released_weights", "infer_architecture", "load_released_weights", "released_variables",
    "released_weight_names",
]

from .convert import load_backbone, save_backbone, weights_format  # noqa: E402

__all__ += ["load_backbone", "save_backbone", "weights_format"]
