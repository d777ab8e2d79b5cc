"""Model: layers, the block, the backbone, and hidden-representation selection."""

from .backbone import RELEASED_CONFIG, ProteinBertBackbone, hidden_representation_model, rebuilt, with_virtual_padding
from .block import ProteinBertBlock
from .chunked import ChunkedForward
from .layers import BroadcastAdd, ColumnConv1D, GlobalAttention, PaddingMask, PadTokens

__all__ = [
    "RELEASED_CONFIG", "ProteinBertBackbone", "ProteinBertBlock", "hidden_representation_model", "rebuilt",
    "with_virtual_padding", "ChunkedForward", "BroadcastAdd", "ColumnConv1D", "GlobalAttention", "PaddingMask",
    "PadTokens",
]
