"""Custom layers of ProteinBERT, written with ``keras.ops`` only."""

from __future__ import annotations

import math

import keras
from keras import ops

from ..tokenizer import PAD_ID


@keras.saving.register_keras_serializable(package="proteinbert")
class GlobalAttention(keras.layers.Layer):
    """Linear-cost global attention: the global state queries every sequence position.

    Per head ``h``: ``q = tanh(x Wq[h])``, ``k_i = tanh(s_i Wk[h])``, ``v_i = gelu(s_i Wv[h])``,
    ``a = softmax_i(q.k_i / sqrt(d_key))``, ``out_h = sum_i a_i v_i``; heads are concatenated.
    Cost is O(L). Called as ``layer([global_state, seq_state])``, optionally with a boolean
    ``padding_mask`` of shape ``(batch, L)`` (True = attend); without a mask ``<PAD>`` positions take part
    in the softmax, as in the released model.

    >>> import numpy as np
    >>> layer = GlobalAttention(n_heads=2, d_key=4, d_value=3)
    >>> tuple(layer([np.zeros((1, 6), "float32"), np.zeros((1, 5, 7), "float32")]).shape)
    (1, 6)
    """

    def __init__(self, n_heads: int, d_key: int, d_value: int, **kwargs):
        super().__init__(**kwargs)
        self.n_heads = int(n_heads)
        self.d_key = int(d_key)
        self.d_value = int(d_value)

    def build(self, input_shape):
        global_shape, seq_shape = input_shape
        d_global, d_seq = int(global_shape[-1]), int(seq_shape[-1])
        init = keras.initializers.GlorotUniform()
        # Weight names and shapes match the released .pkl (Wq, Wk, Wv; no biases).
        self.Wq = self.add_weight(name="Wq", shape=(self.n_heads, d_global, self.d_key), initializer=init)
        self.Wk = self.add_weight(name="Wk", shape=(self.n_heads, d_seq, self.d_key), initializer=init)
        self.Wv = self.add_weight(name="Wv", shape=(self.n_heads, d_seq, self.d_value), initializer=init)
        self.built = True

    def call(self, inputs, padding_mask=None):
        x, s = inputs  # x: (B, G), s: (B, L, S)
        # One head at a time: the (B, L, d_value) activations of a head are a quarter of all
        # heads', which keeps peak memory low on long sequences; no transposes are needed.
        outputs = []
        for h in range(self.n_heads):
            scores, values = self.head_scores_values(x, s, h)
            if padding_mask is not None:
                neg = ops.cast(-1e9 if scores.dtype == "float32" else -3e4, scores.dtype)
                scores = ops.where(ops.cast(padding_mask, "bool"), scores, neg)
            # Softmax over positions in float32 even under mixed precision: L can be tens of thousands.
            attn = ops.softmax(ops.cast(scores, "float32"), axis=-1)
            attn = ops.cast(ops.expand_dims(attn, 1), values.dtype)  # (B, 1, L)
            outputs.append(ops.squeeze(ops.matmul(attn, values), 1))  # (B, dv)
        return ops.concatenate(outputs, axis=-1)

    def head_scores_values(self, x, s, h: int):
        """Head ``h``'s scaled scores ``(B, L)`` and values ``(B, L, d_value)``, before the softmax.

        Computed in ``s``'s dtype (weights and ``x`` are cast to it, which is a no-op inside
        ``call``), so :class:`~proteinbert.model.chunked.ChunkedForward` can call it directly.
        """
        dtype = s.dtype
        q = ops.tanh(ops.matmul(ops.cast(x, dtype), ops.cast(self.Wq[h], dtype)))  # (B, dk)
        keys = ops.tanh(ops.matmul(s, ops.cast(self.Wk[h], dtype)))  # (B, L, dk)
        scores = ops.squeeze(ops.matmul(keys, ops.expand_dims(q, -1)), -1) / math.sqrt(self.d_key)  # (B, L)
        values = ops.gelu(ops.matmul(s, ops.cast(self.Wv[h], dtype)), approximate=False)  # exact GELU, as the original
        return scores, values

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_heads * self.d_value)

    def get_config(self):
        config = super().get_config()
        config.update({"n_heads": self.n_heads, "d_key": self.d_key, "d_value": self.d_value})
        return config


@keras.saving.register_keras_serializable(package="proteinbert")
class PaddingMask(keras.layers.Layer):
    """``True`` where a token is not ``<PAD>``; feeds the optional attention mask."""

    def call(self, tokens):
        return ops.not_equal(tokens, PAD_ID)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="proteinbert")
class BroadcastAdd(keras.layers.Layer):
    """Sum of ``(B, L, d)`` tensors and ``(B, 1, d)`` tensors, broadcasting over L.

    Stands in for the 2021 ``Add`` layer (Keras 3's ``Add`` does not broadcast a length of 1
    against an unknown length). It has no weights, so the weight contract is unchanged.
    """

    def call(self, inputs):
        total = inputs[0]
        for t in inputs[1:]:
            total = total + t
        return total

    def compute_output_shape(self, input_shape):
        return input_shape[0]
