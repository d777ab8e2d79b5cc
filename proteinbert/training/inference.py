"""Predictions of a fine-tuned model over encoded records, batch by batch."""

from __future__ import annotations

import logging

import numpy as np

from ..data.batching import length_batches
from .finetune_data import EncodedSet

logger = logging.getLogger(__name__)


#: Inference traces the model once from this many batches on (below it, eager calls are cheaper).
_TRACE_FROM_BATCHES = 8


def worth_tracing(n_batches: int) -> bool:
    return n_batches >= _TRACE_FROM_BATCHES


def batch_predictor(model, n_annotations: int, traced: bool):
    """``f(tokens, annotations) -> outputs`` of ``model`` in inference mode, traced or eager.

    Eagerly every op pays Python dispatch on every batch; traced once (a few seconds), a batch
    costs its arithmetic. The signature has dynamic dimensions: one trace serves every length.
    """
    import tensorflow as tf

    def call(tokens, annotations):
        return model([tokens, annotations], training=False)

    if not traced:
        return call
    return tf.function(call, reduce_retracing=True,
                       input_signature=[tf.TensorSpec((None, None), tf.int32),
                                        tf.TensorSpec((None, n_annotations), tf.float32)])


def predict(model, data: EncodedSet, seq_len: int = 512, batch_size: int = 32, padding: str = "fixed") -> list:
    """Predictions in record order: per record an array (global: ``(n_outputs,)``; local: ``(n, n_outputs)``).

    Records are padded as in training and batched up to ``batch_size × seq_len`` padded tokens
    (see :func:`length_batches`); dropout is off.
    """
    batches = length_batches(data.n_tokens, seq_len, batch_size, padding, token_budget=True)
    call = batch_predictor(model, data.n_annotations, traced=worth_tracing(len(batches)))
    out: list = [None] * len(data)
    for indices, length in batches:
        (tokens, annotations), _, _ = data.batch(indices, length)
        y = np.asarray(call(tokens, annotations))
        for row, i in enumerate(indices):
            if data.spec.level == "global":
                out[i] = y[row]
            else:
                out[i] = y[row, 1:len(data.tokens[i]) + 1]
    return out
