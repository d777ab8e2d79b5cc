"""What a benchmark run reads and draws: its split files, the seeded train / valid / test records
(subsampled, with classes the training split lacks left out), and the score of a prediction that
ignores the sequence on them.

>>> from types import SimpleNamespace
>>> bench = SimpleNamespace(dataset="scop", train_split="train", valid_split=None, test_split="test")
>>> [p and p.name for p in split_paths("data", bench)]
['scop.train.csv', None, 'scop.test.csv']
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .data.labelled import LabelledRecords, read_labelled
from .training.baselines import constant_baseline
from .training.output_spec import OutputSpec, as_label_str

logger = logging.getLogger(__name__)


def split_paths(data_dir, bench) -> list[Path | None]:
    """The train, valid and test CSVs of ``bench`` in ``data_dir`` (None for a split it has not)."""
    return [None if split is None else Path(data_dir) / f"{bench.dataset}.{split}.csv"
            for split in (bench.train_split, bench.valid_split, bench.test_split)]


def missing_files(data_dir, bench) -> list[str]:
    """The names of ``bench``'s split files absent from ``data_dir``."""
    return [p.name for p in split_paths(data_dir, bench) if p is not None and not p.is_file()]


def _subsample(records, n: int | None, rng: np.random.Generator):
    if n is None or len(records) <= n:
        return records
    keep = np.sort(rng.choice(len(records), size=n, replace=False))
    return _take(records, keep)


def _take(records, idx):
    idx = list(idx)
    return LabelledRecords(tuple(records.ids[i] for i in idx), tuple(records.seqs[i] for i in idx),
                           tuple(records.labels[i] for i in idx), tuple(records.row_ids[i] for i in idx))


def _split(records, fractions, rng):
    order = rng.permutation(len(records))
    cuts = np.cumsum([int(round(f * len(records))) for f in fractions[:-1]])
    return [_take(records, np.sort(part)) for part in np.split(order, cuts)]


def _keep_known(records, spec: OutputSpec, what: str):
    """Small subsamples can miss categories: drop (and count) evaluation records of unseen classes."""
    if spec.task != "categorical" or spec.level != "global":
        return records, 0
    known = set(spec.labels)
    idx = [i for i, y in enumerate(records.labels) if as_label_str(y) in known]
    dropped = len(records) - len(idx)
    if dropped:
        logger.warning("%s: %d record(s) of categories not in the training subsample left out", what, dropped)
    return _take(records, idx), dropped


def draw_splits(bench, settings):
    """``(train, valid, test, spec, dropped)`` as a run draws them (seeded by ``settings.seed``),
    ``dropped`` test records being of classes the training split lacks; None if a file is missing."""
    if missing_files(settings.data_dir, bench):
        return None
    paths = split_paths(settings.data_dir, bench)
    rng = np.random.default_rng(settings.seed)
    train = read_labelled(paths[0])
    valid = read_labelled(paths[1]) if paths[1] else None
    test = read_labelled(paths[2]) if paths[2] else None
    if test is None:
        train, valid, test = _split(train, (0.8, 0.1, 0.1), rng)
    elif valid is None:
        valid, train = _split(train, (0.1, 0.9), rng)
    train = _subsample(train, settings.max_train, rng)
    valid = _subsample(valid, settings.max_eval, rng)
    test = _subsample(test, settings.max_eval, rng)
    spec = OutputSpec.from_labels(bench.level, bench.task, train.labels)
    valid, _ = _keep_known(valid, spec, f"{bench.name} valid")
    test, dropped = _keep_known(test, spec, f"{bench.name} test")
    return train, valid, test, spec, dropped


def baseline(bench, settings) -> float:
    """The test score of a prediction that ignores the sequence (the suite's ``baseline`` column; see
    :func:`~proteinbert.training.baselines.constant_baseline`); NaN if a file is missing."""
    drawn = draw_splits(bench, settings)
    if drawn is None:
        return float("nan")
    train, _, test, spec, _ = drawn
    return constant_baseline(spec, train.seqs, train.labels, test.seqs, test.labels)


__all__ = ["baseline", "draw_splits", "missing_files", "split_paths"]
