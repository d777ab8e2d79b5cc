"""The main job's fine-tuning tasks: their training, validation and test records.

``membrane`` is derived from the pretraining dataset itself (its test set is the pretraining
hold-out); ``signalp`` is the ProteinBERT signal-peptide benchmark, subsampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .settings import PipelineSettings


@dataclass(frozen=True)
class TaskData:
    """One fine-tuning task: its sequences and labels, split into train, valid and test."""

    name: str
    train_seqs: list = field(repr=False)
    train_labels: list = field(repr=False)
    valid_seqs: list = field(repr=False)
    valid_labels: list = field(repr=False)
    test_seqs: list = field(repr=False)
    test_labels: list = field(repr=False)
    description: str = ""


def membrane_task(settings: PipelineSettings) -> TaskData:
    """Labels from the dataset's propagated annotations; test = the pretraining hold-out."""
    from ..data.h5dataset import PretrainingDataset

    with PretrainingDataset(settings.dataset_path) as ds:
        if settings.go_term not in ds.annotations:
            raise InputError(f"{settings.go_term} is not among the {ds.n_annotations} GO terms kept in "
                             f"{settings.dataset_path} (lower min_records_per_term or pick another term)")
        column = ds.annotations.index(settings.go_term)
        records = ds.read(0, len(ds))
    annotated = records.annotation_masks.any(axis=1)  # unannotated proteins have no known answer
    labels = records.annotation_masks[:, column].astype(int)
    n = len(records.seqs)
    cut = n - settings.holdout_records
    pool = [i for i in range(cut) if annotated[i]]
    test = [i for i in range(cut, n) if annotated[i]]
    rng = np.random.default_rng(settings.seed)
    rng.shuffle(pool)
    if settings.membrane_train_records is not None:
        pool = pool[: settings.membrane_train_records]
    n_valid = max(1, len(pool) // 8)
    valid, train = pool[:n_valid], pool[n_valid:]
    pick = lambda idx: ([records.seqs[i] for i in idx], [int(labels[i]) for i in idx])  # noqa: E731
    (trs, trl), (vas, val), (tes, tel) = pick(train), pick(valid), pick(test)
    return TaskData("membrane", trs, trl, vas, val, tes, tel,
                    f"{settings.go_term} (membrane) vs not, from the GO annotations of {settings.fasta.name}; "
                    f"test = the {len(tes)} annotated proteins of the pretraining hold-out")


def signalp_task(settings: PipelineSettings) -> TaskData:
    import pandas as pd

    base = settings.benchmarks_dir
    frames = {}
    for split in ("train", "test"):
        path = base / f"signalP_binary.{split}.csv"
        frames[split] = pd.read_csv(path, dtype={"seq": str})
        if list(frames[split].columns) != ["label", "seq"]:
            raise InputError(f"{path}: expected columns label,seq. Received: {list(frames[split].columns)}")
    rng = np.random.default_rng(settings.seed)
    train = frames["train"].iloc[rng.permutation(len(frames["train"]))[: settings.signalp_train_records]]
    test = frames["test"].iloc[rng.permutation(len(frames["test"]))[: settings.signalp_test_records]]
    n_valid = max(1, len(train) // 8)
    valid, train = train.iloc[:n_valid], train.iloc[n_valid:]
    col = lambda f, c: f[c].tolist()  # noqa: E731
    return TaskData("signalp", col(train, "seq"), col(train, "label"), col(valid, "seq"), col(valid, "label"),
                    col(test, "seq"), col(test, "label"),
                    f"signal peptide (SignalP benchmark), {len(train)} train / {len(valid)} valid / "
                    f"{len(test)} test records subsampled with seed {settings.seed}")
