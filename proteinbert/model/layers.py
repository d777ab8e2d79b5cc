"""Custom layers of ProteinBERT, written with ``keras.ops``.

One exception, for speed: on the TensorFlow backend :class:`ColumnConv1D` computes its gradient
with :func:`proteinbert.model.tf_conv.same_conv1d` (same forward op); other backends take
Keras's own convolution.

The activation is :func:`gelu`, the exact GELU written with ``erf`` (exportable to ONNX).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from ..tokenizer import PAD_ID

_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)


@keras.saving.register_keras_serializable(package="proteinbert")
def gelu(x):
    """The exact GELU, ``x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))``, the 2021 model's activation.

    Keras's ``gelu`` computes the same function with ``erfc``, which ONNX lacks (exporting it
    fails); ``erf`` maps to ONNX's ``Erf``. In float32 the two differ by at most 9.6e-7 over
    [-20, 20] and agree exactly beyond (tests/test_export.py).

    >>> import numpy as np
    >>> x = np.linspace(-6, 6, 1001).astype("float32")
    >>> exact = keras.activations.gelu(x, approximate=False)
    >>> float(np.max(np.abs(gelu(x) - exact))) < 1e-6
    True
    """
    x = ops.convert_to_tensor(x)
    return 0.5 * x * (1.0 + ops.erf(x * _SQRT_HALF))


@keras.saving.register_keras_serializable(package="proteinbert")
class GlobalAttention(keras.layers.Layer):
    """Linear-cost global attention: the global state queries every sequence position.

    Per head ``h``: ``q = tanh(x Wq[h])``, ``k_i = tanh(s_i Wk[h])``, ``v_i = gelu(s_i Wv[h])``,
    ``a = softmax_i(q.k_i / sqrt(d_key))``, ``out_h = sum_i a_i v_i``; heads are concatenated.
    Cost is O(L). Called as ``layer([global_state, seq_state])``, optionally with a boolean
    ``padding_mask`` of shape ``(batch, L)`` (True = attend); without a mask ``<PAD>`` positions take part
    in the softmax, as in the released model.

    ``virtual_length``: called as ``layer([global_state, seq_state, pad_state])``, where ``pad_state``
    ``(batch, 1, S)`` is the state of a ``<PAD>`` position far from the sequence, the softmax also
    counts ``virtual_length - L`` copies of that position (none when ``L >= virtual_length``): the
    attention of a sequence padded to ``virtual_length``, at the cost of ``L`` positions. In the
    2021 model every batch was padded to the model length, so hundreds of identical ``<PAD>``
    positions took part in each softmax; this keeps that behaviour for short length buckets.

    >>> import numpy as np
    >>> layer = GlobalAttention(n_heads=2, d_key=4, d_value=3)
    >>> tuple(layer([np.zeros((1, 6), "float32"), np.zeros((1, 5, 7), "float32")]).shape)
    (1, 6)
    """

    def __init__(self, n_heads: int, d_key: int, d_value: int, virtual_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_heads = int(n_heads)
        self.d_key = int(d_key)
        self.d_value = int(d_value)
        self.virtual_length = None if virtual_length is None else int(virtual_length)
        # Made here, not in build: its seed is drawn from the global random state when it is made,
        # so seeded models initialise the same whichever order the layers are built in.
        self._initializer = keras.initializers.GlorotUniform()

    def build(self, input_shape):
        global_shape, seq_shape = input_shape[:2]
        d_global, d_seq = int(global_shape[-1]), int(seq_shape[-1])
        init = self._initializer
        # Weight names and shapes match the released .pkl (Wq, Wk, Wv; no biases).
        self.Wq = self.add_weight(name="Wq", shape=(self.n_heads, d_global, self.d_key), initializer=init)
        self.Wk = self.add_weight(name="Wk", shape=(self.n_heads, d_seq, self.d_key), initializer=init)
        self.Wv = self.add_weight(name="Wv", shape=(self.n_heads, d_seq, self.d_value), initializer=init)
        self.built = True

    def call(self, inputs, padding_mask=None):
        x, s = inputs[:2]  # x: (B, G), s: (B, L, S)
        # All heads at once: one matrix product per projection instead of one per head keeps the
        # graph small (fewer ops to trace and dispatch: 155 instead of 518 per layer, forward and
        # backward). ChunkedForward calls queries/scores_values on windows of positions.
        q = self.queries(x, s.dtype)  # (B, H, dk)
        scores, values = self.scores_values(q, s)  # (B, H, L), (B, H, L, dv)
        if padding_mask is not None:
            neg = ops.cast(-1e9 if scores.dtype == "float32" else -3e4, scores.dtype)
            scores = ops.where(ops.expand_dims(ops.cast(padding_mask, "bool"), 1), scores, neg)
        # Softmax over positions in float32 even under mixed precision: L can be tens of thousands.
        scores = ops.cast(scores, "float32")
        if len(inputs) > 2 and self.virtual_length is not None:
            attended = self._attend_with_virtual_pads(q, scores, values, inputs[2], ops.shape(s)[1])
        else:
            attn = ops.cast(ops.expand_dims(ops.softmax(scores, axis=-1), 2), values.dtype)  # (B, H, 1, L)
            attended = ops.squeeze(ops.matmul(attn, values), 2)  # (B, H, dv)
        return ops.reshape(ops.cast(attended, s.dtype), (-1, self.n_heads * self.d_value))

    def _attend_with_virtual_pads(self, q, scores, values, pad_state, length):
        """Softmax over the L positions plus ``virtual_length - L`` copies of the far-``<PAD>`` position.

        ``pad_state`` ``(B, 1, S)``; the copies share one score and value, so they enter as one
        weighted term (no (L + 1)-long copy of the values is made).
        """
        # log(number of virtual <PAD> positions); -inf (weight 0) when there are none.
        n_virtual = float(self.virtual_length) - ops.cast(length, "float32")
        log_count = ops.where(n_virtual > 0, ops.log(ops.maximum(n_virtual, 1.0)), float("-inf"))
        pad_score, pad_value = self.scores_values(q, pad_state)  # (B, H, 1), (B, H, 1, dv)
        pad_score = ops.cast(pad_score, "float32") + log_count
        top = ops.maximum(ops.max(scores, axis=-1, keepdims=True), pad_score)  # (B, H, 1)
        weights = ops.exp(scores - top)  # (B, H, L)
        pad_weight = ops.exp(pad_score - top)  # (B, H, 1)
        total = ops.sum(weights, axis=-1, keepdims=True) + pad_weight
        attended = ops.squeeze(ops.matmul(ops.cast(ops.expand_dims(weights, 2), values.dtype), values), 2)
        attended = ops.cast(attended, "float32") + pad_weight * ops.cast(pad_value[:, :, 0], "float32")
        return attended / total

    def _stacked(self, weight, dtype):
        """``(H, d_in, d)`` head weights as one ``(d_in, H * d)`` matrix in ``dtype``."""
        n_heads, d_in, d = weight.shape
        return ops.reshape(ops.transpose(ops.cast(weight, dtype), (1, 0, 2)), (d_in, n_heads * d))

    def queries(self, x, dtype):
        """Every head's query ``(B, H, d_key)`` from the global state, in ``dtype``."""
        q = ops.tanh(ops.matmul(ops.cast(x, dtype), self._stacked(self.Wq, dtype)))
        return ops.reshape(q, (-1, self.n_heads, self.d_key))

    def scores_values(self, q, s):
        """Every head's scaled scores ``(B, H, L)`` and values ``(B, H, L, d_value)``, before the softmax."""
        dtype = s.dtype
        batch, length = ops.shape(s)[0], ops.shape(s)[1]
        keys = ops.tanh(ops.matmul(s, self._stacked(self.Wk, dtype)))
        keys = ops.transpose(ops.reshape(keys, (batch, length, self.n_heads, self.d_key)), (0, 2, 1, 3))
        scores = ops.squeeze(ops.matmul(keys, ops.expand_dims(q, -1)), -1) / math.sqrt(self.d_key)
        values = gelu(ops.matmul(s, self._stacked(self.Wv, dtype)))  # exact GELU, as the original
        values = ops.transpose(ops.reshape(values, (batch, length, self.n_heads, self.d_value)), (0, 2, 1, 3))
        return scores, values

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_heads * self.d_value)

    def get_config(self):
        config = super().get_config()
        config.update({"n_heads": self.n_heads, "d_key": self.d_key, "d_value": self.d_value,
                       "virtual_length": self.virtual_length})
        return config


@keras.saving.register_keras_serializable(package="proteinbert")
class PaddingMask(keras.layers.Layer):
    """``True`` where a token is not ``<PAD>``; feeds the optional attention mask."""

    def call(self, tokens):
        return ops.not_equal(tokens, PAD_ID)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="proteinbert")
class PadTokens(keras.layers.Layer):
    """A ``(batch, 1)`` column of ``<PAD>`` ids: the input of the far-``<PAD>`` state (virtual padding)."""

    def call(self, tokens):
        return ops.full((ops.shape(tokens)[0], 1), PAD_ID, dtype=tokens.dtype)  # static length 1

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package="proteinbert")
class ColumnConv1D(keras.layers.Conv1D):
    """``Conv1D`` that, called as ``layer([seq, column])``, also returns its output on ``column``.

    ``column`` ``(batch, 1, channels)`` stands for an endless run of one vector (the ``<PAD>``
    positions far from a sequence), where every tap of the kernel sees the same input:
    ``activation(column @ sum(kernel over taps) + bias)``. Called on one tensor it is a plain
    ``Conv1D``, with the same weights (names, shapes, order).

    >>> import numpy as np
    >>> conv = ColumnConv1D(2, 3, padding="same", dilation_rate=2)
    >>> x = np.ones((1, 9, 4), "float32")
    >>> out, col = conv([x, x[:, :1]])
    >>> bool(np.allclose(out[:, 4:5], col, atol=1e-6))  # position 4 sees only ones, like the column
    True
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_spec = None  # Conv1D's spec admits one input; shapes are checked by the kernel's matmul

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        super().build(input_shape)
        self.input_spec = None

    def _fast_path(self) -> bool:
        # On TensorFlow: the same forward op with a 1.6-3x faster gradient (see tf_conv).
        return (keras.backend.backend() == "tensorflow" and self.padding == "same" and tuple(self.strides) == (1,)
                and self.kernel_size[0] % 2 == 1 and self.data_format == "channels_last")

    def _convolve(self, seq):
        if not self._fast_path():
            return super().call(seq)
        from .tf_conv import same_conv1d

        out = same_conv1d(seq, ops.cast(self.kernel, seq.dtype), int(self.dilation_rate[0]))
        if self.use_bias:
            out = out + self.bias
        return out if self.activation is None else self.activation(out)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            return self._convolve(inputs)
        seq, column = inputs
        out = self._convolve(seq)
        col = ops.matmul(column, ops.sum(self.kernel, axis=0))
        if self.use_bias:
            col = col + self.bias
        if self.activation is not None:
            col = self.activation(col)
        return out, col

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            seq_shape, col_shape = input_shape
            return super().compute_output_shape(seq_shape), (*col_shape[:-1], self.filters)
        return super().compute_output_shape(input_shape)


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
