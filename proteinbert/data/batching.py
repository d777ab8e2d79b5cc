"""Length-aware batching: group sequences of similar length so nothing is padded to a global max."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..tokenizer import N_ADDED_TOKENS


def token_budget_batches(lengths: Sequence[int], max_tokens: int = 32768, max_batch_size: int = 256,
                         pad_multiple: int = 8) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(indices, padded_len)`` batches sorted by length under a token budget.

    ``padded_len`` covers the longest member plus ``<START>``/``<END>``, rounded up to
    ``pad_multiple`` (fewer distinct shapes, fewer retraces). A sequence longer than the
    budget gets a batch of its own: nothing is dropped or cropped.

    >>> [(idx.tolist(), L) for idx, L in token_budget_batches([5, 100, 7], max_tokens=64)]
    [([0, 2], 16), ([1], 104)]
    """
    if max_tokens < 1 or max_batch_size < 1:
        raise InputError(f"max_tokens and max_batch_size must be >= 1. Received: {max_tokens}, {max_batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    batch: list[int] = []
    batch_len = 0
    for i in order:
        L = int(-(-(lengths[i] + N_ADDED_TOKENS) // pad_multiple) * pad_multiple)
        if batch and (max(batch_len, L) * (len(batch) + 1) > max_tokens or len(batch) >= max_batch_size):
            yield np.array(batch), batch_len
            batch, batch_len = [], 0
        batch.append(int(i))
        batch_len = max(batch_len, L)
    if batch:
        yield np.array(batch), batch_len
