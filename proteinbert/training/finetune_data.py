"""Fine-tuning records, encoded once, and the ``tf.data`` pipelines that batch them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..tokenizer import END_ID, N_ADDED_TOKENS, PAD_ID, START_ID, encode_residues
from ..data.batching import fixed_pipeline_options, length_batches
from .output_spec import OutputSpec, encode_labels, raise_bad_rows, row_name

logger = logging.getLogger(__name__)


@dataclass
class EncodedSet:
    """Records ready for batching: residue ids, converted labels and the output spec.

    ``crop_len`` (residues) crops longer records from their start — only when asked for;
    per-residue labels are cropped with them.
    """

    tokens: list  # residue ids per record (int32, no <START>/<END>)
    labels: list | None  # per record (see encode_labels), or None for prediction only
    spec: OutputSpec
    n_annotations: int

    @classmethod
    def build(cls, spec: OutputSpec, seqs: Sequence[str], labels: Sequence | None, n_annotations: int,
              crop_len: int | None = None, row_ids=None, what: str = "records") -> "EncodedSet":
        if len(seqs) == 0:
            raise InputError(f"{what}: no records (the split is empty)")
        problems = []
        tokens = []
        for i, seq in enumerate(seqs):
            if not isinstance(seq, (str, bytes)) or len(seq) == 0:
                problems.append(f"{row_name(row_ids, i)}: empty or missing sequence ({seq!r:.40})")
                tokens.append(None)
                continue
            tokens.append(encode_residues(seq))
        raise_bad_rows(problems, f"{what} (sequences)")
        encoded = None if labels is None else encode_labels(spec, seqs, labels, row_ids=row_ids, what=what)
        if crop_len is not None:
            if crop_len < 1:
                raise InputError(f"crop_len must be >= 1. Received: crop_len={crop_len}")
            n_cropped = sum(len(t) > crop_len for t in tokens)
            if n_cropped:
                logger.info("%s: cropping %d record(s) to %d residues", what, n_cropped, crop_len)
            tokens = [t[:crop_len] for t in tokens]
            if encoded is not None and spec.level == "local":
                encoded = [y[:crop_len] for y in encoded]
        return cls(tokens, encoded, spec, n_annotations)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_tokens(self) -> np.ndarray:
        return np.array([len(t) + N_ADDED_TOKENS for t in self.tokens], dtype=np.int64)

    def global_targets(self, indices: np.ndarray) -> np.ndarray:
        """Targets of global outputs: ``(n,)`` class ids or ``(n, n_outputs)`` floats."""
        if self.spec.task == "multilabel":
            return np.stack([self.labels[i] for i in indices]).astype(np.float32)
        if self.spec.task == "categorical":
            return np.array([self.labels[i] for i in indices], dtype=np.int32)
        return np.array([self.labels[i] for i in indices], dtype=np.float32)[:, None]

    def batch(self, indices: np.ndarray, padded_len: int):
        """``(x, y, sample_weight)`` arrays for the records ``indices`` padded to ``padded_len``."""
        n = len(indices)
        x = np.full((n, padded_len), PAD_ID, dtype=np.int32)
        for row, i in enumerate(indices):
            t = self.tokens[i]
            x[row, 0] = START_ID
            x[row, 1:len(t) + 1] = t
            x[row, len(t) + 1] = END_ID
        annotations = np.zeros((n, self.n_annotations), dtype=np.float32)
        if self.labels is None:
            return (x, annotations), None, None
        spec = self.spec
        if spec.level == "global":
            return (x, annotations), self.global_targets(indices), np.ones((n,), dtype=np.float32)
        dtype = np.int32 if spec.task == "categorical" else np.float32
        y = np.zeros((n, padded_len), dtype=dtype)
        weights = np.zeros((n, padded_len), dtype=np.float32)
        for row, i in enumerate(indices):
            values = self.labels[i]
            # Labels sit on positions 1..n, after <START>; everything else has weight 0.
            y[row, 1:len(values) + 1] = values
            weights[row, 1:len(values) + 1] = 1
        if spec.task != "categorical":
            y = y[..., None]
        return (x, annotations), y, weights


def tf_dataset(data: EncodedSet, batches: list, repeat_rng: np.random.Generator | None = None,
                seq_len: int = 512, batch_size: int = 32, padding: str = "bucket"):
    """A ``tf.data.Dataset`` over ``batches`` with a dynamic length dimension (one trace for all lengths).

    With ``repeat_rng`` every pass over the dataset draws new shuffled batches (as many as
    ``batches`` holds). The dataset declares its number of batches: Keras then ends an epoch
    exactly after one pass and starts the next on a fresh iterator (no ``.repeat()`` and step
    counts to keep in step with the data).
    """
    import tensorflow as tf

    spec = data.spec
    x_sig = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, data.n_annotations), tf.float32))
    if spec.level == "global":
        if spec.task == "categorical":
            y_sig = tf.TensorSpec((None,), tf.int32)
        else:
            y_sig = tf.TensorSpec((None, spec.n_outputs), tf.float32)
        w_sig = tf.TensorSpec((None,), tf.float32)
    else:
        y_sig = (tf.TensorSpec((None, None), tf.int32) if spec.task == "categorical"
                 else tf.TensorSpec((None, None, 1), tf.float32))
        w_sig = tf.TensorSpec((None, None), tf.float32)

    def generate():
        chosen = batches
        if repeat_rng is not None:
            chosen = length_batches(data.n_tokens, seq_len, batch_size, padding, rng=repeat_rng)
        for indices, length in chosen:
            yield data.batch(indices, length)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=(x_sig, y_sig, w_sig))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return dataset.with_options(fixed_pipeline_options()).prefetch(2)
