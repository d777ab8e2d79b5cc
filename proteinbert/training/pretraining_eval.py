"""Held-out evaluation of pretraining: token and GO metrics on the held-out slice, each with its
baseline (the keys are described in :mod:`.pretraining_metrics`).

:func:`evaluate_batch` scores any ``predict`` function on one batch; :class:`HeldoutEvaluation`
is what a run reports after its epochs.
"""

from __future__ import annotations

import numpy as np

from ..data.pretraining_batches import holdout_batch
from .pretraining_metrics import (
    accuracies, accuracy_counts, position_masks, recovery_accuracy, recovery_baseline, training_label_frequencies,
    unigram_baseline,
)

#: The GO AUC keys that are also reported with part of the annotations given as input.
_PARTIAL_INPUT_KEYS = ("eval_go_auc_macro", "eval_go_auc_micro", "eval_go_auc_micro_baseline")


def column_auc(y, scores, mask=None) -> np.ndarray:
    """ROC AUC of every column (ties count half); NaN where a column lacks positives or negatives.

    Rank-sum (Mann-Whitney) form, vectorised over columns: equal to sklearn's ``roc_auc_score``.
    ``mask`` (same shape, bool) keeps only the ``True`` entries of each column.

    >>> column_auc(np.array([[1, 0], [0, 1], [1, 1]]), np.array([[0.9, 0.2], [0.1, 0.2], [0.5, 0.3]])).round(2)
    array([1.  , 0.75])
    """
    from scipy.stats import rankdata

    scores = np.array(scores, dtype=np.float64)
    mask = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)
    scores[~mask] = np.nan
    y = (np.asarray(y) > 0) & mask
    ranks = np.nan_to_num(rankdata(scores, axis=0, nan_policy="omit"))
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = mask.sum(axis=0) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _micro_auc(y, scores, keep) -> float:
    """ROC AUC over all kept (protein, term) pairs pooled."""
    return float(column_auc(y.reshape(-1, 1), scores.reshape(-1, 1), keep.reshape(-1, 1))[0])


def _predict_in_batches(predict, batch, batch_size: int):
    seq_parts, annot_parts = [], []
    for i in range(0, len(batch.tokens), batch_size):
        seq_p, annot_p = predict(batch.tokens[i:i + batch_size], batch.annotations[i:i + batch_size])
        seq_parts.append(np.asarray(seq_p))
        annot_parts.append(np.asarray(annot_p))
    return np.concatenate(seq_parts), np.concatenate(annot_parts).astype(np.float64)


def _token_metrics(seq_p, batch) -> dict:
    w = batch.token_weights > 0
    targets = batch.token_targets
    p_true = np.take_along_axis(seq_p, targets[..., None].astype(np.int64), -1)[..., 0]
    out = {"eval_seq_loss": float(-np.log(np.clip(p_true[w], 1e-7, 1)).mean())}
    counts = accuracy_counts(seq_p.argmax(-1).astype(targets.dtype), batch.tokens, targets, batch.token_weights)
    out.update(accuracies(counts, prefix="eval_"))
    corrupted, _ = position_masks(batch.tokens, targets, batch.token_weights)
    if corrupted.any():
        out["eval_corrupted_unigram_baseline"] = unigram_baseline(targets[corrupted])
        out["eval_corrupted_positions"] = int(corrupted.sum())
        out["eval_corrupted_recovery_accuracy"] = recovery_accuracy(seq_p, batch.tokens, targets, corrupted)
        out["eval_corrupted_recovery_baseline"] = recovery_baseline(batch.tokens, targets, corrupted)
    return out


def _go_metrics(annot_p, batch, only_not_given: bool, label_frequencies) -> dict:
    out = {}
    annotated = batch.annotation_targets.any(axis=1)
    if not annotated.any():
        return out
    y = batch.annotation_targets[annotated]
    p = np.clip(annot_p[annotated], 1e-7, 1 - 1e-7)
    out["eval_annot_loss"] = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    keep = ~(batch.annotations[annotated] > 0) if only_not_given else np.ones(y.shape, bool)
    aucs = column_auc(y, p, keep)
    if np.isfinite(aucs).any():
        out["eval_go_auc_macro"] = float(np.nanmean(aucs))
        out["eval_go_terms_scored"] = int(np.isfinite(aucs).sum())
    micro = _micro_auc(y, p, keep)
    if np.isfinite(micro):
        out["eval_go_auc_micro"] = micro
        if label_frequencies is not None:
            constant = np.broadcast_to(np.asarray(label_frequencies, np.float64), y.shape)
            out["eval_go_auc_micro_baseline"] = _micro_auc(y, np.ascontiguousarray(constant), keep)
    return out


def evaluate_batch(predict, batch, batch_size: int = 64, only_not_given: bool = False,
                   label_frequencies=None) -> dict:
    """Held-out metrics on one :class:`PretrainingBatch` (annotation inputs as given), each with
    its baseline (the keys are described in :mod:`.pretraining_metrics`).

    ``predict(tokens, annotations) -> (token probs, annotation probs)``, e.g. a backbone's call.
    With ``only_not_given`` the GO AUCs leave out the (protein, term) pairs given as input, so they
    measure recovering withheld annotations from the rest. ``label_frequencies`` (one per GO term,
    from the training proteins; see :func:`training_label_frequencies`) gives
    ``eval_go_auc_micro_baseline``; without it that key is left out.
    """
    seq_p, annot_p = _predict_in_batches(predict, batch, batch_size)
    return {**_token_metrics(seq_p, batch), **_go_metrics(annot_p, batch, only_not_given, label_frequencies)}


class HeldoutEvaluation:
    """The held-out metrics of ``model`` as it is now, with part of the annotations given as input
    too (``eval_partial_input_*``); ``{}`` without a held-out slice.

    The fixed batches and the label frequencies are read at the first call, the traced predict
    made then; later calls reuse them.
    """

    def __init__(self, model, dataset, settings):
        self.model, self.dataset, self.settings = model, dataset, settings
        self._inputs = None  # (batch, batch with annotation inputs, label frequencies); False: no slice
        self._predict = None

    def __call__(self) -> dict:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        if self._inputs is False:
            return {}
        if self._predict is None:
            self._predict = self._traced_predict()
        batch, given, freqs = self._inputs
        size = self.settings.eval_batch_size
        out = evaluate_batch(self._predict, batch, size, label_frequencies=freqs)
        with_inputs = evaluate_batch(self._predict, given, size, only_not_given=True, label_frequencies=freqs)
        for key in _PARTIAL_INPUT_KEYS:
            if key in with_inputs:
                out[key.replace("eval_", "eval_partial_input_")] = with_inputs[key]
        return out

    def _read_inputs(self):
        s = self.settings
        kw = dict(seq_len=s.eval_seq_len, max_records=s.eval_max_records)
        batch = holdout_batch(self.dataset, s.data, **kw)
        given = holdout_batch(self.dataset, s.data, annotation_inputs=True, **kw)
        freqs = training_label_frequencies(self.dataset, s.data) if batch is not None else None
        return (batch, given, freqs) if batch is not None else False

    def _traced_predict(self):
        import tensorflow as tf

        model = self.model
        return tf.function(lambda t, a: model([t, a], training=False), input_signature=[
            tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, model.n_annotations), tf.float32)])
