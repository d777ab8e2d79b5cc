"""Length-aware batching: group sequences of similar length so nothing is padded to a global max.

Without an attention mask, ``<PAD>`` positions take part in the global attention (as in the
released model), so a protein's outputs depend on the length it is padded to. Here that length is
a function of the protein's own length only (:func:`bucket_length`), and batches hold one
bucket each: results never depend on which other proteins share the batch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..tokenizer import N_ADDED_TOKENS

#: The length short proteins are padded to by default, in tokens: the 2021 model length, which the
#: released weights were fine-tuned and used at. Fine-tuning pads each batch to it for real (the
#: stages' ``seq_len``); embeddings pad to it virtually (``EmbeddingSettings.virtual_pad_length``),
#: which gives the same numbers at a lower cost. One constant, so the two cannot drift apart.
DEFAULT_PAD_LENGTH = 512


def bucket_length(n_tokens: int, min_step: int = 8, steps_per_octave: int = 16, min_length: int = 0) -> int:
    """Padded length for ``n_tokens`` tokens, a function of ``n_tokens`` alone.

    Lengths round up to a step of ``1 / steps_per_octave`` of the enclosing power of two (at
    least ``min_step``): at most ~``100 / steps_per_octave`` % padding, and few distinct shapes.
    ``min_length`` pads short records further (512 reproduces the 2021 model length).

    >>> [bucket_length(n) for n in (3, 9, 256, 257, 1000, 35002)]
    [8, 16, 256, 272, 1024, 36864]
    >>> [bucket_length(n, min_step=16, steps_per_octave=4) for n in (72, 512, 602)]
    [80, 512, 640]
    """
    n = max(int(n_tokens), int(min_length), 1)
    if n < 1 or min_step < 1 or steps_per_octave < 1:
        raise InputError(f"bucket_length needs positive arguments. Received: {n_tokens}, {min_step}, {steps_per_octave}")
    step = max(int(min_step), (1 << (int(n - 1).bit_length() - 1)) // int(steps_per_octave))
    return -(-n // step) * step


def token_budget_batches(lengths: Sequence[int], max_tokens: int = 32768, max_batch_size: int = 256,
                         pad_multiple: int = 8, min_length: int = 0) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(indices, padded_len)`` batches, one length bucket each, under a token budget.

    ``lengths`` are residue counts; ``padded_len`` = :func:`bucket_length` of length + 2
    (``<START>``/``<END>``). A sequence longer than the budget gets a batch of its own: nothing is
    dropped or cropped. Batches come shortest first.

    >>> [(idx.tolist(), L) for idx, L in token_budget_batches([5, 100, 7, 4], max_tokens=64)]
    [([0, 3], 8), ([2], 16), ([1], 104)]
    """
    if max_tokens < 1 or max_batch_size < 1:
        raise InputError(f"max_tokens and max_batch_size must be >= 1. Received: {max_tokens}, {max_batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = np.array([bucket_length(n + N_ADDED_TOKENS, pad_multiple, min_length=min_length) for n in lengths],
                      dtype=np.int64)
    order = np.lexsort((np.arange(len(lengths)), padded))
    start = 0
    while start < len(order):
        L = int(padded[order[start]])
        per_batch = max(1, min(max_batch_size, max_tokens // L))
        stop = start
        while stop < len(order) and stop - start < per_batch and padded[order[stop]] == L:
            stop += 1
        yield order[start:stop], L
        start = stop


def fixed_pipeline_options():
    """``tf.data.Options`` for our batch pipelines: autotuning off (they prefetch a fixed depth).

    Autotuning runs a model thread that sleeps between optimisation rounds, for longer and longer,
    and deleting an iterator waits for that thread to wake. Keras deletes the validation iterator
    at every evaluation: fine-tuning stalled there for 3-35 s at random epochs (under gdb:
    ``~RootDataset::Iterator`` waiting on ``Model::OptimizeLoop``). Our batches are made in Python
    and prefetched to a fixed depth, so there is nothing for autotuning to tune.

    >>> fixed_pipeline_options().autotune.enabled
    False
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
