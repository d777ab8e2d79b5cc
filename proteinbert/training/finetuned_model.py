"""A fine-tuned model with its output spec: predict, save, load; and the one-call fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from ..errors import FormatError, InputError
from .finetune_data import EncodedSet
from .finetune_head import DEFAULT_VIRTUAL_PAD_LENGTH, build_finetuning_model
from .finetune_schedule import finetune
from .finetune_settings import FinetuneConfig
from .inference import predict
from .output_spec import OutputSpec, require_both_classes

logger = logging.getLogger(__name__)


MODEL_FILE = "model.keras"
SPEC_FILE = "output_spec.json"
LABELS_FILE = "labels.txt"
META_FILE = "finetuning.json"


@dataclass
class FinetunedModel:
    """A Keras fine-tuned model, its :class:`OutputSpec` and metadata; saves as a directory.

    The directory holds ``model.keras``, ``output_spec.json``, ``labels.txt`` (one label a line)
    and ``finetuning.json`` (backbone architecture, hidden layers, stage results). The model is a
    :class:`~proteinbert.training.finetuned_network.FinetunedProteinBert`, which carries its spec
    and training padding itself: :meth:`load` also opens one saved alone as a ``.keras`` file.
    Directories written by earlier versions hold a plain Keras model and load as before.
    """

    model: object
    spec: OutputSpec
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        own = getattr(self.model, "output_spec", None)
        if own is not None and own != self.spec:
            raise InputError(f"the model predicts {own}, not {self.spec}")

    @property
    def n_annotations(self) -> int:
        return int(self.model.inputs[1].shape[-1])

    def encode(self, seqs, labels=None, crop_len=None, row_ids=None, what="records") -> EncodedSet:
        return EncodedSet.build(self.spec, seqs, labels, self.n_annotations, crop_len=crop_len,
                                row_ids=row_ids, what=what)

    @property
    def training_padding(self) -> tuple[str, int]:
        """``(padding, seq_len)`` of training, predictions' default: from the metadata, else the
        model's own, else (a model of the 2021 layer's kind) fixed padding to 512."""
        config = self.metadata.get("config") or {}
        stages = config.get("stages") or [{}]
        padding = config.get("padding", getattr(self.model, "padding", "fixed"))
        return padding, int(stages[0].get("seq_len", getattr(self.model, "seq_len", 512)))

    def predict(self, seqs: Sequence[str], crop_len: int | None = None, padding: str | None = None,
                seq_len: int | None = None, batch_size: int = 32) -> list:
        """Per record: global ``(n_outputs,)`` probabilities/values, local ``(n, n_outputs)``.

        ``padding``/``seq_len`` default to those of training (:attr:`training_padding`).
        """
        trained_padding, trained_len = self.training_padding
        return predict(self.model, self.encode(seqs, crop_len=crop_len), seq_len or trained_len, batch_size,
                       padding or trained_padding)

    def save(self, path, overwrite: bool = False, extra_csv: dict | None = None) -> Path:
        """Write the directory atomically (a temporary directory renamed on success).

        ``extra_csv`` maps file names to DataFrames written alongside (e.g. test metrics).
        """
        from ..io_utils import atomic_write_path

        path = Path(path)
        if path.exists() and not overwrite:
            raise InputError(f"{path} exists; pass overwrite=True to replace it")
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} exists and is not a directory")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        with atomic_write_path(path, suffix="") as tmp:
            tmp = Path(tmp)
            tmp.mkdir()
            self.model.save(tmp / MODEL_FILE)
            (tmp / SPEC_FILE).write_text(self.spec.to_json())
            (tmp / LABELS_FILE).write_text("".join(f"{x}\n" for x in self.spec.labels))
            (tmp / META_FILE).write_text(json.dumps(self.metadata, indent=1, default=str))
            for name, frame in (extra_csv or {}).items():
                frame.to_csv(tmp / name, index=False)
            if old is not None:
                path.rename(old)
        if old is not None:
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path) -> "FinetunedModel":
        """Open a directory written by :meth:`save`, or a ``.keras`` file of a
        :class:`~proteinbert.training.finetuned_network.FinetunedProteinBert` (no metadata)."""
        from .. import register_keras_objects

        register_keras_objects()  # the custom classes, for deserialisation
        path = Path(path)
        if path.is_file():
            return cls._load_keras_file(path)
        for name in (MODEL_FILE, SPEC_FILE):
            if not (path / name).is_file():
                raise InputError(f"{path} is not a fine-tuned model directory: {name} is missing")
        try:
            spec = OutputSpec.from_json((path / SPEC_FILE).read_text())
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise FormatError(f"not a valid output spec ({type(exc).__name__}: {exc})", path / SPEC_FILE) from exc
        labels_path = path / LABELS_FILE
        if labels_path.is_file():
            labels = tuple(x for x in labels_path.read_text().split("\n") if x != "")
            if labels != spec.labels:
                raise InputError(f"{labels_path} does not match {path / SPEC_FILE}")
        metadata = {}
        if (path / META_FILE).is_file():
            try:
                metadata = json.loads((path / META_FILE).read_text())
            except ValueError as exc:
                raise FormatError(f"not valid JSON ({exc})", path / META_FILE) from exc
        from ..weights.convert import open_keras_model

        model = open_keras_model(path / MODEL_FILE)
        own = getattr(model, "output_spec", None)
        if own is not None and own != spec:
            raise FormatError(f"the model in {MODEL_FILE} predicts {own}, not the {spec} of {SPEC_FILE}", path)
        return cls(model, spec, metadata)

    @classmethod
    def _load_keras_file(cls, path: Path) -> "FinetunedModel":
        from ..weights.convert import open_keras_model

        model = open_keras_model(path)
        spec = getattr(model, "output_spec", None)
        if spec is None:
            raise InputError(f"{path} holds a Keras model without an output spec: not a fine-tuned proteinbert "
                             "model (a fine-tuned model directory holds one in output_spec.json)")
        return cls(model, spec)


def finetune_from_backbone(backbone, spec: OutputSpec, train_seqs, train_labels, valid_seqs=None,
                           valid_labels=None, config: FinetuneConfig = FinetuneConfig(),
                           hidden_layers: str = "all", dropout_rate: float = 0.5,
                           train_row_ids=None, valid_row_ids=None, callbacks: Sequence = (),
                           virtual_pad_length: int | None = DEFAULT_VIRTUAL_PAD_LENGTH) -> FinetunedModel:
    """Validate, encode, build the head on ``backbone`` and run the schedule; returns the model.

    ``spec`` may lack its label list (categorical/multi-label): it is then taken from the
    training labels. ``virtual_pad_length`` (default None: the backbone as it is) makes every batch
    attend as if padded to that length (module docstring), for ``padding="bucket"``; it changes
    nothing for batches at least that long.
    """
    if virtual_pad_length is not None:
        from ..model import with_virtual_padding

        backbone = with_virtual_padding(backbone, virtual_pad_length)
    if len(train_seqs) == 0:
        raise InputError("the training split is empty")
    if spec.task in ("categorical", "multilabel") and not spec.labels:
        spec = OutputSpec.from_labels(spec.level, spec.task, train_labels)
    A = backbone.n_annotations
    require_both_classes(spec, train_labels)
    train = EncodedSet.build(spec, train_seqs, train_labels, A, config.crop_len, train_row_ids, "training set")
    valid = None
    if valid_seqs is not None:
        if len(valid_seqs) == 0:
            raise InputError("the validation split is empty")
        valid = EncodedSet.build(spec, valid_seqs, valid_labels, A, config.crop_len, valid_row_ids,
                                 "validation set")
    model = build_finetuning_model(backbone, spec, hidden_layers, dropout_rate, seed=config.seed,
                                   padding=config.padding, seq_len=config.stages[0].seq_len)
    results = finetune(model, spec, train, valid, config, callbacks=callbacks)
    metadata = {
        "backbone_architecture": dict(backbone.architecture),
        "hidden_layers": hidden_layers,
        "dropout_rate": dropout_rate,
        "config": dataclasses.asdict(config),
        "stages": [dataclasses.asdict(r) for r in results],
    }
    return FinetunedModel(model, spec, metadata)
