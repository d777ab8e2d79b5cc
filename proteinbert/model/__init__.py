"""Model: layers, the backbone, and hidden-representation selection."""

from .backbone import RELEASED_CONFIG, ProteinBertBackbone, hidden_representation_model
from .chunked import ChunkedForward
from .layers import BroadcastAdd, GlobalAttention, PaddingMask

__all__ = [
    "RELEASED_CONFIG", "ProteinBertBackbone", "hidden_representation_model", "ChunkedForward",
    "BroadcastAdd", "GlobalAttention", "PaddingMask",
]
