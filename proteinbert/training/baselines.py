"""What a fine-tuned model has to beat: the score of a prediction that ignores the sequence.

* binary and multi-label outputs: AUC 0.5, what any constant score gets;
* numeric outputs: Spearman's ρ 0 (a constant has no order: no correlation);
* categorical outputs: the accuracy of always predicting the training split's most frequent
  class, per protein or, for local outputs, per residue.

>>> spec = OutputSpec("global", "categorical", ("a", "b", "c"))
>>> constant_baseline(spec, ["M"] * 4, ["a", "a", "b", "c"], ["M"] * 4, ["a", "b", "b", "c"])
0.25
>>> constant_baseline(OutputSpec("local", "binary"), ["MK"], ["01"], ["MK"], ["11"])
0.5
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .output_spec import OutputSpec, encode_labels


def constant_baseline(spec: OutputSpec, train_seqs: Sequence[str], train_labels: Sequence,
                      test_seqs: Sequence[str], test_labels: Sequence) -> float:
    """The metric of ``spec`` for a prediction that ignores the sequence (see the module docstring)."""
    if spec.task in ("binary", "multilabel"):
        return 0.5
    if spec.task == "numeric":
        return 0.0
    if not len(train_labels) or not len(test_labels):
        return float("nan")
    train = np.concatenate([np.ravel(y) for y in encode_labels(spec, train_seqs, train_labels, what="training labels")])
    test = np.concatenate([np.ravel(y) for y in encode_labels(spec, test_seqs, test_labels, what="test labels")])
    majority = np.bincount(train.astype(int), minlength=len(spec.labels)).argmax()
    return float(np.mean(test == majority))


__all__ = ["constant_baseline"]
