"""The staged fine-tuning loop (frozen, unfrozen, a long-length epoch); its settings are in
:mod:`.finetune_settings`.

With the pretrained layers frozen, the backbone's representations do not change between epochs:
that stage trains the head on features computed once (:func:`representations`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.batching import fixed_pipeline_options, length_batches
from ..errors import InputError
from .finetune_checkpoint import FinetuneCheckpoint, Resume, epoch_saver, run_fingerprint
from .finetune_data import EncodedSet, tf_dataset
from .finetune_head import compile_model
from .finetune_log import EpochLog
# Re-exported: the settings lived here before they got a module of their own.
from .finetune_settings import DEFAULT_STAGES, FinetuneConfig, Stage, StageResult, default_stages, parse_stage
from .inference import batch_predictor
from .output_spec import OutputSpec

logger = logging.getLogger(__name__)


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


__all__ = ["DEFAULT_STAGES", "FinetuneConfig", "Stage", "StageResult", "default_stages", "finetune", "parse_stage",
           "representations"]
