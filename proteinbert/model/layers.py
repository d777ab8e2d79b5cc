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
    >>> layer([np.zeros((1, 6), "float32"), np.zeros((1, 5, 7), "float32")]).shape
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
        h, dk, dv = self.n_heads, self.d_key, self.d_value
        d_seq = ops.shape(self.Wk)[1]
        # One matmul for all heads: (S, H*dk) and (S, H*dv) views of the kernels.
        wk = ops.reshape(ops.transpose(self.Wk, (1, 0, 2)), (d_seq, h * dk))
        wv = ops.reshape(ops.transpose(self.Wv, (1, 0, 2)), (d_seq, h * dv))
        q = ops.tanh(ops.einsum("bg,hgk->bhk", x, self.Wq))  # (B, H, dk)
        keys = ops.tanh(ops.matmul(s, wk))  # (B, L, H*dk)
        values = ops.gelu(ops.matmul(s, wv), approximate=False)  # exact GELU, as the original
        batch, length = ops.shape(s)[0], ops.shape(s)[1]
        # Scores without transposing the (B, L, H*dk) keys: multiply by the broadcast query and
        # sum each head's dk slice. Elementwise work is cheap next to the key/value matmuls.
        q_flat = ops.reshape(q, (batch, 1, h * dk))
        scores = ops.sum(ops.reshape(keys * q_flat, (batch, length, h, dk)), axis=-1) / math.sqrt(dk)  # (B, L, H)
        if padding_mask is not None:
            neg = ops.cast(-1e9 if scores.dtype == "float32" else -3e4, scores.dtype)
            scores = ops.where(ops.expand_dims(ops.cast(padding_mask, "bool"), -1), scores, neg)
        # Softmax over positions in float32 even under mixed precision: L can be tens of thousands.
        attn = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=1), values.dtype)  # (B, L, H)
        # out[b, h, :] = sum_l attn[b, l, h] * values[b, l, h, :] as one batched matmul per (b, h).
        values = ops.transpose(ops.reshape(values, (batch, length, h, dv)), (0, 2, 1, 3))  # (B, H, L, dv)
        out = ops.matmul(ops.expand_dims(ops.transpose(attn, (0, 2, 1)), 2), values)  # (B, H, 1, dv)
        return ops.reshape(out, (batch, h * dv))

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
