"""Joint masked-token + GO pretraining: one model for every length, LAMB, resumable saves,
``tf.distribute`` replicas.

Losses (per global batch):

* token loss: sparse categorical cross-entropy, averaged over the non-``<PAD>`` positions of the
  global batch (the 2021 Keras loss divided the same sum by batch × padded length instead);
* annotation loss: binary cross-entropy averaged over the GO slots, then over the proteins that
  carry annotation weight (annotated, not in the test set);
* total = token loss + 1 × annotation loss.

Each replica divides its sums by the global normalisers carried in its data, so the replicas'
gradients, summed by the optimizer, are exactly the single-device gradient.

Metrics (``history``, log lines, TensorBoard), each next to what a trivial model scores: only 5 %
of the tokens are corrupted (by default) and most GO terms are rare, so accuracy over all tokens
and pooled GO AUC look good for a model that learnt nothing (and are not reported):

* ``corrupted_accuracy`` / ``eval_corrupted_accuracy``: accuracy at the corrupted positions (input
  token differs from the clean one), the only positions where the model must infer a residue;
  ``eval_corrupted_unigram_baseline`` is the accuracy of always predicting the most frequent clean
  token at those held-out positions (``eval_corrupted_positions`` of them).
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

Train-time accuracies are pooled over the epoch's steps, under dropout.

A save is taken every ``save_every_epochs`` epochs (see :mod:`.checkpoints`), at the end, and on
Ctrl-C; ``resume=True`` continues from the newest one with the same batches and losses.

>>> settings = PretrainingSettings(output_dir="run", max_epochs=2, steps_per_epoch=10)  # doctest: +SKIP
>>> result = pretrain("dataset.h5", settings, architecture=dict(d_seq=32, d_global=64))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data.h5dataset import PretrainingDataset
from ..data.pretraining_batches import (
    PretrainingBatches, PretrainingDataSettings, StreamState, close_iterator, holdout_batch, replica_dataset,
)
from ..errors import InputError, OutputBusyError, TrainingDivergedError, WeightsError
from .. import presets
from ..io_utils import atomic_write_path, output_lock
from ..weights import ReleasedWeights, export_released_weights, load_released_weights, read_pkl
from . import checkpoints
from .summaries import write_scalar
# Re-exported: the metrics lived here before they got a module of their own.
from .pretraining_metrics import (  # noqa: F401
    MACRO_AUC_BASELINE, LABEL_FREQUENCY_RECORDS, accuracies, accuracy_counts,
    describe_heldout, position_masks, training_label_frequencies, unigram_baseline,
)

logger = logging.getLogger(__name__)

#: Architecture keys a caller may set (the rest of ``ProteinBertBackbone``'s arguments).
# (the dataset fixes the other two: its GO terms and the token vocabulary)
ARCHITECTURE_KEYS = tuple(k for k in presets.ARCHITECTURE_KEYS if k not in ("n_annotations", "vocab_size"))


@dataclass(frozen=True)
class PretrainingSettings:
    """How a pretraining run goes (defaults: the 2021 values)."""

    output_dir: str
    data: PretrainingDataSettings = field(default_factory=PretrainingDataSettings)
    learning_rate: float = 2e-4
    steps_per_epoch: int = 100
    max_epochs: int | None = None
    time_budget_s: float | None = None
    save_every_epochs: int = 10
    keep_every_saves: int = 25
    plateau_patience: int = 20
    plateau_factor: float = 0.8
    plateau_min_lr: float = 5e-5
    plateau_min_delta: float = 1e-4
    dtype: str | None = None
    jit_compile: bool = False
    eval_every_epochs: int = 1  # 0: never
    eval_max_records: int = 512
    eval_batch_size: int = 64
    eval_seq_len: int | None = None  # default: the first episode's length
    tensorboard: bool = True
    progress: bool = True
    prefetch: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.eval_every_epochs < 0:
            raise InputError(f"eval_every_epochs must be >= 0 (0: never). Received: {self.eval_every_epochs!r}")
        for name in ("steps_per_epoch", "save_every_epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1. Received: {name}={getattr(self, name)!r}")
        if self.max_epochs is not None and self.max_epochs < 0:
            raise InputError(f"max_epochs must be >= 0. Received: max_epochs={self.max_epochs!r}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate!r}")


@dataclass
class PretrainingResult:
    step: int
    epoch: int
    samples: int
    history: list
    step_losses: list  # (step, total, token loss, annotation loss) for the steps run by this call
    last_save: checkpoints.SaveInfo | None
    stopped: str  # "max_epochs", "time_budget", "interrupted"


# -- the plateau rule (kept in the save, so a resumed run decides as the uninterrupted one) -----
@dataclass
class PlateauState:
    best: float = math.inf
    wait: int = 0

    def update(self, loss: float, lr: float, settings: PretrainingSettings) -> float:
        """Keras ``ReduceLROnPlateau(monitor='loss', mode='min')`` for one epoch; returns the new lr."""
        if loss < self.best - settings.plateau_min_delta:
            self.best, self.wait = loss, 0
            return lr
        self.wait += 1
        if self.wait >= settings.plateau_patience:
            self.wait = 0
            if lr > settings.plateau_min_lr:
                new = max(lr * settings.plateau_factor, settings.plateau_min_lr)
                logger.info("loss has not improved for %d epochs: learning rate %.3g -> %.3g",
                            settings.plateau_patience, lr, new)
                return new
        return lr


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id) == 0


def _n_workers(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(v) for k, v in spec.items() if k in ("chief", "worker")))


def make_strategy(kind: str = "auto", devices=None):
    """A ``tf.distribute`` strategy: ``"auto"`` (multi-worker if ``TF_CONFIG`` names several workers,
    mirrored over all GPUs if there are several, else the default), ``"default"``, ``"mirrored"``
    (``devices`` or all GPUs) or ``"multi-worker"`` (reads ``TF_CONFIG``).

    Create it before any other TensorFlow work (multi-worker needs that).
    """
    import os

    import tensorflow as tf

    if kind == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        n = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        if n > 1:
            kind = "multi-worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if kind == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InputError(f"strategy must be auto, default, mirrored or multi-worker. Received: strategy={kind!r}")


class _InterruptFlag:
    """Turns SIGINT and SIGTERM into a flag checked between steps (so a step is never cut in half
    and the run saves before it ends, as a scheduler's SIGTERM expects)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.set = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:  # a second signal: stop at once
            raise KeyboardInterrupt
        logger.warning("%s received: stopping after this step and saving (send it again to abort)",
                       signal.Signals(signum).name)
        self.set = True

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            if previous is not None:  # None: a handler installed outside Python, not restorable
                signal.signal(sig, previous)


class Pretrainer:
    """Holds the model, optimizer, stream and counters of one run; :meth:`run` trains."""

    def __init__(self, dataset_path, settings: PretrainingSettings, architecture: dict | None = None,
                 init_weights=None, resume: bool = False, strategy=None):
        import tensorflow as tf

        from ..hardware import guard_onednn_concurrency

        guard_onednn_concurrency()  # before the first TensorFlow operation (see its docstring)
        self.settings = settings
        self.strategy = strategy or tf.distribute.get_strategy()
        self.n_replicas = int(self.strategy.num_replicas_in_sync)
        self.n_workers = _n_workers(self.strategy)
        self.is_chief = _is_chief(self.strategy)
        self.output_dir = Path(settings.output_dir)
        self._held = contextlib.ExitStack()
        self.dataset = None
        self._claim_output_dir()
        try:
            self._setup(dataset_path, architecture, init_weights, resume)
        except BaseException:
            self.close()
            raise

    def _claim_output_dir(self) -> None:
        """One run per output directory: the chief holds its lock until :meth:`close` (re-entrant,
        so a CLI's own lock is no obstacle). The other workers of a multi-worker run never write
        there; they learn from the chief whether it got the lock, and stop with it if not."""
        busy = None
        if self.is_chief:
            try:
                self._held.enter_context(output_lock(self.output_dir, "output directory"))
            except OutputBusyError as exc:
                busy = exc
        if self.n_workers > 1 and self._agree(busy is not None) and busy is None:
            raise OutputBusyError(f"output directory {self.output_dir}: the chief of this multi-worker run found it "
                                  "being written by another run; stopping with it")
        if busy is not None:
            raise busy

    def close(self) -> None:
        """Close the dataset and give up the output directory (:func:`pretrain` does this)."""
        if self.dataset is not None:
            self.dataset.close()
        self._held.close()

    def _setup(self, dataset_path, architecture, init_weights, resume) -> None:
        import keras

        from ..model import ProteinBertBackbone

        settings = self.settings
        self.dataset = PretrainingDataset(dataset_path)
        architecture = dict(architecture or {})
        unknown = sorted(set(architecture) - set(ARCHITECTURE_KEYS))
        if unknown:
            raise InputError(f"unknown architecture keys {unknown}; allowed: {', '.join(ARCHITECTURE_KEYS)}")

        saved = None
        if resume and init_weights is not None:
            raise InputError("resume and init_weights exclude each other: a resumed run continues from its own save")
        if resume:
            save = checkpoints.latest_save(self.output_dir)
            if save is None:
                raise InputError(f"--resume: no save found in {self.output_dir}")
            saved = (save, *checkpoints.read_save(save))
            state = saved[2]
            if state["annotations"] != self.dataset.annotations:
                raise InputError(
                    f"{dataset_path}: its {self.dataset.n_annotations} GO terms differ from the "
                    f"{len(state['annotations'])} of the save {save.path}; resume needs the same dataset"
                )
            if architecture and any(state["architecture"].get(k) != v for k, v in architecture.items()):
                logger.warning("resuming with the saved architecture %s (ignoring %s)", state["architecture"], architecture)
            architecture = {k: v for k, v in state["architecture"].items() if k in ARCHITECTURE_KEYS}
            data_settings = PretrainingDataSettings.from_dict(state["data"])
            if data_settings != settings.data:
                logger.info("resuming with the saved data settings (the schedule must not change)")
            if int(state["steps_per_epoch"]) != settings.steps_per_epoch:
                logger.warning("resuming with the saved steps_per_epoch=%s (ignoring %s)", state["steps_per_epoch"],
                               settings.steps_per_epoch)
            self.settings = settings = replace(settings, data=data_settings,
                                               steps_per_epoch=int(state["steps_per_epoch"]))
        elif checkpoints.list_saves(self.output_dir):
            raise InputError(
                f"{self.output_dir} already holds saves; pass resume=True (--resume) to continue, "
                "or choose another output directory"
            )
        for L, b in settings.data.episodes:
            if b % self.n_replicas:
                raise InputError(
                    f"batch size {b} of episode ({L}, {b}) is not a multiple of the {self.n_replicas} replicas"
                )

        with self.strategy.scope():
            # The backbone's initialisers draw from Keras' seed; fix it so a run is repeatable.
            keras.utils.set_random_seed(settings.seed)
            self.model = ProteinBertBackbone(n_annotations=self.dataset.n_annotations, dtype=settings.dtype,
                                             **architecture)
            # TF-Addons LAMB defaults of the 2021 run; Keras 3 matches it only with epsilon=1e-6.
            self.optimizer = keras.optimizers.Lamb(learning_rate=settings.learning_rate, epsilon=1e-6)
            self.optimizer.build(self.model.trainable_variables)

        self.step = self.samples = 0
        self.history: list = []
        self.plateau = PlateauState()
        self.lr = settings.learning_rate
        self.epoch_sums = _fresh_epoch_sums()
        stream_state = None
        if saved is not None:
            save, weights, state, stream_arrays = saved
            self._load_weights(weights, str(save.pkl_path), require_optimizer=True)
            self.step, self.samples = int(state["step"]), int(state["samples"])
            self.history = list(state["history"])
            self.plateau = PlateauState(float(state["plateau"]["best"]), int(state["plateau"]["wait"]))
            self.lr = float(state["learning_rate"])
            # Saves written before the accuracy split carry a single "accuracy" sum: dropped (it only
            # affects the epoch in progress's train accuracy, not the training itself).
            fresh = _fresh_epoch_sums()
            self.epoch_sums = {**fresh, **{k: v for k, v in state["epoch_sums"].items() if k in fresh}}
            stream_state = StreamState.from_arrays(stream_arrays)
            logger.info("resuming from %s (step %d, %d samples)", save.path, self.step, self.samples)
        elif init_weights is not None:
            weights = init_weights if isinstance(init_weights, ReleasedWeights) else read_pkl(init_weights)
            self._load_weights(weights, str(init_weights) if not isinstance(init_weights, ReleasedWeights)
                               else "initial weights", require_optimizer=False)
        self.optimizer.learning_rate.assign(self.lr)
        self.stream = PretrainingBatches(self.dataset, settings.data, state=stream_state)
        self.last_save = saved[0] if saved is not None else None
        self._saved_step = self.step if saved is not None else None
        self._train_step = None
        self._eval = None
        self._predict = None

    # -- weights -------------------------------------------------------------------------------
    def _load_weights(self, weights: ReleasedWeights, source: str, require_optimizer: bool) -> None:
        load_released_weights(self.model, weights, source=source)
        ok = checkpoints.import_lamb_state(self.model, self.optimizer, weights.optimizer_weights, source)
        if require_optimizer and not ok:
            raise WeightsError(f"{source}: the optimizer state does not fit the model; cannot resume exactly")
        if ok:
            logger.info("optimizer state imported from %s (iteration %d)", source, int(self.optimizer.iterations.numpy()))

    @property
    def epoch(self) -> int:
        return self.step // self.settings.steps_per_epoch

    # -- the distributed step ------------------------------------------------------------------
    def _build_step(self, element_spec):
        import keras
        import tensorflow as tf

        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        ops = keras.ops

        def replica_step(x):
            with tf.GradientTape() as tape:
                seq_probs, annot_probs = model([x["tokens"], x["annotations"]], training=True)
                ce = keras.losses.sparse_categorical_crossentropy(x["token_targets"], seq_probs)
                seq_loss = tf.reduce_sum(ce * x["token_weights"]) / x["n_tokens"][0]
                bce = keras.losses.binary_crossentropy(x["annotation_targets"], annot_probs)
                annot_loss = tf.reduce_sum(bce * x["annotation_weights"]) / x["n_annotated"][0]
                loss = seq_loss + annot_loss
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            pred = tf.argmax(seq_probs, axis=-1, output_type=tf.int32)
            counts = accuracy_counts(pred, x["tokens"], x["token_targets"], x["token_weights"], xp=ops)
            return tf.concat([tf.stack([loss, seq_loss, annot_loss]), tf.cast(counts, loss.dtype)], axis=0)

        # One trace for every episode: the signature leaves batch and length open.
        @tf.function(jit_compile=self.settings.jit_compile or None, input_signature=[element_spec])
        def train_step(x):
            per_replica = strategy.run(replica_step, args=(x,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        return train_step

    def _dataset_iterator(self, stop: threading.Event):
        stream, n_rep, prefetch = self.stream, self.n_replicas, self.settings.prefetch
        if n_rep == 1 and self.n_workers == 1:
            return iter(replica_dataset(stream, 1, (0,), prefetch, stop))

        def dataset_fn(ctx):
            local = n_rep // ctx.num_input_pipelines
            first = ctx.input_pipeline_id * local
            return replica_dataset(stream, n_rep, range(first, first + local), prefetch, stop)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _agree(self, flag: bool) -> bool:
        """True if any worker says so (workers must stop at the same step)."""
        if self.n_workers == 1:
            return flag
        import tensorflow as tf

        value = self.strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)) > 0

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> dict:
        """Held-out metrics and their baselines (see the module docstring), or ``{}``."""
        if self._eval is None:
            kw = dict(seq_len=self.settings.eval_seq_len, max_records=self.settings.eval_max_records)
            batch = holdout_batch(self.dataset, self.settings.data, **kw)
            given = holdout_batch(self.dataset, self.settings.data, annotation_inputs=True, **kw)
            freqs = training_label_frequencies(self.dataset, self.settings.data) if batch is not None else None
            self._eval = (batch, given, freqs) if batch is not None else False
        if self._eval is False:
            return {}
        if self._predict is None:
            import tensorflow as tf

            model = self.model
            self._predict = tf.function(lambda t, a: model([t, a], training=False), input_signature=[
                tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, model.n_annotations), tf.float32)])
        batch, given, freqs = self._eval
        size = self.settings.eval_batch_size
        out = evaluate_batch(self._predict, batch, size, label_frequencies=freqs)
        with_inputs = evaluate_batch(self._predict, given, size, only_not_given=True, label_frequencies=freqs)
        for key in ("eval_go_auc_macro", "eval_go_auc_micro", "eval_go_auc_micro_baseline"):
            if key in with_inputs:
                out[key.replace("eval_", "eval_partial_input_")] = with_inputs[key]
        return out

    # -- saving --------------------------------------------------------------------------------
    def save(self) -> checkpoints.SaveInfo | None:
        """Write a save of the current position (chief only); prune older saves."""
        if not self.is_chief:
            return None
        stream_state = self.stream.state_after(self.step - 1)
        weights = export_released_weights(self.model, checkpoints.export_lamb_state(self.model, self.optimizer))
        state = {
            "step": self.step, "epoch": self.epoch, "samples": self.samples,
            "learning_rate": self.lr, "plateau": {"best": self.plateau.best if math.isfinite(self.plateau.best)
                                                  else 1e300, "wait": self.plateau.wait},
            "epoch_sums": self.epoch_sums, "history": self.history,
            "architecture": self.model.architecture, "dtype": self.settings.dtype,
            "data": self.settings.data.to_dict(), "seed": self.settings.seed,
            "steps_per_epoch": self.settings.steps_per_epoch,
            "dataset": {"path": self.dataset.path, "n_records": len(self.dataset),
                        "go_release": _text_attr(self.dataset.metadata.get("go_release"))},
            "annotations": self.dataset.annotations,
        }
        info = checkpoints.write_save(self.output_dir, self.epoch, self.samples, weights, state,
                                      stream_state.to_arrays())
        self.last_save = info
        self._saved_step = self.step
        checkpoints.prune_saves(self.output_dir, self.settings.save_every_epochs, self.settings.keep_every_saves)
        return info

    def _write_history(self) -> None:
        if not self.is_chief or not self.history:
            return
        keys = sorted({k for h in self.history for k in h})
        with atomic_write_path(self.output_dir / "history.tsv") as tmp:
            with open(tmp, "w") as f:
                f.write("\t".join(keys) + "\n")
                for h in self.history:
                    f.write("\t".join(str(h.get(k, "")) for k in keys) + "\n")

    # -- the loop ------------------------------------------------------------------------------
    def run(self, step_hook=None) -> PretrainingResult:
        """Train until ``max_epochs``, the time budget, or an interrupt; save on the way out.

        ``step_hook(trainer, step, metrics)`` is called after every step (tests use it).
        """
        import tensorflow as tf
        from tqdm.auto import tqdm

        s = self.settings
        if self.is_chief:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial_saves(self.output_dir)
            # A run that could not save would train for nothing: weights and LAMB's two moments (float32).
            checkpoints.require_save_space(self.output_dir / checkpoints.save_name(self.epoch, self.samples),
                                           3 * 4 * self.model.count_params())
        writer = None
        if s.tensorboard and self.is_chief:
            writer = tf.summary.create_file_writer(str(self.output_dir / "tensorboard"))
        max_steps = None if s.max_epochs is None else s.max_epochs * s.steps_per_epoch
        if self.step == 0 and not self.history and (s.eval_every_epochs and self.settings.data.holdout_records):
            self._log_epoch({"epoch": 0, "step": 0, "samples": 0, "learning_rate": self.lr, **self.evaluate()},
                            writer)
        started = time.monotonic()
        step_losses: list = []
        stopped = "max_epochs"
        bar = tqdm(total=max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (s.progress and self.is_chief))
        stop_pipeline = threading.Event()
        iterator = self._dataset_iterator(stop_pipeline)
        if self._train_step is None:
            self._train_step = self._build_step(iterator.element_spec)
        try:
            with _InterruptFlag() as interrupt:
                while max_steps is None or self.step < max_steps:
                    t0 = time.perf_counter()
                    x = next(iterator)
                    batch_step = self._local_step(x)
                    if batch_step != self.step:
                        raise RuntimeError(f"internal: the pipeline delivered step {batch_step} at step {self.step}")
                    out = self._train_step(x).numpy()
                    loss, seq_loss, annot_loss = (float(v) for v in out[:3])
                    counts = out[3:]
                    if not all(math.isfinite(v) for v in (loss, seq_loss, annot_loss)):
                        where = self.last_save.path if self.last_save else "none (no save was made yet)"
                        raise TrainingDivergedError(
                            f"the loss became {loss} (token {seq_loss}, annotation {annot_loss}) at step "
                            f"{self.step}; training stopped. Last good save: {where}. Resume from it with a "
                            "lower learning rate or check the data."
                        )
                    dt = time.perf_counter() - t0
                    L, B = s.data.episodes[s.data.episode_for_step(self.step)]
                    self.step += 1
                    self.samples += B
                    step_losses.append((self.step - 1, loss, seq_loss, annot_loss))
                    e = self.epoch_sums
                    e["loss"] += loss; e["seq_loss"] += seq_loss; e["annot_loss"] += annot_loss  # noqa: E702
                    e["steps"] += 1; e["tokens"] += L * B; e["samples"] += B; e["seconds"] += dt  # noqa: E702
                    for k, v in zip(_COUNT_KEYS, counts):
                        e[k] += float(v)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{L * B / max(dt, 1e-9):.0f}",
                                    episode=f"{L}x{B}", lr=f"{self.lr:.2e}", refresh=False)
                    if step_hook is not None:
                        step_hook(self, self.step - 1, {"loss": loss, "seq_loss": seq_loss,
                                                        "annot_loss": annot_loss, **accuracies(counts)})
                    at_epoch_end = self.step % s.steps_per_epoch == 0
                    if at_epoch_end:
                        self._end_epoch(writer)
                    over_time = s.time_budget_s is not None and time.monotonic() - started >= s.time_budget_s
                    if self.n_workers == 1:
                        if interrupt.set:
                            stopped = "interrupted"
                            break
                        if over_time and at_epoch_end:
                            stopped = "time_budget"
                            break
                    elif at_epoch_end:
                        if self._agree(interrupt.set):
                            stopped = "interrupted"
                            break
                        if self._agree(over_time):
                            stopped = "time_budget"
                            break
        finally:
            bar.close()
            close_iterator(iterator, stop_pipeline)
        if self._saved_step != self.step:
            self.save()
        self._write_history()
        if writer is not None:
            writer.flush()
        if stopped == "interrupted":
            logger.warning("stopped on request at step %d; resume with --resume from %s", self.step,
                           self.last_save.path if self.last_save else self.output_dir)
        return PretrainingResult(self.step, self.epoch, self.samples, self.history, step_losses,
                                 self.last_save, stopped)

    def _local_step(self, x) -> int:
        steps = x["step"]
        if hasattr(self.strategy, "experimental_local_results") and not hasattr(steps, "numpy"):
            steps = self.strategy.experimental_local_results(steps)[0]
        return int(steps.numpy()[0])

    def _end_epoch(self, writer) -> None:
        s = self.settings
        e = self.epoch_sums
        n = max(e["steps"], 1)
        record = {
            "epoch": self.epoch, "step": self.step, "samples": self.samples, "learning_rate": self.lr,
            "loss": e["loss"] / n, "seq_loss": e["seq_loss"] / n, "annot_loss": e["annot_loss"] / n,
            **accuracies([e[k] for k in _COUNT_KEYS]),
            "samples_per_s": e["samples"] / max(e["seconds"], 1e-9),
            "tokens_per_s": e["tokens"] / max(e["seconds"], 1e-9),
        }
        if s.data.holdout_records and s.eval_every_epochs and self.epoch % s.eval_every_epochs == 0:
            record.update(self.evaluate())
        self.lr = self.plateau.update(record["loss"], self.lr, s)
        self.optimizer.learning_rate.assign(self.lr)
        self.epoch_sums = _fresh_epoch_sums()
        self._log_epoch(record, writer)
        if self.epoch % s.save_every_epochs == 0:
            self.save()

    def _log_epoch(self, record: dict, writer) -> None:
        self.history.append(record)
        train = ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                          if k not in ("epoch", "step", "samples") and not k.startswith("eval_"))
        logger.info("epoch %d: %s", record["epoch"], train)
        heldout = describe_heldout(record)
        if heldout:
            logger.info("epoch %d held-out: %s", record["epoch"], heldout)
        if writer is not None:
            import tensorflow as tf

            with writer.as_default(step=record["step"]):
                for k, v in record.items():
                    if k not in ("epoch", "step"):
                        write_scalar(tf, k, v)


_COUNT_KEYS = ("n_corrupted", "correct_corrupted", "n_uncorrupted", "correct_uncorrupted")


def _text_attr(value) -> str | None:
    """An HDF5 string attribute as ``str`` (``None`` stays ``None``: 2021 files carry no metadata)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fresh_epoch_sums() -> dict:
    return {"loss": 0.0, "seq_loss": 0.0, "annot_loss": 0.0, "steps": 0, "tokens": 0, "samples": 0,
            "seconds": 0.0, **{k: 0.0 for k in _COUNT_KEYS}}


def column_auc(y, scores, mask=None) -> np.ndarray:
    """ROC AUC of every column (ties count half); NaN where a column lacks positives or negatives.

    Rank-sum (Mann-Whitney) form, vectorised over columns: equal to sklearn's ``roc_auc_score``.
    ``mask`` (same shape, bool) keeps only the ``True`` entries of each column.

    >>> column_auc(np.array([[1, 0], [0, 1], [1, 1]]), np.array([[0.9, 0.2], [0.1, 0.2], [0.5, 0.3]])).round(2)
    array([1.  , 0.75])
    """
    from scipy.stats import rankdata

    scores = np.array(scores, dtype=np.float64)
    mask = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)
    scores[~mask] = np.nan
    y = (np.asarray(y) > 0) & mask
    ranks = np.nan_to_num(rankdata(scores, axis=0, nan_policy="omit"))
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = mask.sum(axis=0) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _micro_auc(y, scores, keep) -> float:
    """ROC AUC over all kept (protein, term) pairs pooled."""
    return float(column_auc(y.reshape(-1, 1), scores.reshape(-1, 1), keep.reshape(-1, 1))[0])


def evaluate_batch(predict, batch, batch_size: int = 64, only_not_given: bool = False,
                   label_frequencies=None) -> dict:
    """Held-out metrics on one :class:`PretrainingBatch` (annotation inputs as given), each with
    its baseline (the keys are described in the module docstring).

    ``predict(tokens, annotations) -> (token probs, annotation probs)``, e.g. a backbone's call.
    With ``only_not_given`` the GO AUCs leave out the (protein, term) pairs given as input, so they
    measure recovering withheld annotations from the rest. ``label_frequencies`` (one per GO term,
    from the training proteins; see :func:`training_label_frequencies`) gives
    ``eval_go_auc_micro_baseline``; without it that key is left out.
    """
    seq_parts, annot_parts = [], []
    for i in range(0, len(batch.tokens), batch_size):
        seq_p, annot_p = predict(batch.tokens[i:i + batch_size], batch.annotations[i:i + batch_size])
        seq_parts.append(np.asarray(seq_p))
        annot_parts.append(np.asarray(annot_p))
    seq_p = np.concatenate(seq_parts)
    annot_p = np.concatenate(annot_parts).astype(np.float64)
    w = batch.token_weights > 0
    targets = batch.token_targets
    p_true = np.take_along_axis(seq_p, targets[..., None].astype(np.int64), -1)[..., 0]
    out = {"eval_seq_loss": float(-np.log(np.clip(p_true[w], 1e-7, 1)).mean())}
    counts = accuracy_counts(seq_p.argmax(-1).astype(targets.dtype), batch.tokens, targets, batch.token_weights)
    out.update(accuracies(counts, prefix="eval_"))
    corrupted, _ = position_masks(batch.tokens, targets, batch.token_weights)
    if corrupted.any():
        out["eval_corrupted_unigram_baseline"] = unigram_baseline(targets[corrupted])
        out["eval_corrupted_positions"] = int(corrupted.sum())
    annotated = batch.annotation_targets.any(axis=1)
    if annotated.any():
        y = batch.annotation_targets[annotated]
        p = np.clip(annot_p[annotated], 1e-7, 1 - 1e-7)
        out["eval_annot_loss"] = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
        keep = ~(batch.annotations[annotated] > 0) if only_not_given else np.ones(y.shape, bool)
        aucs = column_auc(y, p, keep)
        if np.isfinite(aucs).any():
            out["eval_go_auc_macro"] = float(np.nanmean(aucs))
            out["eval_go_terms_scored"] = int(np.isfinite(aucs).sum())
        micro = _micro_auc(y, p, keep)
        if np.isfinite(micro):
            out["eval_go_auc_micro"] = micro
            if label_frequencies is not None:
                constant = np.broadcast_to(np.asarray(label_frequencies, np.float64), y.shape)
                out["eval_go_auc_micro_baseline"] = _micro_auc(y, np.ascontiguousarray(constant), keep)
    return out


def pretrain(dataset_path, settings: PretrainingSettings, architecture: dict | None = None, init_weights=None,
             resume: bool = False, strategy=None, step_hook=None) -> PretrainingResult:
    """Pretrain on ``dataset_path`` (see :class:`PretrainingSettings`); returns the run's summary."""
    trainer = Pretrainer(dataset_path, settings, architecture=architecture, init_weights=init_weights,
                         resume=resume, strategy=strategy)
    try:
        return trainer.run(step_hook=step_hook)
    finally:
        trainer.close()


def load_pretrained(save, dtype=None):
    """``(model, go_ids)`` from a pretraining save directory: the backbone with its weights and the
    GO id of every annotation slot.

    >>> model, go_ids = load_pretrained("run/epoch_40_sample_51200")  # doctest: +SKIP
    """
    from ..model import ProteinBertBackbone

    weights, state, _ = checkpoints.read_save(save)
    arch = {k: v for k, v in state["architecture"].items() if k in ARCHITECTURE_KEYS}
    model = ProteinBertBackbone(n_annotations=len(state["annotations"]), dtype=dtype, **arch)
    load_released_weights(model, weights, source=str(save))
    return model, list(state["annotations"])


def predict_go_terms(model, annotations, seqs, top_k: int = 5, seq_len: int = 512) -> list:
    """Top-``k`` GO ids with probabilities for each sequence (no annotation input).

    ``annotations`` is the GO id list of the model's slots (kept in every save's ``state.json``).
    Sequences are cropped to ``seq_len - 2`` residues and padded to ``seq_len``;
    :mod:`proteinbert.go_prediction` (``proteinbert predict-go``) pads as pretraining did instead.
    """
    from ..go_prediction import select_go_terms
    from ..tokenizer import N_ADDED_TOKENS, encode_batch

    seqs = [s[: seq_len - N_ADDED_TOKENS] for s in seqs]
    tokens = encode_batch(seqs, seq_len)
    _, probs = model([tokens, np.zeros((len(seqs), len(annotations)), np.float32)], training=False)
    return [[(annotations[j], p) for j, p in row] for row in select_go_terms(np.asarray(probs), top_k=top_k)]


__all__ = [
    "PretrainingSettings", "PretrainingResult", "Pretrainer", "TrainingDivergedError", "pretrain",
    "make_strategy", "evaluate_batch", "predict_go_terms", "load_pretrained", "column_auc", "PlateauState",
    "MACRO_AUC_BASELINE", "accuracy_counts", "accuracies", "describe_heldout", "position_masks",
    "training_label_frequencies", "unigram_baseline",
]
