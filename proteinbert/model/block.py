"""One ProteinBERT block: its layers, named as in the released model, and the updates they make.

The backbone builds its functional graph by calling each block's updates on symbolic tensors;
:class:`~proteinbert.model.chunked.ChunkedForward` calls the same updates on windows of
positions. The block wiring is therefore written once, here.

A block is not a Keras layer of its own: its layers sit directly in the backbone, under the
names of the 2021 model (``narrow-conv-block1``, ``global-attention-block1``, ...), because those
names and their order are the released weight layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from .layers import BroadcastAdd, ColumnConv1D, GlobalAttention

# Dataclass field -> layer name (``{b}`` is the block number, from 1), in the order the released
# model created them. The released weight layout follows this order.
LAYER_NAMES = {
    "global_to_seq_dense": "global-to-seq-dense-block{b}",
    "global_to_seq_reshape": "global-to-seq-reshape-block{b}",
    "narrow_conv": "narrow-conv-block{b}",
    "wide_conv": "wide-conv-block{b}",
    "seq_merge1": "seq-merge1-block{b}",
    "seq_norm1": "seq-merge1-norm-block{b}",
    "seq_dense": "seq-dense-block{b}",
    "seq_merge2": "seq-merge2-block{b}",
    "seq_norm2": "seq-merge2-norm-block{b}",
    "global_dense1": "global-dense1-block{b}",
    "attention": "global-attention-block{b}",
    "global_merge1": "global-merge1-block{b}",
    "global_norm1": "global-merge1-norm-block{b}",
    "global_dense2": "global-dense2-block{b}",
    "global_merge2": "global-merge2-block{b}",
    "global_norm2": "global-merge2-norm-block{b}",
}


@dataclass(frozen=True)
class ProteinBertBlock:
    """The layers of block ``index`` and the two updates they compute.

    >>> block = ProteinBertBlock.create(1, d_seq=8, d_global=16, n_heads=2, d_key=4, conv_kernel_size=9,
    ...                                 wide_conv_dilation_rate=5, activation="relu")
    >>> block.narrow_conv.name, block.attention.name
    ('narrow-conv-block1', 'global-attention-block1')
    """

    index: int
    global_to_seq_dense: keras.layers.Layer
    global_to_seq_reshape: keras.layers.Layer
    narrow_conv: ColumnConv1D
    wide_conv: ColumnConv1D
    seq_merge1: keras.layers.Layer
    seq_norm1: keras.layers.Layer
    seq_dense: keras.layers.Layer
    seq_merge2: keras.layers.Layer
    seq_norm2: keras.layers.Layer
    global_dense1: keras.layers.Layer
    attention: GlobalAttention
    global_merge1: keras.layers.Layer
    global_norm1: keras.layers.Layer
    global_dense2: keras.layers.Layer
    global_merge2: keras.layers.Layer
    global_norm2: keras.layers.Layer

    @classmethod
    def create(cls, index: int, *, d_seq: int, d_global: int, n_heads: int, d_key: int, conv_kernel_size: int,
               wide_conv_dilation_rate: int, activation: str | Callable, virtual_length: int | None = None,
               dtype=None) -> "ProteinBertBlock":
        """New layers for block ``index`` (numbered from 1)."""
        L = keras.layers
        act = keras.activations.get(activation) if isinstance(activation, str) else activation
        names = {field: template.format(b=index) for field, template in LAYER_NAMES.items()}
        conv = dict(filters=d_seq, kernel_size=conv_kernel_size, padding="same", activation=act, dtype=dtype)
        return cls(
            index=index,
            global_to_seq_dense=L.Dense(d_seq, activation=act, name=names["global_to_seq_dense"], dtype=dtype),
            global_to_seq_reshape=L.Reshape((1, d_seq), name=names["global_to_seq_reshape"], dtype=dtype),
            narrow_conv=ColumnConv1D(dilation_rate=1, name=names["narrow_conv"], **conv),
            wide_conv=ColumnConv1D(dilation_rate=wide_conv_dilation_rate, name=names["wide_conv"], **conv),
            seq_merge1=BroadcastAdd(name=names["seq_merge1"], dtype=dtype),
            seq_norm1=L.LayerNormalization(name=names["seq_norm1"], dtype=dtype),
            seq_dense=L.Dense(d_seq, activation=act, name=names["seq_dense"], dtype=dtype),
            seq_merge2=L.Add(name=names["seq_merge2"], dtype=dtype),
            seq_norm2=L.LayerNormalization(name=names["seq_norm2"], dtype=dtype),
            global_dense1=L.Dense(d_global, activation=act, name=names["global_dense1"], dtype=dtype),
            attention=GlobalAttention(n_heads, d_key, d_global // n_heads, virtual_length=virtual_length,
                                      name=names["attention"], dtype=dtype),
            global_merge1=L.Add(name=names["global_merge1"], dtype=dtype),
            global_norm1=L.LayerNormalization(name=names["global_norm1"], dtype=dtype),
            global_dense2=L.Dense(d_global, activation=act, name=names["global_dense2"], dtype=dtype),
            global_merge2=L.Add(name=names["global_merge2"], dtype=dtype),
            global_norm2=L.LayerNormalization(name=names["global_norm2"], dtype=dtype),
        )

    def global_to_seq(self, glob):
        """The global state as a ``(B, 1, d_seq)`` term added to every position."""
        return self.global_to_seq_reshape(self.global_to_seq_dense(glob))

    def local_update(self, local, global_term, narrow, wide):
        """``(first, second)`` normalised local states from the block input and its two convolutions.

        ``second`` is the block's local output; ``first`` is a hidden representation of its own.
        """
        first = self.seq_norm1(self.seq_merge1([local, global_term, narrow, wide]))
        second = self.seq_norm2(self.seq_merge2([first, self.seq_dense(first)]))
        return first, second

    def global_update(self, glob, attended):
        """``(first, second)`` normalised global states from the block input and its attention output."""
        first = self.global_norm1(self.global_merge1([glob, self.global_dense1(glob), attended]))
        second = self.global_norm2(self.global_merge2([first, self.global_dense2(first)]))
        return first, second
