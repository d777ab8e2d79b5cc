"""Protein and residue embeddings from a ProteinBERT backbone.

Two choices name what is computed:

* ``layers="last"`` — the final block's normalised states: ``d_seq`` per residue (128 for the
  released model) and ``d_global`` per protein (512);
* ``layers="all"`` — the 2021 concatenation of every hidden layer: 1562 per residue and
  15599 per protein for the released model.

Sequences are grouped into length buckets and batched under a token budget; each protein is padded
to a length set by its own length only (:func:`proteinbert.data.batching.bucket_length`), so its
embedding never depends on the other proteins in the file. There is no length cap: batches longer
than ``chunk_length`` run through :class:`~proteinbert.model.chunked.ChunkedForward`, which gives
the same numbers with a bounded working set. Outputs come back in input order.

>>> from proteinbert.model import ProteinBertBackbone
>>> model = ProteinBertBackbone(n_annotations=4, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
>>> result = embed(model, ["MKV", "ACDEFGHIK"], EmbeddingSettings(per_residue=True))
>>> result.protein.shape, [r.shape for r in result.residue]
((2, 16), [(3, 8), (9, 8)])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from .data.batching import token_budget_batches
from .errors import InputError
from .model.backbone import ProteinBertBackbone, hidden_representation_model, with_virtual_padding
from .model.chunked import ChunkedForward
from .tokenizer import PAD_ID, encode_batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingSettings:
    """What to embed and how to batch it."""

    layers: str = "last"  # "last" or "all"
    per_residue: bool = False  # also return per-residue (local) representations
    max_tokens: int = 16384  # padded tokens per batch
    max_batch_size: int = 128
    # Pad every protein to at least this many tokens (512 reproduces the 2021 habit of padding
    # everything to the model length); the padding takes part in the global attention.
    min_length: int = 0
    # Let the global attention count the <PAD> positions of padding to this length without
    # computing them (``proteinbert.model.with_virtual_padding``): 512 gives the 2021 model's
    # 512-padded embeddings at each protein's own bucket length (to ~1e-5 once the bucket holds
    # the pads within the convolutions' reach). None: the bucket's own padding only.
    virtual_pad_length: int | None = None
    # Compile with XLA: faster per batch on CPU, but every new bucket length compiles once
    # (seconds each); batches are padded to a fixed size per bucket to avoid more compiles.
    jit_compile: bool = False
    # Batches padded beyond this many positions run chunk by chunk (same numbers, far less memory:
    # 32768 residues peak under 1 GB instead of 1.1 GB); None always runs the whole batch at once.
    chunk_length: int | None = 4096

    def __post_init__(self):
        if self.chunk_length is not None and (
                not isinstance(self.chunk_length, int) or isinstance(self.chunk_length, bool) or self.chunk_length < 1):
            raise InputError(f"chunk_length must be a positive int or None. Received: chunk_length={self.chunk_length!r}")
        if self.virtual_pad_length is not None and (
                not isinstance(self.virtual_pad_length, int) or isinstance(self.virtual_pad_length, bool)
                or self.virtual_pad_length < 1):
            raise InputError("virtual_pad_length must be a positive int or None. "
                             f"Received: virtual_pad_length={self.virtual_pad_length!r}")
        if self.layers not in ("last", "all"):
            raise InputError(f"layers must be 'last' or 'all'. Received: layers={self.layers!r}")
        if self.max_tokens < 1 or self.max_batch_size < 1:
            raise InputError(
                f"max_tokens and max_batch_size must be positive. Received: max_tokens={self.max_tokens}, "
                f"max_batch_size={self.max_batch_size}"
            )


@dataclass
class Embeddings:
    """Embeddings in input order: ``protein`` (N, W_global); ``residue`` a list of (len_i, W_local) or None."""

    protein: np.ndarray
    residue: list | None = field(default=None, repr=False)
    protein_layers: tuple = ()
    residue_layers: tuple = ()


class Embedder:
    """Runs a backbone's hidden-representation model batch by batch with one traced function.

    The traced function takes any batch size and length, so varying lengths do not retrace.
    """

    def __init__(self, backbone: ProteinBertBackbone, settings: EmbeddingSettings = EmbeddingSettings()):
        import tensorflow as tf

        self.backbone = backbone
        self.settings = settings
        net = backbone if settings.virtual_pad_length is None else with_virtual_padding(
            backbone, settings.virtual_pad_length)
        self.hidden_model = hidden_representation_model(net, settings.layers)
        self.virtual_pad_length = net.virtual_pad_length
        self.protein_layers = tuple(backbone.hidden_layer_names("global", settings.layers))
        self.residue_layers = tuple(backbone.hidden_layer_names("local", settings.layers))
        self.protein_width = backbone.hidden_width("global", settings.layers)
        self.residue_width = backbone.hidden_width("local", settings.layers)
        per_residue = settings.per_residue
        model = self.hidden_model

        signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, backbone.n_annotations], tf.float32)]

        @tf.function(input_signature=signature, reduce_retracing=True, jit_compile=settings.jit_compile)
        def run(tokens, annotations):
            local, glob = model([tokens, annotations], training=False)
            return (local if per_residue else tf.zeros([0])), glob

        self._run = run
        # Chunks carry no far-<PAD> state: batches shorter than the virtual length run whole.
        self._chunk_from = max(settings.chunk_length or 0, (net.virtual_pad_length or 0) - 1)
        self._chunked = ChunkedForward(net, settings.chunk_length) if settings.chunk_length else None

    def batches(self, seqs: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray, list | None]]:
        """Yield ``(indices, protein (b, W), residue list or None)`` batch by batch (length-sorted order)."""
        lengths = [len(s) for s in seqs]
        for i, s in enumerate(seqs):
            if not isinstance(s, (str, bytes)):
                raise TypeError(f"seqs[{i}] must be str or bytes. Received: {type(s).__name__}")
            if len(s) == 0:
                raise InputError(f"seqs[{i}] is empty")
        for idx, padded_len in token_budget_batches(lengths, self.settings.max_tokens, self.settings.max_batch_size,
                                                     min_length=self.settings.min_length):
            tokens = encode_batch([seqs[i] for i in idx], padded_len)
            if self.settings.jit_compile:
                # One shape per bucket: fill the batch up with <PAD> rows (their outputs are dropped).
                rows = max(1, min(self.settings.max_batch_size, self.settings.max_tokens // padded_len))
                tokens = np.concatenate([tokens, np.full((rows - len(idx), padded_len), PAD_ID, np.int32)])
            annotations = np.zeros((len(tokens), self.backbone.n_annotations), dtype=np.float32)
            if self._chunked is not None and padded_len > self._chunk_from:
                local, glob = self._chunked.hidden(tokens, annotations, self.settings.layers, self.settings.per_residue)
            else:
                local, glob = (np.asarray(t) for t in self._run(tokens, annotations))
            residue = None
            if self.settings.per_residue:
                # Positions 1..n are the residues (0 is <START>).
                residue = [local[j, 1 : lengths[i] + 1] for j, i in enumerate(idx)]
            yield idx, glob[: len(idx)], residue


def embed(backbone: ProteinBertBackbone, seqs: Sequence[str], settings: EmbeddingSettings = EmbeddingSettings(),
          progress: Callable[[int], None] | None = None) -> Embeddings:
    """Embed ``seqs`` (str or bytes) and return :class:`Embeddings` in input order."""
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs must be a sequence of sequences, not a single str/bytes")
    seqs = list(seqs)
    from .hardware import guard_onednn_concurrency

    guard_onednn_concurrency()
    embedder = Embedder(backbone, settings)
    protein = np.zeros((len(seqs), embedder.protein_width), dtype=np.float32)
    residue = [None] * len(seqs) if settings.per_residue else None
    for idx, glob, local in embedder.batches(seqs):
        protein[idx] = glob
        if local is not None:
            for j, i in enumerate(idx):
                residue[i] = local[j]
        if progress is not None:
            progress(len(idx))
    return Embeddings(protein, residue, embedder.protein_layers, embedder.residue_layers)


def embed_fasta(backbone: ProteinBertBackbone, fasta_path, output_path,
                settings: EmbeddingSettings = EmbeddingSettings(), weights_source: str = "") -> dict:
    """Embed every record of a FASTA file into an HDF5 file (layout: :mod:`proteinbert.embedding_store`).

    Ids are preserved; duplicate ids, empty records and non-FASTA input raise
    :class:`~proteinbert.errors.FormatError` before anything is written. The output appears
    only when complete; it may not be the input (UsageError), and a second process writing the
    same output fails at once (OutputBusyError). Returns a small summary dict.
    """
    import time

    from tqdm.auto import tqdm

    from .data.fasta import check_unique_ids, read_fasta
    from .embedding_store import EmbeddingWriter, estimated_size
    from .io_utils import atomic_write_path, check_output_path, output_lock, require_space
    from .tokenizer import warn_non_residues

    check_output_path(output_path, {"fasta_path": fasta_path}, "output_path")
    path = str(fasta_path)
    records = list(check_unique_ids(read_fasta(path), path))
    ids = [r.id for r in records]
    seqs = [r.seq for r in records]
    warn_non_residues(seqs, path)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    embedder = Embedder(backbone, settings)
    attrs = {
        "layers": settings.layers,
        "protein_layers": list(embedder.protein_layers),
        "residue_layers": list(embedder.residue_layers),
        "architecture": backbone.architecture,
        "virtual_pad_length": embedder.virtual_pad_length or 0,
        "weights_source": weights_source,
        "source_fasta": path,
    }
    start = time.perf_counter()
    # HDF5 cannot recover from a write that fails half-way (it may crash the process at exit), so a
    # file that cannot fit is refused before it is started.
    residue_width = embedder.residue_width if settings.per_residue else None
    require_space(output_path, estimated_size(ids, lengths, embedder.protein_width, residue_width), "output")
    with output_lock(output_path), atomic_write_path(output_path) as tmp:
        writer = EmbeddingWriter(tmp, ids, lengths, embedder.protein_width,
                                 embedder.residue_width if settings.per_residue else None, attrs)
        try:
            with tqdm(total=int(lengths.sum()), unit="res", unit_scale=True, desc="embedding") as bar:
                for idx, glob, local in embedder.batches(seqs):
                    writer.write(idx, glob, local)
                    bar.update(int(lengths[idx].sum()))
        except BaseException:
            writer.abort()  # the first error is the one to report, not close()'s on the same full disk
            raise
        writer.close()
    seconds = time.perf_counter() - start
    summary = {
        "records": len(ids), "residues": int(lengths.sum()), "longest": int(lengths.max()),
        "protein_width": embedder.protein_width,
        "residue_width": embedder.residue_width if settings.per_residue else None,
        "seconds": round(seconds, 2), "residues_per_second": round(float(lengths.sum()) / max(seconds, 1e-9), 1),
        "output": str(output_path),
    }
    logger.info("embedded %(records)d records (%(residues)d residues) in %(seconds).1f s -> %(output)s", summary)
    return summary
