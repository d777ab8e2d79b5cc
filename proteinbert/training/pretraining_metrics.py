"""Pretraining metrics (``history``, log lines, TensorBoard), each next to what a trivial model scores.

Only 5 % of the tokens are corrupted (by default) and most GO terms are rare, so accuracy over all
tokens and pooled GO AUC look good for a model that learnt nothing (and are not reported):

* ``corrupted_accuracy`` / ``eval_corrupted_accuracy``: accuracy at the corrupted positions (input
  token differs from the clean one), the only positions where the model must infer a residue;
  ``eval_corrupted_unigram_baseline`` is the accuracy of always predicting the most frequent clean
  token at those held-out positions (``eval_corrupted_positions`` of them).
* ``eval_corrupted_recovery_accuracy``: at the same positions, the accuracy of the most probable
  token other than the input one; ``eval_corrupted_recovery_baseline`` is that of the most frequent
  clean token other than the input one. A corrupted input token is never the answer, yet a model
  trained on this objective rightly keeps it as its first guess at almost every position: a
  replacement is drawn at random, so the input token stays far more probable than any other unless
  it cannot stand there (a ``<PAD>`` inside a sequence). ``eval_corrupted_accuracy`` therefore stays
  near or below its baseline even for a model that has learnt a great deal; this pair shows what
  it has learnt about residues from their context.
* ``uncorrupted_accuracy`` / ``eval_uncorrupted_accuracy``: accuracy at the other non-``<PAD>``
  positions; copying the input scores 1 there.
* ``eval_go_auc_macro`` (mean ROC AUC over the ``eval_go_terms_scored`` GO terms with positives and
  negatives among the annotated held-out proteins; any constant score gets
  :data:`MACRO_AUC_BASELINE`) and ``eval_go_auc_micro`` (all (protein, term) pairs pooled) next to
  ``eval_go_auc_micro_baseline``, the micro AUC of scoring every protein with the training label
  frequencies. ``eval_partial_input_*``: the same with part of the annotations given as input,
  scoring only the withheld pairs.
* ``seq_loss`` / ``eval_seq_loss``: token cross-entropy over all non-``<PAD>`` positions (train:
  mean over the epoch's steps, with dropout; held-out: without).

Train-time accuracies are pooled over the epoch's steps, under dropout. The train-time counts
come from :mod:`.pretraining_step`, the held-out metrics from :mod:`.pretraining_eval`.
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


def recovery_accuracy(probs, tokens, targets, corrupted) -> float:
    """At the ``corrupted`` positions, the accuracy of the most probable token other than the input
    one (``probs``: ``(..., vocab)`` token probabilities; the other arrays of the positions' shape).

    >>> probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]])
    >>> recovery_accuracy(probs, np.array([[0, 2]]), np.array([[1, 0]]), np.array([[True, True]]))
    0.5
    """
    p = np.array(np.asarray(probs)[corrupted], dtype=np.float64)
    given = np.asarray(tokens)[corrupted].astype(np.int64)
    p[np.arange(len(p)), given] = -np.inf
    return float(np.mean(p.argmax(-1) == np.asarray(targets)[corrupted]))


def recovery_baseline(tokens, targets, corrupted) -> float:
    """At the ``corrupted`` positions, the accuracy of guessing the most frequent clean token there,
    or the second most frequent where the input token is the first.

    >>> recovery_baseline(np.array([3, 5, 3, 9]), np.array([5, 2, 5, 7]), np.array([True, True, True, True]))
    0.75
    """
    clean = np.asarray(targets)[corrupted].astype(np.int64)
    given = np.asarray(tokens)[corrupted].astype(np.int64)
    order = np.argsort(-np.bincount(clean, minlength=max(clean.max(), given.max()) + 2), kind="stable")
    guess = np.where(given == order[0], order[1], order[0])
    return float(np.mean(guess == clean))


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


# -- train-time sums of an epoch (kept in the save: a resumed epoch reports as the uninterrupted one) --
#: The losses a step returns, by name: total, token and annotation.
LOSS_KEYS = ("loss", "seq_loss", "annot_loss")
#: The accuracy counts of :func:`accuracy_counts`, by name.
COUNT_KEYS = ("n_corrupted", "correct_corrupted", "n_uncorrupted", "correct_uncorrupted")


def fresh_epoch_sums() -> dict:
    """The sums of an epoch before its first step (see :func:`add_step`)."""
    return {"loss": 0.0, "seq_loss": 0.0, "annot_loss": 0.0, "steps": 0, "tokens": 0, "samples": 0,
            "seconds": 0.0, **{k: 0.0 for k in COUNT_KEYS}}


def add_step(sums: dict, losses, counts, tokens: int, samples: int, seconds: float) -> None:
    """Add one step's ``(total, token, annotation)`` losses, accuracy counts and size to ``sums``."""
    for key, value in zip(LOSS_KEYS, losses):
        sums[key] += value
    sums["steps"] += 1
    sums["tokens"] += tokens
    sums["samples"] += samples
    sums["seconds"] += seconds
    for key, value in zip(COUNT_KEYS, counts):
        sums[key] += float(value)


def epoch_metrics(sums: dict) -> dict:
    """An epoch's train metrics from its sums: mean losses over its steps, pooled accuracies, throughput.

    >>> sums = fresh_epoch_sums()
    >>> add_step(sums, (3.0, 2.0, 1.0), (10, 5, 90, 90), tokens=100, samples=2, seconds=0.5)
    >>> epoch_metrics(sums)["corrupted_accuracy"], epoch_metrics(sums)["tokens_per_s"]
    (0.5, 200.0)
    """
    n = max(sums["steps"], 1)
    return {
        "loss": sums["loss"] / n, "seq_loss": sums["seq_loss"] / n, "annot_loss": sums["annot_loss"] / n,
        **accuracies([sums[k] for k in COUNT_KEYS]),
        "samples_per_s": sums["samples"] / max(sums["seconds"], 1e-9),
        "tokens_per_s": sums["tokens"] / max(sums["seconds"], 1e-9),
    }


def describe_train(record: dict) -> str:
    """The train metrics of a history record (and its learning rate), ``key=value`` in record order.

    >>> describe_train({"epoch": 1, "step": 10, "samples": 80, "loss": 2.5, "eval_seq_loss": 2.6})
    'loss=2.5'
    """
    return ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                     if k not in ("epoch", "step", "samples") and not k.startswith("eval_"))


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
    if "eval_corrupted_recovery_accuracy" in r:
        parts.append(f"there, best guess other than the input token {r['eval_corrupted_recovery_accuracy']:.4f} "
                     f"(most frequent other token {r['eval_corrupted_recovery_baseline']:.4f})")
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
