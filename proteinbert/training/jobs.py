"""File-level fine-tuning jobs: load a backbone, read the splits, fine-tune, evaluate, save.

The CLIs (``bin/finetune``, ``bin/predict``) and the benchmark suite call these functions.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data.labelled import LabelledRecords, read_labelled
from ..errors import InputError
from ..tokenizer import DEFAULT_UNKNOWN_RESIDUES, check_residues
from .evaluation import Evaluation, evaluate_by_len, predictions_frame, write_csv
from .finetuning import (
    DEFAULT_VIRTUAL_PAD_LENGTH, FinetuneConfig, FinetunedModel, OutputSpec, finetune_from_backbone,
)

logger = logging.getLogger(__name__)


def starting_backbone(weights=None, architecture: dict | None = None):
    """The backbone a fine-tuning starts from: the weights file :func:`~proteinbert.weights.load_backbone`
    opens, or — with ``weights=None`` — freshly initialised at the released sizes, ``architecture``
    overriding some of them. ``architecture`` with ``weights`` is an error: the file fixes the sizes.
    """
    from ..model import ProteinBertBackbone
    from ..presets import preset
    from ..weights.convert import load_backbone

    if weights is None:
        arch = preset("released", **(architecture or {}))
        logger.info("fine-tuning from scratch (no pretrained weights): %s", arch)
        return ProteinBertBackbone(**arch)
    if architecture:
        raise InputError(f"architecture {architecture} applies only when starting from scratch; the weights "
                         f"file {weights} fixes the sizes")
    return load_backbone(weights)


@dataclass(frozen=True)
class FinetuneJob:
    """Everything ``bin/finetune`` needs: inputs, output type, starting weights and the schedule."""

    train: str
    out_dir: str
    level: str = "global"
    task: str = "binary"
    valid: str | None = None
    test: str | None = None
    train_labels: str | None = None
    valid_labels: str | None = None
    test_labels: str | None = None
    seq_col: str = "seq"
    label_col: str = "label"
    id_col: str | None = None
    weights: str | None = None
    architecture: dict = field(default_factory=dict)
    hidden_layers: str = "all"
    dropout_rate: float = 0.5
    config: FinetuneConfig = FinetuneConfig()
    virtual_pad_length: int | None = DEFAULT_VIRTUAL_PAD_LENGTH  # see finetune_from_backbone
    max_records: int | None = None
    overwrite: bool = False
    unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES  # "warn" (read as <OTHER>) or "error"


@dataclass
class JobResult:
    model: FinetunedModel
    evaluation: Evaluation | None
    out_dir: Path


def _read(path, labels_path, job: FinetuneJob) -> LabelledRecords:
    records = read_labelled(path, job.seq_col, job.label_col, job.id_col, labels_path)
    return records.head(job.max_records)


def run_finetune_job(job: FinetuneJob) -> JobResult:
    """Read, validate (all splits, before any training), fine-tune, evaluate on ``test``, save.

    The output directory is written in one go at the end (model, spec, labels, and for a test
    split ``test_metrics.csv``, ``test_confusion_matrix.csv``, ``test_predictions.csv``). A
    ``config.checkpoint_dir`` (the run saved after every epoch, continued if stopped) is deleted
    once the model is saved.
    """
    out_dir = Path(job.out_dir)
    if out_dir.exists() and not job.overwrite:
        raise InputError(f"output directory {out_dir} exists; choose another or allow overwriting")
    train = _read(job.train, job.train_labels, job)
    valid = _read(job.valid, job.valid_labels, job) if job.valid else None
    test = _read(job.test, job.test_labels, job) if job.test else None
    spec = OutputSpec.from_labels(job.level, job.task, train.labels)
    from .finetuning import require_both_classes

    require_both_classes(spec, train.labels, f"the training split ({job.train})")
    for path, split in ((job.train, train), (job.valid, valid), (job.test, test)):
        if split is not None:
            check_residues(split.seqs, str(path), job.unknown_residues, ids=split.ids)
    # Check the other splits against the training labels now, not after hours of training.
    from .finetuning import encode_labels

    for name, split in (("validation", valid), ("test", test)):
        if split is not None:
            if len(split) == 0:
                raise InputError(f"the {name} split ({getattr(job, 'valid' if name == 'validation' else 'test')}) "
                                 "is empty")
            encode_labels(spec, split.seqs, split.labels, split.row_ids, what=f"{name} set")
    import keras  # here, not at the top: TensorFlow starts only once the inputs are checked

    # From scratch, the seed fixes the starting weights too: a rerun (or a continued run) starts alike.
    keras.utils.set_random_seed(job.config.seed)
    backbone = starting_backbone(job.weights, job.architecture)
    model = finetune_from_backbone(
        backbone, spec, train.seqs, train.labels, valid.seqs if valid else None, valid.labels if valid else None,
        config=job.config, hidden_layers=job.hidden_layers, dropout_rate=job.dropout_rate,
        train_row_ids=train.row_ids, valid_row_ids=valid.row_ids if valid else None,
        virtual_pad_length=job.virtual_pad_length,
    )
    model.metadata.update({"train": str(job.train), "valid": job.valid, "test": job.test, "weights": job.weights})
    evaluation = None
    extra = {}
    if test is not None:
        evaluation = evaluate_by_len(model, test.seqs, test.labels, ids=test.ids, row_ids=test.row_ids,
                                     crop_len=job.config.crop_len)
        extra["test_metrics.csv"] = evaluation.results
        extra["test_predictions.csv"] = evaluation.predictions
        if evaluation.confusion_matrix is not None:
            extra["test_confusion_matrix.csv"] = evaluation.confusion_matrix.reset_index()
        model.metadata["test_metric"] = evaluation.overall
    model.save(out_dir, overwrite=job.overwrite, extra_csv=extra)
    if job.config.checkpoint_dir is not None:
        shutil.rmtree(job.config.checkpoint_dir, ignore_errors=True)  # the model is saved: the epochs are done with
    return JobResult(model, evaluation, out_dir)


def run_predict(model_dir, input_path, out_csv, seq_col: str = "seq", id_col: str | None = None,
                crop_len: int | None = None, unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES) -> pd.DataFrame:
    """Predict every record of ``input_path`` (CSV or FASTA) with a saved model; write ``out_csv``
    (atomically; never onto the input or into the model directory)."""
    from ..io_utils import check_output_path

    check_output_path(out_csv, {"model_dir": model_dir, "input_path": input_path}, "out_csv")
    model = FinetunedModel.load(model_dir)
    records = read_labelled(input_path, seq_col, None, id_col, require_labels=False)
    if len(records) == 0:
        raise InputError(f"{input_path} has no records")
    check_residues(records.seqs, str(input_path), unknown_residues, ids=records.ids)
    data = model.encode(records.seqs, crop_len=crop_len, row_ids=records.row_ids, what=str(input_path))
    from .finetuning import predict

    padding, seq_len = model.training_padding  # pad as in training: the padding is part of the function
    preds = predict(model.model, data, seq_len, padding=padding)
    frame = predictions_frame(model.spec, preds, ids=records.ids)
    write_csv(frame, out_csv)
    return frame
