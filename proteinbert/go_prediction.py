"""GO-term prediction: the GO terms a pretrained model of ours gives each protein of a FASTA file.

The model's annotation output has one sigmoid per GO term of its pretraining dataset. Which GO term
each output is, is kept in every pretraining save (``state.json``, key ``annotations``). Weights
without that list, such as the released 2021 ``.pkl`` (whose list was never published), cannot
name their predictions and are refused (:class:`~proteinbert.errors.WeightsError`).

How a protein is fed: ``<START> residues <END>`` with no input annotations (all zeros), padded with
``<PAD>`` to the shortest length episode of the run that holds it (:func:`padded_length`). The
global attention sees the padding, so the padding is part of the function the model learnt; these
are the lengths it was pretrained at. A protein longer than every episode is padded to its own
length; nothing is cropped. A protein's probabilities depend on its own sequence only, never on
the rest of the file.

Which terms are reported (:func:`select_go_terms`): those with a probability of at least
``threshold``, at most the ``top_k`` most probable of them (0: no limit), most probable first.

>>> select_go_terms(np.array([[0.2, 0.9, 0.5], [0.1, 0.1, 0.4]]), threshold=0.3, top_k=0)
[[(1, 0.9), (2, 0.5)], [(2, 0.4)]]
>>> [padded_length(n, (32, 64)) for n in (20, 40, 100)]
[32, 64, 102]

The whole job (the library behind ``proteinbert predict-go``):

>>> summary = predict_go_fasta("runs/sp2k", "proteins.fasta", "go.tsv",  # doctest: +SKIP
...                            GoPredictionSettings(top_k=5), go_obo="data/go-2019-01-27.obo.gz")
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .data.batching import budget_batches
from .data.batching import episode_padded_length as padded_length
from .errors import InputError, WeightsError
from .io_utils import atomic_write_path, check_output_path, output_lock
from .tokenizer import DEFAULT_UNKNOWN_RESIDUES

logger = logging.getLogger(__name__)

#: The columns of the TSV that :func:`write_go_predictions` writes.
TSV_COLUMNS = ("protein_id", "go_id", "go_name", "probability")
#: Significant digits of the probability column.
PROBABILITY_DIGITS = 6


@dataclass(frozen=True)
class GoPredictionSettings:
    """Which terms are reported, and how many padded tokens a batch holds.

    ``threshold``: report terms with probability >= this. ``top_k``: at most this many per protein,
    the most probable (0: no limit). Both apply together.
    """

    threshold: float = 0.0
    top_k: int = 10
    max_tokens: int = 16384
    max_batch_size: int = 128

    def __post_init__(self):
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise InputError(f"threshold must be a number in [0, 1]. Received: threshold={t!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise InputError(f"top_k must be an integer >= 0 (0: no limit). Received: top_k={self.top_k!r}")
        for name in ("max_tokens", "max_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1. Received: {name}={value!r}")


@dataclass(frozen=True)
class GoCheckpoint:
    """A pretraining save that names the GO term of each annotation output."""

    path: Path  # the save directory (epoch_E_sample_S/)
    go_ids: tuple  # GO id of each annotation output, in output order
    episode_lengths: tuple  # the lengths the run was pretrained at, ascending
    go_release: str | None = None  # GO release of the dataset, where the save records it


@dataclass(frozen=True)
class GoPredictionInputs:
    """Everything :func:`write_go_predictions` needs, read and checked (no TensorFlow involved)."""

    checkpoint: GoCheckpoint
    fasta: Path
    ids: tuple
    seqs: tuple
    go_names: Mapping[str, str] = field(default_factory=dict)  # GO id -> name; empty without an OBO
    go_obo: Path | None = None


# -- the checkpoint -----------------------------------------------------------------------------
def _without_go_ids(path: Path) -> WeightsError:
    from .training.checkpoints import SAVE_PATTERN, STATE_FILE

    parent = path.parent
    if SAVE_PATTERN.match(parent.name) and (parent / STATE_FILE).is_file():
        return WeightsError(f"{path}: a weights file alone does not say which GO term each annotation output is; "
                            f"its save directory {parent} does: pass that directory instead")
    return WeightsError(
        f"{path}: cannot predict GO terms with these weights: they do not say which GO term each annotation "
        "output is (the released 2021 weights never published that list); pass a pretraining save or run "
        "directory written by `proteinbert pretrain`, whose state.json names them")


def open_go_checkpoint(path) -> GoCheckpoint:
    """The save at ``path``: a save directory (``epoch_E_sample_S/``) or a run directory (its newest
    save). Reads ``state.json`` only; a weights file (``.pkl``, ``.keras`` …) is refused."""
    from .data.pretraining_batches import PretrainingDataSettings
    from .training import checkpoints

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        raise _without_go_ids(path)
    if checkpoints.SAVE_PATTERN.match(path.name):
        if not (path / checkpoints.STATE_FILE).is_file():
            raise WeightsError(f"{path}: an incomplete pretraining save (no {checkpoints.STATE_FILE})")
        save = path
    else:
        latest = checkpoints.latest_save(path)
        if latest is None:
            raise WeightsError(f"{path}: not a pretraining save or run directory (no epoch_E_sample_S/ directory "
                               f"with a {checkpoints.STATE_FILE} in it)")
        save = latest.path
        logger.info("using the newest save of %s: %s", path, save.name)
    state = checkpoints.read_state(save)
    where = save / checkpoints.STATE_FILE
    go_ids = state["annotations"]
    if not go_ids or not all(isinstance(g, str) and g for g in go_ids):
        raise WeightsError(f"{where}: annotations must be a non-empty list of GO ids. Received: {go_ids!r:.80}")
    if len(set(go_ids)) != len(go_ids):
        raise WeightsError(f"{where}: annotations name a GO id twice; the outputs cannot be told apart")
    if not (save / f"{save.name}.pkl").is_file():
        raise WeightsError(f"{save}: the weights file {save.name}.pkl is missing")
    try:
        episodes = PretrainingDataSettings.from_dict(state["data"]).episodes
    except (InputError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: unreadable data settings ({exc})") from exc
    dataset = state.get("dataset")
    release = dataset.get("go_release") if isinstance(dataset, dict) else None
    return GoCheckpoint(save, tuple(go_ids), tuple(sorted({int(L) for L, _ in episodes})),
                        release if isinstance(release, str) else None)


def load_go_model(checkpoint: GoCheckpoint, dtype=None):
    """The backbone of ``checkpoint`` with its weights."""
    from .training.pretrained import load_pretrained

    model, go_ids = load_pretrained(checkpoint.path, dtype=dtype)
    if tuple(go_ids) != checkpoint.go_ids:  # the save was replaced since it was opened
        raise WeightsError(f"{checkpoint.path}: its GO terms changed while it was being read")
    return model


# -- GO names -----------------------------------------------------------------------------------
def read_go_names(obo_path, go_ids: Sequence[str], expected_release: str | None = None) -> dict:
    """``{GO id: name}`` for ``go_ids`` from an OBO file (alt ids resolved; "" where absent)."""
    from .data.gene_ontology import read_gene_ontology

    go = read_gene_ontology(obo_path, allow_defects=True)  # names only: defects are warned about, not fatal
    if expected_release and go.release != expected_release:
        logger.warning("%s is GO %s, the model's dataset was built from GO %s: some names may differ", obo_path,
                       go.release, expected_release)
    names = {g: go.names.get(g) or go.names.get(go.alt_ids.get(g, ""), "") for g in go_ids}
    missing = sum(not n for n in names.values())
    if missing:
        logger.warning("%s: %d of the model's %d GO terms are not in it; their go_name is empty", obo_path, missing,
                       len(go_ids))
    return names


def read_go_inputs(checkpoint, fasta, go_obo=None, unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES) -> GoPredictionInputs:
    """Open the checkpoint, read the FASTA (unique ids) and the GO names; nothing starts TensorFlow."""
    from .data.fasta import check_unique_ids, read_fasta
    from .tokenizer import check_residues

    ckpt = checkpoint if isinstance(checkpoint, GoCheckpoint) else open_go_checkpoint(checkpoint)
    fasta = Path(fasta)
    if not fasta.is_file():
        raise InputError(f"FASTA {fasta} does not exist or is not a file")
    records = list(check_unique_ids(read_fasta(fasta), str(fasta)))
    seqs = tuple(r.seq for r in records)
    check_residues(seqs, str(fasta), unknown_residues, ids=tuple(r.id for r in records))
    names = {}
    if go_obo is not None:
        go_obo = Path(go_obo)
        if not go_obo.is_file():
            raise InputError(f"OBO file {go_obo} does not exist or is not a file")
        names = read_go_names(go_obo, ckpt.go_ids, ckpt.go_release)
    return GoPredictionInputs(ckpt, fasta, tuple(r.id for r in records), seqs, names, go_obo)


# -- the model's output -------------------------------------------------------------------------
def annotation_probabilities(model, seqs: Sequence[str], episode_lengths: Sequence[int], max_tokens: int = 16384,
                             max_batch_size: int = 128) -> np.ndarray:
    """``(len(seqs), n_annotations)`` float32: the annotation output for each sequence alone (no input
    annotations), each padded to :func:`padded_length`."""
    import tensorflow as tf

    from .tokenizer import encode_batch

    n_out = int(model.n_annotations)
    # One graph for every batch shape: long proteins make many lengths, and a Keras model called
    # eagerly costs about 7 times as much per small batch (measured on 400 proteins, 71 lengths).
    run = tf.function(lambda tokens, annotations: model([tokens, annotations], training=False)[1],
                      input_signature=[tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, n_out), tf.float32)])
    out = np.zeros((len(seqs), n_out), np.float32)
    lengths = [padded_length(len(s), episode_lengths) for s in seqs]
    for idx, L in budget_batches(lengths, max_tokens, max_batch_size):
        tokens = encode_batch([seqs[i] for i in idx], L)
        probs = run(tf.constant(tokens), tf.zeros((len(idx), n_out), tf.float32))
        out[idx] = np.asarray(probs, dtype=np.float32)
    return out


def select_go_terms(probs, threshold: float = 0.0, top_k: int = 0) -> list:
    """Per row of ``probs``: ``[(output index, probability)]`` with probability >= ``threshold``,
    most probable first (ties: lower index first), at most ``top_k`` (0: all)."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise InputError(f"probs must be 2-dimensional (proteins x GO terms). Received: shape {probs.shape}")
    out = []
    for row in probs:
        keep = np.flatnonzero(row >= threshold)
        order = keep[np.lexsort((keep, -row[keep]))]
        if top_k:
            order = order[:top_k]
        out.append([(int(j), float(row[j])) for j in order])
    return out


def predict_go(model, checkpoint: GoCheckpoint, seqs: Sequence[str],
               settings: GoPredictionSettings = GoPredictionSettings()) -> list:
    """``[[(GO id, probability)]]`` per sequence, as :func:`select_go_terms` chooses them."""
    if int(model.n_annotations) != len(checkpoint.go_ids):
        raise InputError(f"the model has {model.n_annotations} annotation outputs, the checkpoint names "
                         f"{len(checkpoint.go_ids)} GO terms")
    probs = annotation_probabilities(model, seqs, checkpoint.episode_lengths, settings.max_tokens,
                                     settings.max_batch_size)
    return [[(checkpoint.go_ids[j], p) for j, p in row]
            for row in select_go_terms(probs, settings.threshold, settings.top_k)]


def predict_go_terms(model, annotations, seqs, top_k: int = 5, seq_len: int = 512) -> list:
    """Top-``k`` GO ids with probabilities for each sequence (no annotation input).

    ``annotations`` is the GO id list of the model's slots (kept in every save's ``state.json``).
    Sequences are cropped to ``seq_len - 2`` residues and padded to ``seq_len``;
    :func:`predict_go` (``proteinbert predict-go``) pads as pretraining did instead.

    >>> model, go_ids = load_pretrained("run/epoch_40_sample_51200")  # doctest: +SKIP
    >>> top = predict_go_terms(model, go_ids, ["MKVLAAGIVALLKE"], top_k=3)  # doctest: +SKIP
    """
    from .tokenizer import N_ADDED_TOKENS, encode_batch

    seqs = [s[: seq_len - N_ADDED_TOKENS] for s in seqs]
    tokens = encode_batch(seqs, seq_len)
    _, probs = model([tokens, np.zeros((len(seqs), len(annotations)), np.float32)], training=False)
    return [[(annotations[j], p) for j, p in row] for row in select_go_terms(np.asarray(probs), top_k=top_k)]


# -- the TSV ------------------------------------------------------------------------------------
def _write_tsv(path, ids: Sequence[str], predictions: Sequence, go_names: Mapping[str, str]) -> int:
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        for protein, terms in zip(ids, predictions):
            for go_id, p in terms:
                writer.writerow((protein, go_id, go_names.get(go_id, ""), f"{p:.{PROBABILITY_DIGITS}g}"))
                rows += 1
    return rows


def write_go_predictions(inputs: GoPredictionInputs, output, settings: GoPredictionSettings = GoPredictionSettings(),
                         model=None) -> dict:
    """Predict the GO terms of ``inputs`` and write them as a TSV (:data:`TSV_COLUMNS`): proteins in
    file order, each protein's terms most probable first; a protein with no term passing the
    settings has no row. The file appears only when complete. Returns a summary dict.

    ``model``: the checkpoint's backbone, if already loaded (else it is loaded here).
    """
    sources = {"checkpoint": inputs.checkpoint.path, "fasta": inputs.fasta, "go_obo": inputs.go_obo}
    check_output_path(output, sources, "output")
    start = time.perf_counter()
    with output_lock(output, "output"):
        if model is None:
            from .hardware import guard_onednn_concurrency

            guard_onednn_concurrency()  # before the first TensorFlow operation (see its docstring)
            model = load_go_model(inputs.checkpoint)
        predictions = predict_go(model, inputs.checkpoint, inputs.seqs, settings)
        with atomic_write_path(output) as tmp:
            rows = _write_tsv(tmp, inputs.ids, predictions, inputs.go_names)
    if not inputs.go_names:
        logger.info("go_name is empty: no OBO file was given")
    summary = {
        "proteins": len(inputs.ids), "rows": rows,
        "proteins_without_terms": sum(not terms for terms in predictions),
        "go_terms": len(inputs.checkpoint.go_ids), "threshold": settings.threshold, "top_k": settings.top_k,
        "checkpoint": str(inputs.checkpoint.path), "output": str(output),
        "seconds": round(time.perf_counter() - start, 2),
    }
    logger.info("%s", json.dumps(summary))
    return summary


def predict_go_fasta(checkpoint, fasta, output, settings: GoPredictionSettings = GoPredictionSettings(),
                     go_obo=None) -> dict:
    """:func:`read_go_inputs` then :func:`write_go_predictions`."""
    return write_go_predictions(read_go_inputs(checkpoint, fasta, go_obo), output, settings)


__all__ = [
    "TSV_COLUMNS", "GoPredictionSettings", "GoCheckpoint", "GoPredictionInputs", "open_go_checkpoint",
    "load_go_model", "read_go_names", "read_go_inputs", "padded_length", "annotation_probabilities",
    "select_go_terms", "predict_go", "predict_go_terms", "write_go_predictions", "predict_go_fasta",
]
