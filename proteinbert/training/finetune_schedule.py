"""The staged fine-tuning schedule (frozen, unfrozen, a long-length epoch) and its settings.

With the pretrained layers frozen, the backbone's representations do not change between epochs:
that stage trains the head on features computed once (:func:`representations`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..data.batching import DEFAULT_PAD_LENGTH, fixed_pipeline_options, length_batches
from ..errors import InputError
from .finetune_checkpoint import FinetuneCheckpoint, Resume, epoch_saver, run_fingerprint
from .finetune_data import EncodedSet, tf_dataset
from .finetune_head import compile_model
from .finetune_log import EpochLog
from .inference import batch_predictor
from .output_spec import OutputSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage of fine-tuning.

    ``seq_len``/``batch_size``: the model length of the stage and the batch size up to it (longer
    records get batches scaled down by the length ratio; with fixed padding everything is padded
    to ``seq_len``). ``callbacks``: ReduceLROnPlateau + EarlyStopping (see :class:`FinetuneConfig`).
    """

    name: str
    learning_rate: float
    max_epochs: int
    train_pretrained: bool
    seq_len: int = DEFAULT_PAD_LENGTH
    batch_size: int = 32
    callbacks: bool = True

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise InputError(f"stage {self.name!r}: learning_rate must be > 0. Received: {self.learning_rate}")
        for key in ("max_epochs", "seq_len", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"stage {self.name!r}: {key} must be a positive int. Received: {key}={value!r}")


#: The 2021 schedule: frozen at 1e-2 → unfrozen at 1e-4 → one epoch at length 1024 at 1e-5.
DEFAULT_STAGES = (
    Stage("frozen", 1e-2, 40, train_pretrained=False, seq_len=DEFAULT_PAD_LENGTH, batch_size=32),
    Stage("unfrozen", 1e-4, 40, train_pretrained=True, seq_len=DEFAULT_PAD_LENGTH, batch_size=32),
    Stage("final", 1e-5, 1, train_pretrained=True, seq_len=1024, batch_size=16),
)


def default_stages(seq_len: int = DEFAULT_PAD_LENGTH, batch_size: int = 32, max_epochs: int = 40, lr: float = 1e-4,
                   frozen: bool = True, lr_frozen: float = 1e-2, n_final_epochs: int = 1,
                   final_seq_len: int = 1024, final_lr: float = 1e-5) -> tuple[Stage, ...]:
    """The 2021 schedule with its knobs (the final batch is scaled down by the length ratio).

    >>> [s.name for s in default_stages(frozen=False, n_final_epochs=0)]
    ['unfrozen']
    """
    stages = []
    if frozen:
        stages.append(Stage("frozen", lr_frozen, max_epochs, False, seq_len, batch_size))
    stages.append(Stage("unfrozen", lr, max_epochs, True, seq_len, batch_size))
    if n_final_epochs > 0:
        final_batch = max(1, int(batch_size * seq_len // final_seq_len))
        stages.append(Stage("final", final_lr, n_final_epochs, True, final_seq_len, final_batch))
    return tuple(stages)


def parse_stage(text: str) -> Stage:
    """A stage from ``"NAME:LR:EPOCHS:frozen|unfrozen[:SEQ_LEN[:BATCH]]"`` (the CLI's ``--stage``).

    >>> parse_stage("warmup:1e-2:3:frozen:128:8")
    Stage(name='warmup', learning_rate=0.01, max_epochs=3, train_pretrained=False, seq_len=128, batch_size=8, callbacks=True)
    """
    parts = text.split(":")
    if not 4 <= len(parts) <= 6 or parts[3] not in ("frozen", "unfrozen"):
        raise InputError(f"a stage is NAME:LR:EPOCHS:frozen|unfrozen[:SEQ_LEN[:BATCH]]. Received: {text!r}")
    try:
        lr, epochs = float(parts[1]), int(parts[2])
        seq_len = int(parts[4]) if len(parts) > 4 else DEFAULT_PAD_LENGTH
        batch = int(parts[5]) if len(parts) > 5 else 32
    except ValueError as exc:
        raise InputError(f"bad number in stage {text!r}: {exc}") from exc
    return Stage(parts[0], lr, epochs, parts[3] == "unfrozen", seq_len, batch)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune` (the architecture lives in the backbone)."""

    stages: tuple = DEFAULT_STAGES
    padding: str = "fixed"  # "fixed" (2021: pad to the stage's seq_len) or "bucket" (faster, less accurate)
    crop_len: int | None = None  # crop records to this many residues (off by default)
    reduce_lr_patience: int = 1
    reduce_lr_factor: float = 0.25
    min_lr: float = 1e-5
    early_stopping_patience: int = 2
    seed: int = 0
    verbose: int = 0
    run_eagerly: bool = False  # skips graph tracing: faster only for a handful of tiny batches (tests)
    # Frozen stages of global outputs train the head on representations computed once per record:
    # the frozen part has no dropout, so each step sees the same numbers as without the cache (the
    # head's dropout still draws per step), at a fraction of the cost.
    cache_frozen_features: bool = True
    # Epoch logs of the whole run (every stage, one global epoch count; see EpochLog). Off by
    # default; each epoch's log line is written either way. An existing CSV, or a directory that
    # already holds event files, is refused unless replace_logs (which deletes those first).
    tensorboard_dir: str | None = None
    csv_log: str | None = None
    replace_logs: bool = False
    # Save the run after every epoch here, and continue a run saved here (same settings, data and
    # starting weights): see finetune_checkpoint. Off by default.
    checkpoint_dir: str | None = None
    # No steps_per_execution > 1 on purpose: Keras runs those steps in a tf.while_loop, and with
    # this model's dynamic shapes TensorFlow 2.21 twice computed corrupted shapes there (a batch
    # dimension of 948,674,742) in fine-tuning padded to 512. One step per call is safe.

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise InputError("at least one stage is needed. Received: stages=()")
        if self.padding not in ("bucket", "fixed"):
            raise InputError(f"padding must be 'bucket' or 'fixed'. Received: padding={self.padding!r}")
        for key in ("tensorboard_dir", "csv_log", "checkpoint_dir"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, str(getattr(self, key)))  # a Path too; stays JSON-friendly


@dataclass(frozen=True)
class StageResult:
    name: str
    epochs: int
    wall_s: float
    history: dict = field(default_factory=dict)


def _callbacks(config: FinetuneConfig, monitor: str):
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=config.reduce_lr_patience,
                                          factor=config.reduce_lr_factor, min_lr=config.min_lr, verbose=0),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.early_stopping_patience,
                                      restore_best_weights=True, verbose=0),
    ]


def finetune(model, spec: OutputSpec, train: EncodedSet, valid: EncodedSet | None = None,
             config: FinetuneConfig = FinetuneConfig(), callbacks: Sequence = ()) -> list[StageResult]:
    """Run ``config.stages`` on ``model`` (from :func:`build_finetuning_model`) in place.

    Each stage sets the pretrained part frozen or trainable, compiles Adam at its learning rate
    (a stage with the same trainable layers as the one before keeps its optimizer and only
    changes the learning rate) and fits on length-bucketed batches (reshuffled every epoch from
    ``config.seed``), monitoring the validation loss (the training loss if ``valid`` is None).
    A frozen stage of a global output trains the head on cached representations (see
    ``FinetuneConfig.cache_frozen_features``); ``callbacks`` then see the head-only model.
    Every epoch of every stage goes into one :class:`EpochLog` (a log line each; TensorBoard and
    CSV when ``config`` names them). With ``config.checkpoint_dir`` the run is saved after every
    epoch and a saved run is continued (:mod:`~proteinbert.training.finetune_checkpoint`).
    """
    if len(train) == 0:
        raise InputError("the training split is empty")
    if train.labels is None:
        raise InputError("the training records have no labels")
    from ..hardware import guard_onednn_concurrency

    guard_onednn_concurrency()
    checkpoint = resume = None
    if config.checkpoint_dir is not None:
        checkpoint = FinetuneCheckpoint(config.checkpoint_dir, run_fingerprint(model, config, train, valid))
        resume = checkpoint.load()
    epoch_log = EpochLog.open(config, None if resume is None else resume.log_rows)
    try:
        return _run_stages(model, spec, train, valid, config, callbacks, epoch_log, checkpoint, resume)
    finally:
        epoch_log.close()


@dataclass
class _Run:
    """What every stage of one run shares."""

    model: object
    spec: OutputSpec
    train: EncodedSet
    valid: EncodedSet | None
    config: FinetuneConfig
    epoch_log: EpochLog
    checkpoint: FinetuneCheckpoint | None
    rng: np.random.Generator
    results: list

    def save(self, next_stage: int, optimizer_trainable: bool | None = None) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(self.model, next_stage=next_stage, next_epoch=0, results=self.results, rng=self.rng,
                                 log_rows=self.epoch_log.rows, optimizer_trainable=optimizer_trainable)


def _run_stages(model, spec, train, valid, config, callbacks, epoch_log: EpochLog,
                checkpoint: FinetuneCheckpoint | None = None, resume: Resume | None = None) -> list[StageResult]:
    # batch composition and order: one generator for the run; no global random state
    run = _Run(model, spec, train, valid, config, epoch_log, checkpoint, np.random.default_rng(config.seed), [])
    if resume is not None:
        run.results = resume.results()
        run.rng.bit_generator.state = resume.rng_state
        resume.restore_variables(model)
    compiled_trainable = None
    for index, stage in enumerate(config.stages):
        if resume is not None and index < resume.next_stage:
            continue  # finished before the resume
        resuming = resume if resume is not None and index == resume.next_stage else None
        stage_callbacks = (epoch_log.callback(index), *callbacks)
        if not stage.train_pretrained and config.cache_frozen_features and spec.level == "global":
            run.results.append(_fit_head_on_cached_features(model, spec, train, valid, stage, config, run.rng,
                                                            stage_callbacks))
            compiled_trainable = None
            run.save(index + 1)
            continue
        _prepare_model(run, stage, compiled_trainable, resuming)
        compiled_trainable = stage.train_pretrained
        run.results.append(_fit_stage(run, index, stage, stage_callbacks, resuming))
        run.save(index + 1, optimizer_trainable=stage.train_pretrained)
    model.get_layer("pretrained").trainable = True
    return run.results


def _prepare_model(run: _Run, stage: Stage, compiled_trainable: bool | None, resuming: Resume | None) -> None:
    """Set what trains and compile for ``stage`` (or only change the learning rate), restoring a saved optimizer."""
    model = run.model
    if compiled_trainable is stage.train_pretrained:
        # Same trainable variables as the previous stage: keep the compiled (traced) step and
        # the optimizer state, change only the learning rate. Tracing costs seconds per compile.
        model.optimizer.learning_rate.assign(stage.learning_rate)
        return
    model.get_layer("pretrained").trainable = stage.train_pretrained
    compile_model(model, run.spec, stage.learning_rate, run.config.run_eagerly)
    if resuming is not None and resuming.optimizer_trainable is stage.train_pretrained:
        # The saved optimizer trained these variables: in this stage, or in the stage before
        # with the same trainable layers (whose optimizer this stage would have kept).
        resuming.restore_optimizer(model)
        if resuming.next_epoch == 0:
            model.optimizer.learning_rate.assign(stage.learning_rate)


def _fit_stage(run: _Run, index: int, stage: Stage, stage_callbacks, resuming: Resume | None) -> StageResult:
    """``fit`` the whole model for one stage (continuing a saved one at its next epoch)."""
    config, train, valid = run.config, run.train, run.valid
    # An epoch's batch count does not depend on the shuffle, so the unshuffled batches give it.
    epoch_batches = length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding)
    train_ds = tf_dataset(train, epoch_batches, repeat_rng=run.rng, seq_len=stage.seq_len,
                          batch_size=stage.batch_size, padding=config.padding)
    valid_ds = None
    if valid is not None:
        valid_batches = length_batches(valid.n_tokens, stage.seq_len, stage.batch_size, config.padding,
                                       token_budget=True)
        valid_ds = tf_dataset(valid, valid_batches)
    schedule_cbs = _callbacks(config, "val_loss" if valid is not None else "loss") if stage.callbacks else []
    cbs = schedule_cbs + list(stage_callbacks)
    saver = None
    if run.checkpoint is not None:
        reduce_lr, early_stopping = schedule_cbs or (None, None)
        saver = epoch_saver(run.checkpoint, stage_index=index, max_epochs=stage.max_epochs, results=run.results,
                            rng=run.rng, epoch_log=run.epoch_log, optimizer_trainable=stage.train_pretrained,
                            reduce_lr=reduce_lr, early_stopping=early_stopping, resume=resuming)
        cbs.append(saver)  # last: it saves what the others did in the epoch
    logger.info("stage %s: lr %g, up to %d epochs, %s, %d batches/epoch", stage.name, stage.learning_rate,
                stage.max_epochs, "all layers" if stage.train_pretrained else "pretrained layers frozen",
                len(epoch_batches))
    start = time.perf_counter()
    history = run.model.fit(train_ds, validation_data=valid_ds, epochs=stage.max_epochs, callbacks=cbs,
                            verbose=config.verbose, shuffle=False,
                            initial_epoch=0 if resuming is None else resuming.next_epoch)
    # With a saver, the history and wall time cover the part of the stage before a resume too.
    stage_history = history.history if saver is None else saver.history
    wall = time.perf_counter() - start if saver is None else saver.elapsed
    result = StageResult(stage.name, len(stage_history.get("loss", [])), wall,
                         {k: [float(x) for x in v] for k, v in stage_history.items()})
    logger.info("stage %s: %d epochs in %.1f s, final %s", stage.name, result.epochs, wall,
                {k: round(v[-1], 4) for k, v in result.history.items()})
    return result


def representations(pretrained, datasets: Sequence[EncodedSet], seq_len: int, batch_size: int, padding: str,
                    run_eagerly: bool = False) -> list[np.ndarray]:
    """Per record set, the ``(n, width)`` outputs of the (global) representation model, in record order.

    One traced function serves every set and length.
    """
    call = batch_predictor(pretrained, datasets[0].n_annotations, traced=not run_eagerly)
    results = []
    for data in datasets:
        out = None
        for indices, length in length_batches(data.n_tokens, seq_len, batch_size, padding, token_budget=True):
            (x, a), _, _ = data.batch(indices, length)
            y = np.asarray(call(x, a))
            if out is None:
                out = np.zeros((len(data), y.shape[-1]), dtype=np.float32)
            out[indices] = y
        results.append(out)
    return results


def _fit_head_on_cached_features(model, spec, train, valid, stage, config, rng, callbacks) -> "StageResult":
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    pretrained = model.get_layer("pretrained")
    pretrained.trainable = False
    features, *vfeat = representations(pretrained, [train] + ([valid] if valid is not None else []),
                                       stage.seq_len, stage.batch_size, config.padding, config.run_eagerly)
    targets = train.global_targets(np.arange(len(train)))
    inp = keras.Input(shape=(features.shape[1],), dtype="float32")
    head = keras.Model(inp, model.get_layer("head-dense")(model.get_layer("head-dropout")(inp)), name="head")
    compile_model(head, spec, stage.learning_rate, config.run_eagerly)

    def batches():
        # The same batch composition as the uncached stage would draw (lengths only set batch sizes).
        for idx, _ in length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding, rng=rng):
            yield features[idx], targets[idx]

    y_shape = (None,) if spec.task == "categorical" else (None, spec.n_outputs)
    y_dtype = tf.int32 if spec.task == "categorical" else tf.float32
    signature = (tf.TensorSpec((None, features.shape[1]), tf.float32), tf.TensorSpec(y_shape, y_dtype))
    options = fixed_pipeline_options()
    steps = len(length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding))
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps)).with_options(options)
    valid_data = None
    if valid is not None:
        # Our own dataset rather than arrays: Keras would make an autotuned one.
        valid_data = tf.data.Dataset.from_tensor_slices((vfeat[0], valid.global_targets(np.arange(len(valid)))))
        # Batch size does not change validation numbers; a few large batches cost fewer steps.
        valid_data = valid_data.batch(max(stage.batch_size, 1024)).with_options(options)
    monitor = "val_loss" if valid is not None else "loss"
    cbs = (_callbacks(config, monitor) if stage.callbacks else []) + list(callbacks)
    logger.info("stage %s: lr %g, up to %d epochs, head only on cached representations (%d x %d)", stage.name,
                stage.learning_rate, stage.max_epochs, *features.shape)
    history = head.fit(train_ds, validation_data=valid_data, batch_size=stage.batch_size,
                       epochs=stage.max_epochs, callbacks=cbs, verbose=config.verbose, shuffle=False)
    wall = time.perf_counter() - start
    hist = {k: [float(x) for x in v] for k, v in history.history.items()}
    logger.info("stage %s: %d epochs in %.1f s, final %s", stage.name, len(hist.get("loss", [])), wall,
                {k: round(v[-1], 4) for k, v in hist.items()})
    return StageResult(stage.name, len(hist.get("loss", [])), wall, hist)
