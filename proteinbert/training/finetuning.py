"""Fine-tuning: output specs, label encoding, padded batches, the head and the staged schedule.

A fine-tuned model is the pretrained backbone's hidden representation (``"all"``: the 2021
concatenation, or ``"last"``) followed by ``Dropout`` and one ``Dense`` layer, for a global
(per-protein) or local (per-residue) output that is binary, categorical, numeric or, for global
outputs, multi-label. One model instance serves every length.

By default (``padding="fixed"``) every batch is padded to the stage's ``seq_len`` (doubled until
the record fits), as the 2021 code did, and predictions are padded the same way: in the global
attention a short protein's residues share the softmax with the ``<PAD>`` positions, so the
padding is part of the function the model learns. ``padding="bucket"`` pads each batch only to
its record's length bucket (see :func:`~proteinbert.data.batching.training_bucket_length`): faster on short proteins, less accurate.
``virtual_pad_length`` (off by default) makes a bucketed batch attend as if padded to that length
(one far-``<PAD>`` state per sequence, weighted by the number of pads it stands for, see
:class:`~proteinbert.model.GlobalAttention`); the ``<PAD>`` positions next to a sequence, which
the convolutions see, still differ. On the 2021 demo recipe (signal peptide, 3,000 records,
``seq_len`` 128, 8 seeds; ``benchmarks/finetune_accuracy.py``, ``docs/results/finetune_accuracy.md``)
buckets with virtual padding to 512 gave test AUC 0.862 ± 0.038 against 0.911 ± 0.010 for fixed
padding.

>>> spec = OutputSpec.from_labels("global", "categorical", ["b", "a", "b"])
>>> spec.labels, spec.n_outputs, spec.activation
(('a', 'b'), 2, 'softmax')
>>> bucket_length(70 + 2), bucket_length(510 + 2), bucket_length(600 + 2)
(80, 512, 640)

The parts live in one module each (this module gathers them, and keeps the names importable from
here): :mod:`.output_spec` (what is predicted, label parsing), :mod:`proteinbert.data.batching`
(padded lengths and batches), :mod:`.finetune_data` (encoded records, ``tf.data``),
:mod:`.finetune_head` (the model), :mod:`.finetune_settings` (stages, options),
:mod:`.finetune_schedule` (the training loop), :mod:`.finetune_checkpoint` (saved epochs),
:mod:`.finetune_log` (per-epoch log, TensorBoard, CSV), :mod:`.inference` (batched predictions)
and :mod:`.finetuned_model` (the saved model and :func:`finetune_from_backbone`).
"""

from __future__ import annotations

from ..data.batching import batch_size_for, fixed_length, length_batches
from ..data.batching import training_bucket_length as bucket_length
from .finetune_data import EncodedSet, tf_dataset
from .finetune_head import DEFAULT_VIRTUAL_PAD_LENGTH, build_finetuning_model, compile_model
from .finetune_log import EPOCH_LOG_FIRST_COLUMNS, EPOCH_LOG_LAST_COLUMNS, EpochLog, check_epoch_logs
from .finetune_schedule import finetune, representations
from .finetune_settings import DEFAULT_STAGES, FinetuneConfig, Stage, StageResult, default_stages, parse_stage
from .finetuned_model import LABELS_FILE, META_FILE, MODEL_FILE, SPEC_FILE, FinetunedModel, finetune_from_backbone
from .inference import batch_predictor, predict, worth_tracing
from .output_spec import LEVELS, MULTILABEL_SEPARATOR, TASKS, OutputSpec, encode_labels, require_both_classes

# Old private names, for code that reached into this module before it was split.
_tf_dataset, _batch_predictor, _worth_tracing = tf_dataset, batch_predictor, worth_tracing

__all__ = [
    "DEFAULT_STAGES", "DEFAULT_VIRTUAL_PAD_LENGTH", "EPOCH_LOG_FIRST_COLUMNS", "EPOCH_LOG_LAST_COLUMNS", "LABELS_FILE",
    "LEVELS", "META_FILE", "MODEL_FILE", "MULTILABEL_SEPARATOR", "SPEC_FILE", "TASKS", "EncodedSet", "EpochLog",
    "FinetuneConfig", "FinetunedModel", "OutputSpec", "Stage", "StageResult", "batch_predictor", "batch_size_for",
    "bucket_length", "build_finetuning_model", "check_epoch_logs", "compile_model", "default_stages",
    "encode_labels", "finetune", "finetune_from_backbone", "fixed_length", "length_batches", "parse_stage",
    "predict", "representations", "require_both_classes", "tf_dataset", "worth_tracing",
]
