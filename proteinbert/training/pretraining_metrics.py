"""Pretraining metrics, each next to what a trivial model scores (see :mod:`.pretraining`).

Accuracy is split at corrupted and uncorrupted positions (copying the input scores 1 at the
latter); GO AUCs come with the scores of constant and label-frequency baselines.
"""

from __future__ import annotations

import numpy as np

#: Macro ROC AUC of any constant score (every term's positives and negatives tie): the baseline
#: of ``eval_go_auc_macro``, label frequencies included.
MACRO_AUC_BASELINE = 0.5

#: Training records read to estimate the label frequencies of the GO baseline (the file is
#: shuffled, so the first ones are a random sample; enough for a baseline, cheap on huge files).
LABEL_FREQUENCY_RECORDS = 20_000


def position_masks(tokens, targets, weights, xp=np):
    """``(corrupted, uncorrupted)`` boolean masks of the non-``<PAD>`` positions.

    Corrupted: the input token differs from the clean one (a replacement that drew the same token
    leaves nothing to recover, so it counts as uncorrupted). ``xp`` is ``numpy`` or ``keras.ops``
    (inside the training step), so both use this one definition.
    """
    real = xp.greater(weights, 0)
    return xp.logical_and(real, xp.not_equal(tokens, targets)), xp.logical_and(real, xp.equal(tokens, targets))


def accuracy_counts(pred, tokens, targets, weights, xp=np):
    """``[corrupted, correct corrupted, uncorrupted, correct uncorrupted]`` position counts of a batch
    (``pred``: the argmax tokens). Counts, not ratios, so replicas and steps can be summed."""
    corrupted, uncorrupted = position_masks(tokens, targets, weights, xp)
    correct = xp.equal(pred, targets)
    count = lambda m: xp.sum(xp.where(m, 1.0, 0.0))  # noqa: E731
    return xp.stack([count(corrupted), count(xp.logical_and(correct, corrupted)),
                     count(uncorrupted), count(xp.logical_and(correct, uncorrupted))])


def accuracies(counts, prefix: str = "") -> dict:
    """``{prefix}corrupted_accuracy`` and ``{prefix}uncorrupted_accuracy`` from :func:`accuracy_counts`
    (summed over any number of batches); a key is left out when it has no positions."""
    n_c, ok_c, n_u, ok_u = (float(v) for v in counts)
    out = {}
    if n_c > 0:
        out[f"{prefix}corrupted_accuracy"] = ok_c / n_c
    if n_u > 0:
        out[f"{prefix}uncorrupted_accuracy"] = ok_u / n_u
    return out


def unigram_baseline(targets) -> float:
    """Accuracy of always predicting the most frequent token among ``targets`` (e.g. the clean
    tokens at the corrupted positions).

    >>> unigram_baseline(np.array([3, 3, 5, 7]))
    0.5
    """
    counts = np.bincount(np.asarray(targets, dtype=np.int64).ravel())
    return float(counts.max() / counts.sum())


def training_label_frequencies(dataset, data, max_records: int = LABEL_FREQUENCY_RECORDS,
                               chunk: int = 4096) -> np.ndarray | None:
    """Per GO term, the fraction of the training proteins that carry annotation weight (annotated,
    not in the test set) holding it: the scores of the label-frequency baseline.

    Read from the first ``max_records`` training records (never the held-out slice); ``None`` if
    none of them is annotated.
    """
    stop = min(len(dataset) - data.holdout_records, max_records)
    sums = np.zeros(dataset.n_annotations, np.float64)
    n = 0
    for start in range(0, max(stop, 0), chunk):
        recs = dataset.read(start, min(start + chunk, stop))
        keep = recs.annotation_masks.any(axis=1) & ~recs.test_set_mask
        sums += recs.annotation_masks[keep].sum(axis=0)
        n += int(keep.sum())
    return sums / n if n else None


def describe_heldout(record: dict) -> str:
    """The held-out metrics of a history record in words, each next to its baseline ('' if none)."""
    r = record
    parts = []
    if "eval_seq_loss" in r:
        parts.append(f"sequence loss {r['eval_seq_loss']:.4f}")
    if "eval_corrupted_accuracy" in r:
        parts.append(f"accuracy at corrupted positions {r['eval_corrupted_accuracy']:.4f} (most-frequent-token "
                     f"baseline {r['eval_corrupted_unigram_baseline']:.4f}, {int(r['eval_corrupted_positions'])} "
                     "positions)")
    if "eval_uncorrupted_accuracy" in r:
        parts.append(f"accuracy at uncorrupted positions {r['eval_uncorrupted_accuracy']:.4f} (copying the input: 1)")
    if "eval_go_auc_macro" in r:
        parts.append(f"GO AUC macro {r['eval_go_auc_macro']:.4f} over {int(r['eval_go_terms_scored'])} terms "
                     f"(constant-score baseline {MACRO_AUC_BASELINE})")
    if "eval_go_auc_micro" in r:
        base = r.get("eval_go_auc_micro_baseline")
        parts.append(f"GO AUC micro {r['eval_go_auc_micro']:.4f}"
                     + (f" (label-frequency baseline {base:.4f})" if base is not None else ""))
    return "; ".join(parts)
