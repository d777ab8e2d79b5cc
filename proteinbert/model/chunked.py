"""The backbone's forward pass over long sequences, a chunk of positions at a time.

A full forward pass keeps about twenty ``(L, d_seq)`` activations alive at once inside a block;
at L = 32768 that is ~300 MB on top of the model. Every local-track operation only looks a few
positions away (the wide convolution reaches ``dilation * (kernel - 1) / 2`` = 20 positions for
the released model), and global attention is a softmax-weighted sum over positions, which can be
accumulated chunk by chunk (the running-maximum form of softmax). So each block is computed over
windows of ``chunk_length`` positions plus a halo of neighbours on each side, and only the block's
input and output states are ever held whole. The result equals the ordinary forward pass up to
float rounding (tested); it is meant for inference on long proteins, not for training.

Unlike the rest of :mod:`proteinbert.model` (Keras ops only, any Keras backend), this module is
written for TensorFlow: its per-chunk steps are ``tf.function``\s traced once for every length,
which is what keeps long inputs cheap. It needs the TensorFlow backend, the package's own.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..tokenizer import PAD_ID


class ChunkedForward:
    """Run a :class:`ProteinBertBackbone` (weights shared, nothing copied) chunk by chunk.

    ``predict`` returns what the backbone returns (token and annotation probabilities);
    ``hidden`` returns what :func:`hidden_representation_model` returns. Both take any batch size
    and length; the traced functions are shared across lengths.

    >>> import numpy as np
    >>> from proteinbert.model import ProteinBertBackbone
    >>> model = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=2, n_heads=2, d_key=4)
    >>> tokens, annotations = np.full((1, 50), 7, "int32"), np.zeros((1, 3), "float32")
    >>> seq_probs, annot_probs = ChunkedForward(model, chunk_length=16).predict(tokens, annotations)
    >>> bool(np.allclose(seq_probs, model([tokens, annotations])[0], atol=1e-5))
    True
    """

    def __init__(self, backbone, chunk_length: int = 2048):
        if not isinstance(chunk_length, int) or isinstance(chunk_length, bool) or chunk_length < 1:
            raise InputError(f"chunk_length must be a positive int. Received: chunk_length={chunk_length!r}")
        self.backbone = backbone
        self.chunk_length = chunk_length
        k, d = backbone.conv_kernel_size, backbone.wide_conv_dilation_rate
        # 'same' padding puts at most ceil(d * (k - 1) / 2) positions on either side.
        self.halo = math.ceil(max(d, 1) * (k - 1) / 2)
        self._chunk_fns = {}  # (block, keep_local) -> traced function
        self._global_fns = {}

    # -- traced pieces -------------------------------------------------------------------------
    def _chunk_fn(self, b, keep_local: bool):
        if (b, keep_local) not in self._chunk_fns:
            import tensorflow as tf

            block = self.backbone.blocks[b - 1]
            halo = self.halo
            d_seq, d_global = self.backbone.d_seq, self.backbone.d_global

            @tf.function(input_signature=[tf.TensorSpec([None, None, d_seq], tf.float32),
                                          tf.TensorSpec([None, d_global], tf.float32),
                                          tf.TensorSpec([None, None], tf.bool)],
                         reduce_retracing=True)
            def run(window, glob, valid):
                # window: (B, halo + c + halo, d_seq) of the block's input state, zeros beyond the sequence.
                n = tf.shape(window)[1] - 2 * halo
                local1, local2 = block.local_update(
                    window[:, halo:halo + n], block.global_to_seq(glob),
                    block.narrow_conv(window)[:, halo:halo + n], block.wide_conv(window)[:, halo:halo + n])
                # Global attention partial sums over this chunk, all heads at once (float32 softmax):
                # scores (B, H, c), values (B, H, c, d_value).
                scores, values = block.attention.scores_values(block.attention.queries(glob, local2.dtype), local2)
                scores = tf.where(valid[:, None, :], tf.cast(scores, tf.float32), -1e30)
                top = tf.reduce_max(scores, axis=-1)  # (B, H)
                e = tf.exp(scores - top[..., None]) * tf.cast(valid, tf.float32)[:, None, :]
                weighted = tf.squeeze(tf.matmul(e[:, :, None, :], tf.cast(values, tf.float32)), 2)  # (B, H, dv)
                # The first normalised state is an output only when asked for (it costs a copy).
                first = tf.cast(local1, tf.float32) if keep_local else tf.zeros([0])
                return first, tf.cast(local2, tf.float32), top, tf.reduce_sum(e, axis=-1), weighted

            self._chunk_fns[(b, keep_local)] = run
        return self._chunk_fns[(b, keep_local)]

    def _global_fn(self, b):
        if b not in self._global_fns:
            import tensorflow as tf

            block = self.backbone.blocks[b - 1]

            @tf.function(reduce_retracing=True)
            def run(glob, attention):
                glob1, glob2 = block.global_update(glob, tf.cast(attention, glob.dtype))
                return tf.cast(glob1, tf.float32), tf.cast(glob2, tf.float32)

            self._global_fns[b] = run
        return self._global_fns[b]

    # -- the pass ------------------------------------------------------------------------------
    def _checked(self, tokens, annotations):
        tokens = np.asarray(tokens)
        annotations = np.asarray(annotations, dtype=np.float32)
        if tokens.ndim != 2 or annotations.ndim != 2 or len(tokens) != len(annotations):
            raise InputError(
                f"tokens must be (batch, L) and annotations (batch, n_annotations). Received shapes: "
                f"tokens={tokens.shape}, annotations={annotations.shape}"
            )
        virtual, length = self.backbone.virtual_pad_length, tokens.shape[1]
        if virtual is not None and length < virtual:
            # Chunks carry no far-<PAD> state; at or beyond the virtual length there is none to add.
            raise InputError(
                f"ChunkedForward needs batches at least virtual_pad_length={virtual} long; "
                f"received length {length}. Use the backbone itself for shorter batches."
            )
        return tokens, annotations

    def _valid(self, tokens):
        """``(batch, whole chunks)`` bool: the positions attention counts (not beyond the end, nor ``<PAD>``
        when the backbone masks them)."""
        import tensorflow as tf

        batch, length = tokens.shape
        n_chunks = max(1, -(-length // self.chunk_length))
        valid = np.zeros((batch, n_chunks * self.chunk_length), bool)
        valid[:, :length] = True
        if self.backbone.attention_mask:
            valid[:, :length] &= tokens != PAD_ID
        return tf.constant(valid)

    def _block(self, b, state, glob, valid, keep_local: bool):
        """Block ``b``'s local track over every chunk: ``(first states, second states, attention)``, the
        states a list of chunks, ``attention`` (batch, heads * d_value) for the global update."""
        import tensorflow as tf

        halo, c = self.halo, self.chunk_length
        batch, padded_len = valid.shape
        length = state.shape[1]
        # Zeros around the sequence, as the convolutions' 'same' padding would add.
        padded = tf.pad(state, [[0, 0], [halo, padded_len - length + halo], [0, 0]])
        run = self._chunk_fn(b, keep_local)
        firsts, seconds, sums = [], [], None
        for i in range(padded_len // c):
            local1, local2, *chunk_sums = run(padded[:, i * c:(i + 1) * c + 2 * halo], glob,
                                              valid[:, i * c:(i + 1) * c])
            if keep_local:
                firsts.append(local1)
            seconds.append(local2)
            sums = chunk_sums if sums is None else _merge_softmax_sums(sums, chunk_sums)
        del padded
        _, total, weighted = sums
        attention = tf.reshape(weighted / tf.maximum(total, 1e-30)[..., None], (batch, -1))
        return firsts, seconds, attention

    def _run(self, tokens, annotations, keep_local: bool):
        """Returns ``(layer name -> tensor)`` for every hidden layer; local ones only if ``keep_local``."""
        import tensorflow as tf

        tokens, annotations = self._checked(tokens, annotations)
        bb, length = self.backbone, tokens.shape[1]
        valid = self._valid(tokens)
        out = {}
        state = tf.cast(bb.get_layer("embedding-seq-input")(tokens), tf.float32)
        glob = bb.get_layer("dense-global-input")(annotations)
        out["dense-global-input"] = tf.cast(glob, tf.float32)
        glob = tf.cast(glob, tf.float32)
        for b in range(1, bb.n_blocks + 1):
            firsts, seconds, attention = self._block(b, state, glob, valid, keep_local)
            glob1, glob = self._global_fn(b)(glob, attention)
            out[f"global-merge1-norm-block{b}"] = glob1
            out[f"global-merge2-norm-block{b}"] = glob
            state = tf.concat(seconds, axis=1)[:, :length]
            del seconds
            if keep_local:
                out[f"seq-merge1-norm-block{b}"] = tf.concat(firsts, axis=1)[:, :length]
                out[f"seq-merge2-norm-block{b}"] = state
            del firsts  # not held through the next block
        out["output-annotations"] = bb.get_layer("output-annotations")(glob)
        out["seq-merge2-norm-block%d" % bb.n_blocks] = state
        return out, state

    def predict(self, tokens, annotations):
        """``[token probabilities (B, L, vocab), annotation probabilities (B, A)]`` as numpy arrays."""
        out, state = self._run(tokens, annotations, keep_local=False)
        seq_probs = self.backbone.get_layer("output-seq")(state)
        return [np.asarray(seq_probs), np.asarray(out["output-annotations"])]

    def hidden(self, tokens, annotations, layers: str = "last", per_residue: bool = True):
        """``[local (B, L, W_local) or None, global (B, W_global)]``, as :func:`hidden_representation_model`."""
        bb = self.backbone
        local_names = bb.hidden_layer_names("local", layers)
        global_names = bb.hidden_layer_names("global", layers)
        out, state = self._run(tokens, annotations, keep_local=per_residue and layers == "all")
        glob = np.concatenate([np.asarray(out[n], np.float32) for n in global_names], axis=-1)
        if not per_residue:
            return [None, glob]
        if "output-seq" in local_names:
            out["output-seq"] = bb.get_layer("output-seq")(state)
        local = np.concatenate([np.asarray(out[n], np.float32) for n in local_names], axis=-1)
        return [local, glob]


def _merge_softmax_sums(sums, chunk_sums):
    """Fold one chunk's ``(max score, sum of exp, exp-weighted values)`` into the running ones,
    rescaled to the larger maximum (the running-maximum form of softmax)."""
    import tensorflow as tf

    top, total, weighted = sums
    m, s, w = chunk_sums
    new_top = tf.maximum(top, m)
    a, e = tf.exp(top - new_top), tf.exp(m - new_top)
    return new_top, total * a + s * e, weighted * a[..., None] + w * e[..., None]
