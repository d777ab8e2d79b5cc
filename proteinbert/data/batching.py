"""Length-aware batching: group sequences of similar length so nothing is padded to a global max.

The one home of the padding rules: :func:`bucket_length` (embeddings; training uses the coarser
:func:`training_bucket_length`), :func:`fixed_length` (the 2021 model lengths), the real pads kept
under virtual padding (:func:`with_pad_margin`) and the batches built from them
(:func:`token_budget_batches`, :func:`length_batches`).

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

#: How training batches are padded: ``"fixed"`` (2021: to the stage's ``seq_len``) or ``"bucket"``
#: (to :func:`training_bucket_length`; faster, less accurate). See :func:`length_batches`.
PADDINGS = ("fixed", "bucket")


def check_padding(padding: str) -> None:
    """Raise :class:`InputError` unless ``padding`` is one of :data:`PADDINGS`."""
    if padding not in PADDINGS:
        raise InputError(f"padding must be 'fixed' or 'bucket'. Received: padding={padding!r}")


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



#: Training buckets are coarser than inference ones (a quarter of the enclosing power of two, at
#: most ~25 % padding): every new shape costs a training-graph trace.
TRAINING_STEPS_PER_OCTAVE = 4


def training_bucket_length(n_tokens: int, min_step: int = 16) -> int:
    """The padded length of a record with ``n_tokens`` tokens (residues + 2) in training.

    Coarser than for embeddings (a quarter of the enclosing power of two, at most ~25 % padding)
    because every new shape costs a training-graph trace. The padded length depends only on the
    record itself, so a prediction never depends on its batch mates.

    >>> training_bucket_length(70 + 2), training_bucket_length(510 + 2), training_bucket_length(600 + 2)
    (80, 512, 640)
    """
    n_tokens = int(n_tokens)
    if n_tokens < 1:
        raise InputError(f"n_tokens must be >= 1. Received: n_tokens={n_tokens}")
    return bucket_length(n_tokens, min_step=min_step, steps_per_octave=TRAINING_STEPS_PER_OCTAVE)


def fixed_length(n_tokens: int, seq_len: int, increase_factor: int = 2) -> int:
    """2021-style padding: ``seq_len``, multiplied by ``increase_factor`` until the record fits.

    >>> fixed_length(510 + 2, 512), fixed_length(511 + 2, 512), fixed_length(100, 64, 3)
    (512, 1024, 192)
    """
    if increase_factor < 2 or seq_len < 1:
        raise InputError(f"need seq_len >= 1 and increase_factor >= 2. Received: {seq_len}, {increase_factor}")
    length = int(seq_len)
    while length < n_tokens:
        length *= increase_factor
    return length


def batch_size_for(padded_len: int, seq_len: int, batch_size: int) -> int:
    """``batch_size`` up to ``seq_len``; beyond, scaled down by the length ratio (at least 1)."""
    if padded_len <= seq_len:
        return batch_size
    return max(1, int(batch_size * seq_len // padded_len))


def length_batches(n_tokens: Sequence[int], seq_len: int, batch_size: int, padding: str = "bucket",
                   rng: np.random.Generator | None = None,
                   token_budget: bool = False) -> list[tuple[np.ndarray, int]]:
    """Group records into ``(indices, padded_len)`` batches.

    ``padding="bucket"`` pads each record to :func:`training_bucket_length`; ``"fixed"`` pads to
    ``seq_len`` (records that do not fit go to ``2×``, ``4×``… ``seq_len``), as the 2021 code did.
    Records of one padded length form batches of :func:`batch_size_for`; with ``rng`` the records
    within a bucket and the order of batches are shuffled, else records keep their order.

    ``token_budget=True`` (inference) fills shorter batches up to the padded tokens of a full
    ``batch_size × seq_len`` batch instead: a batch of 80-token records holds 6.4× ``batch_size``
    of them at ``seq_len`` 512. The memory stays that of a training batch, and fewer, larger
    batches pay the per-batch costs fewer times. Outputs do not depend on batch mates, so this
    changes the speed only. Training keeps ``batch_size`` (it sets the optimisation).

    >>> [(b.tolist(), L) for b, L in length_batches([10, 70, 12], seq_len=64, batch_size=2)]
    [([0, 2], 16), ([1], 80)]
    >>> [len(b) for b, L in length_batches([10] * 20, seq_len=64, batch_size=2, token_budget=True)]
    [8, 8, 4]
    """
    check_padding(padding)
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    if padding == "bucket":
        padded = np.array([training_bucket_length(n) for n in n_tokens], dtype=np.int64)
    else:
        padded = np.array([fixed_length(n, seq_len) for n in n_tokens], dtype=np.int64)
    batches = []
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)
        if rng is not None:
            members = rng.permutation(members)
        size = batch_size_for(int(length), seq_len, batch_size)
        if token_budget:
            size = max(size, batch_size * seq_len // int(length))
        for start in range(0, len(members), size):
            batches.append((members[start:start + size], int(length)))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def episode_padded_length(n_residues: int, episode_lengths: Sequence[int]) -> int:
    """Tokens a protein of ``n_residues`` is padded to for a model pretrained at ``episode_lengths``:
    the shortest of them that holds it with ``<START>``/``<END>``, else its own length + 2.

    >>> [episode_padded_length(n, (32, 64)) for n in (20, 40, 100)]
    [32, 64, 102]
    """
    n = int(n_residues) + N_ADDED_TOKENS
    fitting = [int(L) for L in episode_lengths if int(L) >= n]
    return min(fitting) if fitting else n

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
    padded = [bucket_length(n + N_ADDED_TOKENS, pad_multiple, min_length=min_length) for n in lengths]
    return budget_batches(padded, max_tokens, max_batch_size)


def budget_batches(padded_lengths: Sequence[int], max_tokens: int, max_batch_size: int
                   ) -> Iterator[tuple[np.ndarray, int]]:
    """``(indices, padded_len)`` batches of records already given their padded lengths: one length
    per batch, shortest first, file order within a length, at most ``max_tokens`` padded tokens (a
    record longer than that alone).

    >>> [(idx.tolist(), L) for idx, L in budget_batches([32, 64, 32, 32], max_tokens=64, max_batch_size=8)]
    [([0, 2], 32), ([3], 32), ([1], 64)]
    """
    padded = np.asarray(padded_lengths, dtype=np.int64)
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)
        per_batch = max(1, min(max_batch_size, max_tokens // int(length)))
        for start in range(0, len(members), per_batch):
            yield members[start:start + per_batch], int(length)


def with_pad_margin(lengths: Sequence[int], margin: int, virtual_length: int) -> list[int]:
    """Residue counts to bucket by under virtual padding: each length plus ``margin`` real ``<PAD>``
    positions, capped so that the bucket stays within ``virtual_length`` tokens (there the bucket's
    pads are computed as in a ``virtual_length``-long batch). Longer proteins keep their own length.

    >>> counts = with_pad_margin([5, 100, 430, 600], margin=80, virtual_length=512)
    >>> counts, [bucket_length(n + N_ADDED_TOKENS) for n in counts]
    ([85, 180, 510, 600], [88, 184, 512, 608])
    """
    cap = int(virtual_length)
    while cap > N_ADDED_TOKENS and bucket_length(cap) != cap:  # the longest bucket within the virtual length
        cap -= 1
    if margin <= 0 or cap <= N_ADDED_TOKENS:  # no bucket that short: every batch reaches the virtual length
        return [int(n) for n in lengths]
    cap -= N_ADDED_TOKENS
    return [max(int(n), min(int(n) + int(margin), cap)) for n in lengths]


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
