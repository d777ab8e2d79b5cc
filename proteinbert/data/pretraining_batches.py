"""Pretraining batches from the HDF5 dataset: length episodes, corruption, a reproducible schedule.

What this module does, and the choices made where the 2021 code left room:

* Records are read in chunks of ``chunk_size`` through :class:`PretrainingDataset`, never the
  whole file. Chunk ``k`` covers the training records ``[(k mod n_chunks) * chunk_size, ...)``
  (the file is already shuffled); it is permuted and its records are assigned to episodes with
  ``np.random.default_rng([seed, 0, k])``. The last ``holdout_records`` records of the file are
  never trained on (an evaluation slice, see :func:`holdout_batch`).
* Each record goes to one length episode ``(seq_len, batch_size)`` at random with probability
  proportional to ``exp(-max(r, 1/r))``, ``r = (len + 2) / seq_len``, and waits in that episode's
  FIFO buffer.
* The episode of step ``s`` is ``episodes[(s // steps_per_episode) % n_episodes]`` (the 2021 code
  switched every 15 minutes of wall-clock time; this is the same rotation, counted in steps).
* A batch for step ``s`` takes the oldest ``batch_size`` records of its episode's buffer; cropping
  and corruption use ``np.random.default_rng([seed, 1, s])``. Longer proteins are cropped to
  ``seq_len - 2`` residues at a random offset and framed by ``<START>``/``<END>``.
* Corruption: every non-``<PAD>`` input token is replaced by a uniformly random token (of all 26)
  with p = ``token_corruption_p``. Annotations: with p = ``no_annotations_p`` a protein gets no
  input annotations; otherwise each true one is dropped with p = ``annotation_drop_p`` and each
  absent one added with p = ``annotation_add_p``. Test-set proteins get no input annotations.
* Weights: token weight 1 on every non-``<PAD>`` position; annotation weight 0 for proteins with no
  annotations and for test-set proteins, else 1.

Every random draw comes from a generator seeded by ``(seed, purpose, counter)``, so the whole
stream is a function of the seed; :meth:`PretrainingBatches.state` (the step, the next chunk and
the record ids waiting in each buffer) is all that a checkpoint needs to continue it exactly.

>>> settings = PretrainingDataSettings(episodes=((32, 4), (64, 2)), steps_per_episode=2)
>>> settings.episode_for_step(0), settings.episode_for_step(2), settings.episode_for_step(4)
(0, 1, 0)
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass, field
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import InputError
from ..tokenizer import END_ID, N_ADDED_TOKENS, PAD_ID, START_ID, VOCAB_SIZE, encode_residues
from .h5dataset import PretrainingDataset

#: Length episodes ``(seq_len, batch_size)`` of the 2021 pretraining.
DEFAULT_EPISODES = ((128, 128), (512, 64), (1024, 32))

# Purposes mixed into the seeds, so the draws for chunks, steps and evaluation never overlap.
_CHUNK, _STEP, _HOLDOUT = 0, 1, 2


@dataclass(frozen=True)
class PretrainingDataSettings:
    """How pretraining batches are made (defaults: the 2021 values)."""

    episodes: tuple = DEFAULT_EPISODES
    steps_per_episode: int = 100
    chunk_size: int = 4096
    token_corruption_p: float = 0.05
    no_annotations_p: float = 0.5
    annotation_drop_p: float = 0.25
    annotation_add_p: float = 1e-4
    holdout_records: int = 0
    seed: int = 0

    def __post_init__(self):
        episodes = tuple((int(L), int(b)) for L, b in self.episodes)
        object.__setattr__(self, "episodes", episodes)
        if not episodes:
            raise InputError("episodes must not be empty. Received: episodes=()")
        for L, b in episodes:
            if L < N_ADDED_TOKENS + 1 or b < 1:
                raise InputError(
                    f"each episode needs seq_len >= 3 and batch_size >= 1. Received: episodes={episodes}"
                )
        for name in ("steps_per_episode", "chunk_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1. Received: {name}={getattr(self, name)!r}")
        if self.holdout_records < 0:
            raise InputError(f"holdout_records must be >= 0. Received: holdout_records={self.holdout_records!r}")
        for name in ("token_corruption_p", "no_annotations_p", "annotation_drop_p", "annotation_add_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise InputError(f"{name} must be a probability in [0, 1]. Received: {name}={p!r}")

    def episode_for_step(self, step: int) -> int:
        """Index of the episode that step ``step`` (0-based) uses."""
        return (int(step) // self.steps_per_episode) % len(self.episodes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["episodes"] = [list(e) for e in self.episodes]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainingDataSettings":
        d = dict(d)
        d["episodes"] = tuple(tuple(e) for e in d["episodes"])
        return cls(**d)


def episode_probabilities(lengths, episode_lengths) -> np.ndarray:
    """``(n, n_episodes)`` assignment probabilities, ∝ ``exp(-max(r, 1/r))`` with ``r = (len+2)/L``.

    >>> p = episode_probabilities([100, 1000], [128, 1024])
    >>> bool(p[0, 0] > p[0, 1]), bool(p[1, 1] > p[1, 0]), np.allclose(p.sum(1), 1)
    (True, True, True)
    """
    r = (np.asarray(lengths, dtype=np.float64)[:, None] + N_ADDED_TOKENS) / np.asarray(
        episode_lengths, dtype=np.float64)[None, :]
    logits = -np.maximum(r, 1.0 / r)
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


class PretrainingBatch(NamedTuple):
    """One global batch (numpy). ``tokens``/``annotations`` are the corrupted inputs."""

    step: int
    episode: int
    tokens: np.ndarray            # (B, L) int32
    annotations: np.ndarray       # (B, A) float32
    token_targets: np.ndarray     # (B, L) int32, the clean tokens
    annotation_targets: np.ndarray  # (B, A) float32, the true annotations
    token_weights: np.ndarray     # (B, L) float32, 1 on non-<PAD>
    annotation_weights: np.ndarray  # (B,) float32
    record_ids: np.ndarray        # (B,) int64, row numbers in the HDF5

    def fingerprint(self) -> str:
        """A short hash of every array (to compare batches across runs)."""
        import hashlib

        h = hashlib.sha1()
        for arr in self[2:]:
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


@dataclass
class _Record:
    index: int
    residues: np.ndarray  # encoded residues (no <START>/<END>)
    annotations: np.ndarray  # indices of true GO terms
    is_test: bool


@dataclass
class StreamState:
    """Where the stream stands: enough to continue it exactly."""

    step: int
    next_chunk: int
    buffers: list = field(default_factory=list)  # one int64 array of record ids per episode

    def to_arrays(self) -> dict:
        out = {"step": np.int64(self.step), "next_chunk": np.int64(self.next_chunk),
               "n_buffers": np.int64(len(self.buffers))}
        for i, buf in enumerate(self.buffers):
            out[f"buffer_{i}"] = np.asarray(buf, dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "StreamState":
        n = int(arrays["n_buffers"])
        return cls(int(arrays["step"]), int(arrays["next_chunk"]),
                   [np.asarray(arrays[f"buffer_{i}"], dtype=np.int64) for i in range(n)])


class PretrainingBatches:
    """An endless, reproducible stream of corrupted pretraining batches from an HDF5 file.

    >>> with PretrainingDataset("dataset.h5") as ds:  # doctest: +SKIP
    ...     stream = PretrainingBatches(ds, PretrainingDataSettings(seed=1))
    ...     batch = stream.next_batch()
    ...     state = stream.state()   # a later PretrainingBatches(ds, s, state=state) continues here
    """

    def __init__(self, dataset: PretrainingDataset, settings: PretrainingDataSettings,
                 state: StreamState | None = None, keep_snapshots: int = 64):
        self.dataset = dataset
        self.settings = settings
        self.n_annotations = dataset.n_annotations
        self.n_train = len(dataset) - settings.holdout_records
        if self.n_train < 1:
            raise InputError(
                f"{dataset.path}: holdout_records={settings.holdout_records} leaves no records to train on "
                f"(the file has {len(dataset)})"
            )
        self.n_chunks = -(-self.n_train // settings.chunk_size)
        self._episode_lengths = [L for L, _ in settings.episodes]
        self._buffers = [collections.deque() for _ in settings.episodes]
        self._snapshots: collections.OrderedDict = collections.OrderedDict()
        self._keep_snapshots = keep_snapshots
        self._lock = threading.Lock()  # a prefetching thread produces while training reads snapshots
        self.step = 0
        self.next_chunk = 0
        if state is not None:
            self._restore(state)
        self._snapshots[self.step - 1] = self.state()  # "after step -1": the start, for a save before any step

    # -- state --------------------------------------------------------------------------
    def state(self) -> StreamState:
        """The state now (after the last batch produced)."""
        return StreamState(self.step, self.next_chunk,
                           [np.fromiter((r.index for r in b), dtype=np.int64, count=len(b))
                            for b in self._buffers])

    def state_after(self, step: int) -> StreamState:
        """The state right after the batch of ``step`` was produced (kept for recent steps).

        A prefetching pipeline runs ahead of training; a checkpoint taken after step ``s``
        needs the stream as it was then, not as it is now.
        """
        with self._lock:
            if step in self._snapshots:
                return self._snapshots[step]
            kept = list(self._snapshots)
        raise InputError(f"no stream snapshot for step {step} (kept: steps {kept[:1]}..{kept[-1:]})")

    def _restore(self, state: StreamState) -> None:
        if len(state.buffers) != len(self._buffers):
            raise InputError(
                f"the saved stream has {len(state.buffers)} episode buffers, the settings {len(self._buffers)} episodes"
            )
        self.step, self.next_chunk = int(state.step), int(state.next_chunk)
        wanted = np.unique(np.concatenate([np.asarray(b, np.int64) for b in state.buffers] + [np.zeros(0, np.int64)]))
        records = self._read_records(wanted)
        for buf, ids in zip(self._buffers, state.buffers):
            buf.clear()
            buf.extend(records[int(i)] for i in ids)

    def _read_records(self, ids: np.ndarray) -> dict:
        """Records by row id, reading only the chunk windows that contain them."""
        out = {}
        size = self.settings.chunk_size
        for window in np.unique(ids // size):
            start = int(window) * size
            recs = self.dataset.read(start, start + size)
            for i in ids[(ids >= start) & (ids < start + size)]:
                j = int(i) - start
                out[int(i)] = self._make_record(int(i), recs, j)
        return out

    @staticmethod
    def _make_record(index, recs, j) -> _Record:
        return _Record(index, encode_residues(recs.seqs[j]),
                       np.flatnonzero(recs.annotation_masks[j]).astype(np.int32), bool(recs.test_set_mask[j]))

    # -- reading ------------------------------------------------------------------------
    def _load_chunk(self) -> None:
        k = self.next_chunk
        self.next_chunk += 1
        start = (k % self.n_chunks) * self.settings.chunk_size
        stop = min(start + self.settings.chunk_size, self.n_train)
        recs = self.dataset.read(start, stop)
        rng = np.random.default_rng([self.settings.seed, _CHUNK, k])
        order = rng.permutation(stop - start)
        probs = episode_probabilities(recs.seq_lengths[order], self._episode_lengths)
        # Inverse-CDF sampling of one episode per record.
        u = rng.random(len(order))[:, None]
        choice = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), len(self._buffers) - 1)
        for j, e in zip(order, choice):
            self._buffers[e].append(self._make_record(start + int(j), recs, int(j)))

    # -- batches ------------------------------------------------------------------------
    def next_batch(self) -> PretrainingBatch:
        """The batch of the current step; advances the stream by one step."""
        s = self.settings
        step = self.step
        episode = s.episode_for_step(step)
        seq_len, batch_size = s.episodes[episode]
        buf = self._buffers[episode]
        loaded = 0
        while len(buf) < batch_size:
            self._load_chunk()
            loaded += 1
            if loaded > 50 * self.n_chunks + 50:
                raise InputError(
                    f"{self.dataset.path}: could not gather {batch_size} records for episode "
                    f"{(seq_len, batch_size)} after {loaded} chunks; the episode lengths do not fit this data"
                )
        records = [buf.popleft() for _ in range(batch_size)]
        batch = make_batch(records, step, episode, seq_len, self.n_annotations, s,
                           np.random.default_rng([s.seed, _STEP, step]))
        with self._lock:
            self.step += 1
            self._snapshots[step] = self.state()
            while len(self._snapshots) > self._keep_snapshots:
                self._snapshots.popitem(last=False)
        return batch

    def __iter__(self) -> Iterator[PretrainingBatch]:
        while True:
            yield self.next_batch()


def make_batch(records: Sequence[_Record], step: int, episode: int, seq_len: int, n_annotations: int,
               settings: PretrainingDataSettings, rng: np.random.Generator) -> PretrainingBatch:
    """Crop, encode and corrupt ``records`` into one batch at length ``seq_len``."""
    n = len(records)
    max_res = seq_len - N_ADDED_TOKENS
    targets = np.full((n, seq_len), PAD_ID, dtype=np.int32)
    annot_true = np.zeros((n, n_annotations), dtype=bool)
    is_test = np.zeros(n, dtype=bool)
    offsets = rng.integers(0, np.iinfo(np.int64).max, size=n)
    for i, rec in enumerate(records):
        res = rec.residues
        if len(res) > max_res:
            start = int(offsets[i] % (len(res) - max_res + 1))
            res = res[start:start + max_res]
        targets[i, 0] = START_ID
        targets[i, 1:1 + len(res)] = res
        targets[i, 1 + len(res)] = END_ID
        annot_true[i, rec.annotations] = True
        is_test[i] = rec.is_test
    token_weights = (targets != PAD_ID).astype(np.float32)

    tokens = targets.copy()
    replace = (rng.random(tokens.shape) < settings.token_corruption_p) & (targets != PAD_ID)
    tokens[replace] = rng.integers(0, VOCAB_SIZE, size=int(replace.sum()), dtype=np.int32)

    u = rng.random(annot_true.shape)
    annot_in = np.where(annot_true, u >= settings.annotation_drop_p, u < settings.annotation_add_p)
    hide = (rng.random(n) < settings.no_annotations_p) | is_test
    annot_in[hide] = False
    has_annotations = annot_true.any(axis=1)
    annotation_weights = (has_annotations & ~is_test).astype(np.float32)
    return PretrainingBatch(
        step=step, episode=episode, tokens=tokens, annotations=annot_in.astype(np.float32),
        token_targets=targets, annotation_targets=annot_true.astype(np.float32),
        token_weights=token_weights, annotation_weights=annotation_weights,
        record_ids=np.array([r.index for r in records], dtype=np.int64),
    )


def holdout_batch(dataset: PretrainingDataset, settings: PretrainingDataSettings, seq_len: int | None = None,
                  max_records: int | None = None, annotation_inputs: bool = False) -> PretrainingBatch | None:
    """The held-out records (the last ``holdout_records`` of the file) as one fixed evaluation batch.

    Tokens are corrupted as in training (fixed seed). Annotation inputs are all off, so GO terms
    are predicted from the sequence alone; with ``annotation_inputs=True`` every protein (except
    test-set ones) gets its annotations corrupted as in training but never hidden (the same tokens).
    ``None`` if there is no held-out slice.
    """
    n = settings.holdout_records if max_records is None else min(settings.holdout_records, max_records)
    if n <= 0:
        return None
    start = len(dataset) - settings.holdout_records
    recs = dataset.read(start, start + n)
    records = [PretrainingBatches._make_record(start + j, recs, j) for j in range(len(recs.seqs))]
    seq_len = seq_len or settings.episodes[0][0]
    held = PretrainingDataSettings(**{**settings.to_dict(), "episodes": ((seq_len, len(records)),),
                                      "no_annotations_p": 0.0 if annotation_inputs else 1.0})
    return make_batch(records, -1, 0, seq_len, dataset.n_annotations, held,
                      np.random.default_rng([settings.seed, _HOLDOUT]))


def split_for_replicas(batch: PretrainingBatch, n_replicas: int) -> list[dict]:
    """The global batch cut into ``n_replicas`` equal parts (dicts of arrays for the model).

    Each part carries the global normalisers (non-``<PAD>`` token count, annotated-protein count),
    so replica losses summed over replicas equal the single-device loss exactly.
    """
    n = len(batch.tokens)
    if n % n_replicas:
        raise InputError(
            f"the global batch size must be a multiple of the number of replicas. "
            f"Received: batch_size={n}, replicas={n_replicas}"
        )
    per = n // n_replicas
    n_tokens = np.float32(max(batch.token_weights.sum(), 1.0))
    n_annotated = np.float32(max(batch.annotation_weights.sum(), 1.0))
    parts = []
    for r in range(n_replicas):
        sl = slice(r * per, (r + 1) * per)
        parts.append({
            "tokens": batch.tokens[sl], "annotations": batch.annotations[sl],
            "token_targets": batch.token_targets[sl], "annotation_targets": batch.annotation_targets[sl],
            "token_weights": batch.token_weights[sl], "annotation_weights": batch.annotation_weights[sl],
            "n_tokens": np.full((per,), n_tokens, np.float32),
            "n_annotated": np.full((per,), n_annotated, np.float32),
            "step": np.full((per,), batch.step, np.int64),
        })
    return parts
