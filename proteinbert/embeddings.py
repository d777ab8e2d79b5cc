"""Protein and residue embeddings from a ProteinBERT backbone.

Two choices name what is computed:

* ``layers="last"`` — the final block's normalised states: ``d_seq`` per residue (128 for the
  released model) and ``d_global`` per protein (512);
* ``layers="all"`` — the 2021 concatenation of every hidden layer: 1562 per residue and
  15599 per protein for the released model.

and ``pool`` which per-protein vectors come out: ``"global"`` (the global track's vector,
``Embeddings.protein``), ``"mean"`` (the mean of the per-residue vectors over the protein's own
residues, ``Embeddings.mean_residue``; ``<START>``, ``<END>`` and ``<PAD>`` are left out) or
``"both"``.

**Padding.** The released model attends over the ``<PAD>`` positions too, so a protein's
embedding depends on the length it is padded to. By default every protein that fits in
:data:`~proteinbert.data.batching.DEFAULT_PAD_LENGTH` tokens (512, the 2021 model length, also
fine-tuning's default ``seq_len``) is embedded as if padded to it, as the 2021 code did: the
global attention counts the missing ``<PAD>`` positions without computing them
(``virtual_pad_length``), and each protein keeps real ``<PAD>`` positions for twice the
convolutions' reach after its sequence (``pad_margin``), so that the pads the convolutions see
are computed as in a 512-long batch. That gives the 512-padded numbers to float rounding (1-4e-5
measured), computing at most the positions of padding to 512: about the same time on proteins of
Swiss-Prot's length mix, 0.7 of it on proteins up to 150 residues (``docs/performance.md``).
Each protein's padded length depends on its own length only, so its embedding never depends on the
other proteins in the file. ``virtual_pad_length=None`` pads each protein only to its length bucket (cheapest; short
proteins then differ from their 2021 embeddings), ``min_length=512`` pads for real.

Sequences are grouped into length buckets and batched under a token budget. There is no length
cap: batches longer than ``chunk_length`` run through
:class:`~proteinbert.model.chunked.ChunkedForward`, which gives the same numbers with a bounded
working set. Outputs come back in input order.

>>> from proteinbert.model import ProteinBertBackbone
>>> model = ProteinBertBackbone(n_annotations=4, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
>>> result = embed(model, ["MKV", "ACDEFGHIK"], EmbeddingSettings(per_residue=True, pool="both"))
>>> result.protein.shape, result.mean_residue.shape, [r.shape for r in result.residue]
((2, 16), (2, 8), [(3, 8), (9, 8)])
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from .data.batching import DEFAULT_PAD_LENGTH, bucket_length, token_budget_batches, with_pad_margin
from .embedding_store import POOLS
from .errors import InputError
from .model.backbone import ProteinBertBackbone, hidden_representation_model, with_virtual_padding
from .model.chunked import ChunkedForward
from .tokenizer import DEFAULT_UNKNOWN_RESIDUES, N_ADDED_TOKENS, PAD_ID, encode_batch

logger = logging.getLogger(__name__)


def _positive_or_none(name: str, value, minimum: int = 1) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise InputError(f"{name} must be {kind} or None. Received: {name}={value!r}")


@dataclass(frozen=True)
class EmbeddingSettings:
    """What to embed and how to batch it (the module docstring explains the padding)."""

    layers: str = "last"  # "last" or "all"
    per_residue: bool = False  # also return per-residue (local) representations
    # Per-protein vectors: "global" (the global track), "mean" (mean of the per-residue vectors over
    # the residues), or "both".
    pool: str = "global"
    max_tokens: int = 16384  # padded tokens per batch
    max_batch_size: int = 128
    # Pad every protein to at least this many tokens, for real (512: the 2021 cost too).
    min_length: int = 0
    # The global attention counts the <PAD> positions of padding to this length without computing
    # them (proteinbert.model.with_virtual_padding). None: each protein's bucket padding only.
    virtual_pad_length: int | None = DEFAULT_PAD_LENGTH
    # Real <PAD> positions kept after each sequence under virtual padding (never beyond the virtual
    # length). None: twice the backbone's convolution reach (convolution_reach), which reproduces
    # padding to virtual_pad_length to float rounding; 0: none (cheaper, approximate: short
    # proteins' last residues and, less, their protein vectors differ).
    pad_margin: int | None = None
    # Compile with XLA: faster per batch on CPU, but every new bucket length compiles once
    # (seconds each); batches are padded to a fixed size per bucket to avoid more compiles.
    jit_compile: bool = False
    # Batches padded beyond this many positions run chunk by chunk (same numbers, far less memory:
    # 32768 residues peak under 1 GB instead of 1.1 GB); None always runs the whole batch at once.
    chunk_length: int | None = 4096

    def __post_init__(self):
        _positive_or_none("chunk_length", self.chunk_length)
        _positive_or_none("virtual_pad_length", self.virtual_pad_length)
        _positive_or_none("pad_margin", self.pad_margin, minimum=0)
        if self.layers not in ("last", "all"):
            raise InputError(f"layers must be 'last' or 'all'. Received: layers={self.layers!r}")
        if self.pool not in POOLS:
            raise InputError(f"pool must be one of {', '.join(map(repr, POOLS))}. Received: pool={self.pool!r}")
        if self.max_tokens < 1 or self.max_batch_size < 1:
            raise InputError(
                f"max_tokens and max_batch_size must be positive. Received: max_tokens={self.max_tokens}, "
                f"max_batch_size={self.max_batch_size}"
            )

    @property
    def vectors(self) -> tuple[str, ...]:
        """The outputs asked for, in order: ``"protein"`` (global), ``"mean_residue"``, ``"residue"``.

        >>> EmbeddingSettings(pool="mean", per_residue=True).vectors
        ('mean_residue', 'residue')
        """
        names = [n for n, on in (("protein", self.pool != "mean"), ("mean_residue", self.pool != "global"),
                                 ("residue", self.per_residue)) if on]
        return tuple(names)


def convolution_reach(backbone: ProteinBertBackbone) -> int:
    """Positions a residue's output can see on either side through the local track's convolutions.

    Per block, the wide convolution reaches ``ceil(dilation * (kernel - 1) / 2)`` positions (as
    :class:`~proteinbert.model.chunked.ChunkedForward`'s halo); the blocks add up.

    >>> from proteinbert.model import ProteinBertBackbone, RELEASED_CONFIG
    >>> convolution_reach(ProteinBertBackbone(**RELEASED_CONFIG))
    120
    """
    per_block = math.ceil(max(backbone.wide_conv_dilation_rate, 1) * (backbone.conv_kernel_size - 1) / 2)
    return backbone.n_blocks * per_block


@dataclass
class Embeddings:
    """Embeddings in input order; each is None unless asked for (:attr:`EmbeddingSettings.vectors`).

    ``protein`` (N, W_global): the global track's vector. ``mean_residue`` (N, W_local): the mean of
    each protein's per-residue vectors. ``residue``: a list of (len_i, W_local) arrays.
    """

    protein: np.ndarray | None
    residue: list | None = field(default=None, repr=False)
    protein_layers: tuple = ()
    residue_layers: tuple = ()
    mean_residue: np.ndarray | None = field(default=None, repr=False)


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
        margin = 0
        if net.virtual_pad_length is not None:
            margin = 2 * convolution_reach(backbone) if settings.pad_margin is None else settings.pad_margin
        self.pad_margin = margin
        self.vectors = settings.vectors
        self.protein_layers = tuple(backbone.hidden_layer_names("global", settings.layers))
        self.residue_layers = tuple(backbone.hidden_layer_names("local", settings.layers))
        self.protein_width = backbone.hidden_width("global", settings.layers)
        self.residue_width = backbone.hidden_width("local", settings.layers)
        self._need_local = settings.per_residue or "mean_residue" in self.vectors
        need_local = self._need_local
        model = self.hidden_model

        signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, backbone.n_annotations], tf.float32)]

        @tf.function(input_signature=signature, reduce_retracing=True, jit_compile=settings.jit_compile)
        def run(tokens, annotations):
            local, glob = model([tokens, annotations], training=False)
            return (local if need_local else tf.zeros([0])), glob

        self._run = run
        # Chunks carry no far-<PAD> state: batches shorter than the virtual length run whole.
        self._chunk_from = max(settings.chunk_length or 0, (net.virtual_pad_length or 0) - 1)
        self._chunked = ChunkedForward(net, settings.chunk_length) if settings.chunk_length else None

    @property
    def widths(self) -> dict:
        """Width of each vector asked for, by name (:attr:`EmbeddingSettings.vectors`)."""
        every = {"protein": self.protein_width, "mean_residue": self.residue_width, "residue": self.residue_width}
        return {name: every[name] for name in self.vectors}

    def padded_lengths(self, lengths: Sequence[int]) -> list[int]:
        """The length each protein is padded to (a function of its own length alone).

        Its length bucket, after ``pad_margin`` extra positions under virtual padding; a protein
        that fits the virtual length is never padded beyond it.
        """
        return [bucket_length(n + N_ADDED_TOKENS, min_length=self.settings.min_length)
                for n in self._batching_lengths(lengths)]

    def _batching_lengths(self, lengths: Sequence[int]) -> list[int]:
        """Residue counts that ``token_budget_batches`` buckets by (the margin added)."""
        if not self.pad_margin:
            return list(lengths)
        return with_pad_margin(lengths, self.pad_margin, self.virtual_pad_length)

    def batches(self, seqs: Sequence[str]) -> Iterator[tuple[np.ndarray, dict]]:
        """Yield ``(indices, vectors)`` batch by batch (length-sorted order); ``vectors`` maps each name
        of :attr:`EmbeddingSettings.vectors` to ``(b, W)`` arrays (``"residue"``: a list of
        ``(len_i, W)`` arrays)."""
        lengths = [len(s) for s in seqs]
        for i, s in enumerate(seqs):
            if not isinstance(s, (str, bytes)):
                raise TypeError(f"seqs[{i}] must be str or bytes. Received: {type(s).__name__}")
            if len(s) == 0:
                raise InputError(f"seqs[{i}] is empty")
        for idx, padded_len in token_budget_batches(self._batching_lengths(lengths), self.settings.max_tokens,
                                                     self.settings.max_batch_size, min_length=self.settings.min_length):
            tokens = encode_batch([seqs[i] for i in idx], padded_len)
            if self.settings.jit_compile:
                # One shape per bucket: fill the batch up with <PAD> rows (their outputs are dropped).
                rows = max(1, min(self.settings.max_batch_size, self.settings.max_tokens // padded_len))
                tokens = np.concatenate([tokens, np.full((rows - len(idx), padded_len), PAD_ID, np.int32)])
            annotations = np.zeros((len(tokens), self.backbone.n_annotations), dtype=np.float32)
            if self._chunked is not None and padded_len > self._chunk_from:
                local, glob = self._chunked.hidden(tokens, annotations, self.settings.layers, self._need_local)
            else:
                local, glob = (np.asarray(t) for t in self._run(tokens, annotations))
            out = {}
            if "protein" in self.vectors:
                out["protein"] = glob[: len(idx)]
            if self._need_local:
                # Positions 1..n are the residues (0 is <START>, n + 1 <END>, then <PAD>).
                rows = [local[j, 1 : lengths[i] + 1] for j, i in enumerate(idx)]
                if "mean_residue" in self.vectors:
                    out["mean_residue"] = np.stack([r.mean(axis=0, dtype=np.float64) for r in rows]).astype(np.float32)
                if self.settings.per_residue:
                    out["residue"] = rows
            yield idx, out


def embed(backbone: ProteinBertBackbone, seqs: Sequence[str], settings: EmbeddingSettings = EmbeddingSettings(),
          progress: Callable[[int], None] | None = None) -> Embeddings:
    """Embed ``seqs`` (str or bytes) and return :class:`Embeddings` in input order."""
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs must be a sequence of sequences, not a single str/bytes")
    seqs = list(seqs)
    from .hardware import guard_onednn_concurrency

    guard_onednn_concurrency()
    embedder = Embedder(backbone, settings)
    widths = embedder.widths
    pooled = {name: np.zeros((len(seqs), widths[name]), dtype=np.float32)
              for name in ("protein", "mean_residue") if name in widths}
    residue = [None] * len(seqs) if settings.per_residue else None
    for idx, vectors in embedder.batches(seqs):
        for name, array in pooled.items():
            array[idx] = vectors[name]
        if residue is not None:
            for j, i in enumerate(idx):
                residue[i] = vectors["residue"][j]
        if progress is not None:
            progress(len(idx))
    return Embeddings(pooled.get("protein"), residue, embedder.protein_layers, embedder.residue_layers,
                      mean_residue=pooled.get("mean_residue"))


def embed_fasta(backbone: ProteinBertBackbone, fasta_path, output_path,
                settings: EmbeddingSettings = EmbeddingSettings(), weights_source: str = "",
                format: str = "h5", overwrite: bool = False, progress_bar: bool = True,
                unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES) -> dict:
    """Embed every record of a FASTA file into ``output_path`` and return a small summary dict.

    ``format``: ``"h5"`` (one HDF5 file), ``"npz"`` (one numpy archive) or ``"npy-dir"`` (a
    directory of ``.npy`` files with an ``index.tsv``); :mod:`proteinbert.embedding_store`
    describes the layouts and reads all three back. Ids are preserved; duplicate ids, empty records
    and non-FASTA input raise :class:`~proteinbert.errors.FormatError` before anything is written.
    The output appears only when complete (an error or an interrupt leaves none); it may not be the
    input, an existing one is replaced only with ``overwrite`` (both UsageError), and a second
    process writing the same output fails at once (OutputBusyError).
    """
    from .embedding_store import check_output_for_format, output_kind, writing_embeddings
    from .io_utils import check_output_path, output_lock

    check_output_path(output_path, {"fasta_path": fasta_path}, "output_path", overwrite=overwrite,
                      kind=output_kind(format))
    check_output_for_format(output_path, format, "output_path")
    path = str(fasta_path)
    ids, seqs = _read_fasta_records(path, unknown_residues)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    embedder = Embedder(backbone, settings)
    attrs = _output_attrs(embedder, weights_source, path)
    start = time.perf_counter()
    with output_lock(output_path), writing_embeddings(output_path, format, ids, lengths, embedder.widths,
                                                      attrs) as writer:
        _write_batches(embedder, seqs, lengths, writer, progress_bar)
    summary = _run_summary(embedder, lengths, format, time.perf_counter() - start, output_path)
    logger.info("embedded %(records)d records (%(residues)d residues) in %(seconds).1f s -> %(output)s", summary)
    return summary


def _read_fasta_records(path: str, unknown_residues: str) -> tuple[list, list]:
    """The ids and sequences of a FASTA file, refused (FormatError) before anything is written."""
    from .data.fasta import check_unique_ids, read_fasta
    from .tokenizer import check_residues

    records = list(check_unique_ids(read_fasta(path), path))
    ids = [r.id for r in records]
    seqs = [r.seq for r in records]
    check_residues(seqs, path, unknown_residues, ids=ids)
    return ids, seqs


def _output_attrs(embedder: Embedder, weights_source: str, source_fasta: str) -> dict:
    """What an embeddings output records about how it was computed (its ``attrs``)."""
    settings = embedder.settings
    return {
        "layers": settings.layers,
        "pool": settings.pool,
        "protein_layers": list(embedder.protein_layers),
        "residue_layers": list(embedder.residue_layers),
        "architecture": embedder.backbone.architecture,
        "virtual_pad_length": embedder.virtual_pad_length or 0,
        "pad_margin": embedder.pad_margin,
        "min_length": settings.min_length,
        "weights_source": weights_source,
        "source_fasta": source_fasta,
    }


def _write_batches(embedder: Embedder, seqs: list, lengths: np.ndarray, writer, progress_bar: bool) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=int(lengths.sum()), unit="res", unit_scale=True, desc="embedding",
              disable=not progress_bar) as bar:
        for idx, vectors in embedder.batches(seqs):
            writer.write(idx, vectors)
            bar.update(int(lengths[idx].sum()))


def _run_summary(embedder: Embedder, lengths: np.ndarray, format: str, seconds: float, output_path) -> dict:
    return {
        "records": len(lengths), "residues": int(lengths.sum()), "longest": int(lengths.max()),
        **{f"{name}_width": width for name, width in embedder.widths.items()},
        "format": format,
        "seconds": round(seconds, 2), "residues_per_second": round(float(lengths.sum()) / max(seconds, 1e-9), 1),
        "output": str(output_path),
    }
