"""Evaluation of fine-tuned models by length (the 2021 ``evaluate_by_len`` semantics) and prediction tables.

Records are split into buckets of model length ``start_seq_len``, ×2, ×4, … (batch
``start_batch_size``, ÷2, ÷4, …), predicted bucket by bucket and scored per bucket and overall:
AUC (binary, multi-label: mean over labels), accuracy (categorical), Spearman's ρ (numeric),
plus a confusion matrix for binary and categorical outputs. Nothing is dropped for its length.

>>> model_length_bucket(510 + 2), model_length_bucket(511 + 2)
(512, 1024)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io_utils import atomic_write_path
from ..data.batching import fixed_length, length_batches
from .finetune_data import EncodedSet
from .finetuned_model import FinetunedModel
from .inference import batch_predictor, worth_tracing
from .output_spec import OutputSpec

logger = logging.getLogger(__name__)

METRIC_NAMES = {"binary": "AUC", "multilabel": "AUC", "categorical": "Accuracy",
                "numeric": "Spearman's rank correlation"}


def model_length_bucket(n_tokens: int, start_seq_len: int = 512, increase_factor: int = 2) -> int:
    """The smallest model length ``start_seq_len × increase_factor^k`` that holds ``n_tokens``
    (the 2021 ``evaluate_by_len`` buckets: :func:`~proteinbert.data.batching.fixed_length`)."""
    if start_seq_len < 3:
        raise InputError(f"need start_seq_len >= 3. Received: {start_seq_len}")
    return fixed_length(n_tokens, start_seq_len, increase_factor)


def _flatten(spec: OutputSpec, y_true: list, y_pred: list):
    """Concatenate records (local: all residues) into ``(truth, prediction)`` arrays."""
    if spec.level == "local":
        t = np.concatenate([np.asarray(y) for y in y_true]) if len(y_true) else np.zeros(0)
        p = np.concatenate([np.asarray(y) for y in y_pred]) if len(y_pred) else np.zeros((0, spec.n_outputs))
    else:
        t = np.stack([np.asarray(y) for y in y_true]) if len(y_true) else np.zeros(0)
        p = np.stack([np.asarray(y) for y in y_pred]) if len(y_pred) else np.zeros((0, spec.n_outputs))
    return t, p


def score(spec: OutputSpec, y_true: list, y_pred: list) -> float:
    """The metric of ``spec`` over records (NaN where undefined, e.g. AUC with one class).

    >>> score(OutputSpec("global", "binary"), [0.0, 1.0, 1.0], [[0.2], [0.9], [0.4]])
    1.0
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    t, p = _flatten(spec, y_true, y_pred)
    if len(t) == 0:
        return float("nan")
    if spec.task == "binary":
        t = t.ravel()
        if len(np.unique(t)) < 2:
            return float("nan")
        return float(roc_auc_score(t, p.reshape(len(t), -1)[:, 0]))
    if spec.task == "multilabel":
        aucs = [roc_auc_score(t[:, j], p[:, j]) for j in range(t.shape[1]) if len(np.unique(t[:, j])) == 2]
        return float(np.mean(aucs)) if aucs else float("nan")
    if spec.task == "categorical":
        return float(np.mean(np.argmax(p, axis=-1) == t))
    t = t.ravel()
    p = p.reshape(len(t), -1)[:, 0]
    if len(t) < 2 or np.all(t == t[0]) or np.all(p == p[0]):
        return float("nan")
    return float(spearmanr(t, p).statistic)


def confusion_matrix(spec: OutputSpec, y_true: list, y_pred: list) -> pd.DataFrame | None:
    """Rows: true class, columns: predicted class (binary threshold 0.5); None for numeric/multi-label."""
    if spec.task not in ("binary", "categorical"):
        return None
    t, p = _flatten(spec, y_true, y_pred)
    if spec.task == "binary":
        names = ["0", "1"]
        t = t.ravel().astype(int)
        predicted = (p.reshape(len(t), -1)[:, 0] >= 0.5).astype(int)
    else:
        names = list(spec.labels)
        t = t.astype(int)
        predicted = np.argmax(p, axis=-1)
    k = len(names)
    matrix = np.bincount(t * k + predicted, minlength=k * k).reshape(k, k)
    frame = pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    return frame


@dataclass
class Evaluation:
    """Result of :func:`evaluate_by_len`: the per-bucket table, the confusion matrix and predictions."""

    results: pd.DataFrame
    confusion_matrix: pd.DataFrame | None
    predictions: pd.DataFrame
    spec: OutputSpec

    @property
    def overall(self) -> float:
        return float(self.results.loc[self.results["Model seq len"] == "All", METRIC_NAMES[self.spec.task]].iloc[0])

    def write_predictions(self, path) -> Path:
        return write_csv(self.predictions, path)


def write_csv(frame: pd.DataFrame, path) -> Path:
    """Write ``frame`` as CSV atomically (no half-written file under the final name)."""
    with atomic_write_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def _fmt(values) -> str:
    return ";".join(f"{float(v):.5g}" for v in np.ravel(values))


def predictions_frame(spec: OutputSpec, preds: Sequence, ids: Sequence | None = None,
                      labels: Sequence | None = None) -> pd.DataFrame:
    """One row per record: ``id``, the true ``label`` (if given), ``pred`` and probabilities.

    Global binary: ``prob`` (of class 1) and ``pred`` (threshold 0.5); categorical: ``pred`` and
    ``prob_<label>`` per class; numeric: ``pred``; multi-label: ``prob_<label>`` and ``pred`` (the
    labels at ≥ 0.5, ``;``-separated). Per-residue: ``pred`` as one character per residue
    (binary/categorical) or ``;``-separated values (numeric), and ``prob`` for binary.
    """
    columns: dict = {}
    if ids is not None:
        columns["id"] = list(ids)
    if labels is not None:
        columns["label"] = list(labels)
    if spec.level == "global":
        p = np.stack([np.asarray(x, dtype=np.float64) for x in preds]) if len(preds) else np.zeros((0, spec.n_outputs))
        if spec.task == "binary":
            columns["prob"] = p[:, 0]
            columns["pred"] = (p[:, 0] >= 0.5).astype(int)
        elif spec.task == "numeric":
            columns["pred"] = p[:, 0]
        elif spec.task == "categorical":
            columns["pred"] = [spec.labels[i] for i in np.argmax(p, axis=1)]
            for j, name in enumerate(spec.labels):
                columns[f"prob_{name}"] = p[:, j]
        else:
            columns["pred"] = [";".join(spec.labels[j] for j in np.flatnonzero(row >= 0.5)) for row in p]
            for j, name in enumerate(spec.labels):
                columns[f"prob_{name}"] = p[:, j]
    else:
        if spec.task == "binary":
            columns["pred"] = ["".join("1" if v >= 0.5 else "0" for v in np.ravel(x)) for x in preds]
            columns["prob"] = [_fmt(x) for x in preds]
        elif spec.task == "categorical":
            columns["pred"] = ["".join(spec.labels[j] for j in np.argmax(np.asarray(x), axis=-1)) for x in preds]
        else:
            columns["pred"] = [_fmt(x) for x in preds]
    return pd.DataFrame(columns)


def evaluate_by_len(model: FinetunedModel, seqs: Sequence[str], labels: Sequence, start_seq_len: int | None = None,
                    start_batch_size: int = 32, increase_factor: int = 2, padding: str | None = None,
                    ids: Sequence | None = None, row_ids=None, crop_len: int | None = None) -> Evaluation:
    """Predict ``seqs`` bucket by bucket and score against ``labels``.

    ``padding="model_len"`` pads every record to its bucket's model length, exactly as the 2021
    code did (its outputs depend on the padding, which takes part in the global attention);
    ``"bucket"`` pads each record to its own length bucket. The default follows training:
    ``"model_len"`` for a model trained with fixed padding, ``"bucket"`` for bucketed training;
    ``start_seq_len`` defaults to the first stage's ``seq_len`` (512 without training metadata).

    Returns an :class:`Evaluation` whose ``results`` has the columns ``Model seq len``,
    ``# records`` and the metric, one row per non-empty bucket and a final ``All`` row.
    """
    trained_padding, trained_len = model.training_padding
    if padding is None:
        padding = "bucket" if trained_padding == "bucket" else "model_len"
    if start_seq_len is None:
        start_seq_len = trained_len
    if padding not in ("bucket", "model_len"):
        raise InputError(f"padding must be 'bucket' or 'model_len'. Received: padding={padding!r}")
    if len(seqs) == 0:
        raise InputError("nothing to evaluate: the split is empty")
    spec = model.spec
    data: EncodedSet = model.encode(seqs, labels, crop_len=crop_len, row_ids=row_ids, what="evaluation set")
    n_tokens = data.n_tokens
    buckets = np.array([model_length_bucket(n, start_seq_len, increase_factor) for n in n_tokens])
    preds: list = [None] * len(data)
    metric = METRIC_NAMES[spec.task]
    rows = []
    n_batches = -(-len(data) // max(1, start_batch_size))
    call = batch_predictor(model.model, data.n_annotations, traced=worth_tracing(n_batches))
    for length in np.unique(buckets):
        members = np.flatnonzero(buckets == length)
        level = int(round(np.log(length / start_seq_len) / np.log(increase_factor)))
        batch = max(1, start_batch_size // increase_factor ** level)
        sub = EncodedSet([data.tokens[i] for i in members], [data.labels[i] for i in members], spec,
                         data.n_annotations)
        batches = length_batches(sub.n_tokens, int(length), batch, "fixed" if padding == "model_len" else "bucket",
                                 token_budget=True)
        for indices, padded_len in batches:
            (tokens, annotations), _, _ = sub.batch(indices, padded_len)
            y = np.asarray(call(tokens, annotations))
            for row, i in enumerate(indices):
                rec = members[i]
                preds[rec] = y[row] if spec.level == "global" else y[row, 1:len(data.tokens[rec]) + 1]
        value = score(spec, [data.labels[i] for i in members], [preds[i] for i in members])
        rows.append({"Model seq len": str(int(length)), "# records": len(members), metric: value})
        logger.info("bucket %d: %d records, %s %s", length, len(members), metric,
                    f"{value:.4f}" if np.isfinite(value) else "undefined (all labels alike)")
    overall = score(spec, data.labels, preds)
    rows.append({"Model seq len": "All", "# records": len(data), metric: overall})
    results = pd.DataFrame(rows, columns=["Model seq len", "# records", metric])
    frame = predictions_frame(spec, preds, ids=ids, labels=labels)
    return Evaluation(results, confusion_matrix(spec, data.labels, preds), frame, spec)
