"""Joint masked-token + GO pretraining: one model for every length, LAMB, resumable saves,
``tf.distribute`` replicas.

The losses (token cross-entropy and GO binary cross-entropy, summed) are defined in
:mod:`.pretraining_step`; the metrics reported in ``history``, the log lines and TensorBoard, each
next to what a trivial model scores, are described in :mod:`.pretraining_metrics`.

A save is taken every ``save_every_epochs`` epochs (see :mod:`.checkpoints`), at the end, and on
Ctrl-C; ``resume=True`` continues from the newest one with the same batches and losses.

>>> settings = PretrainingSettings(output_dir="run", max_epochs=2, steps_per_epoch=10)  # doctest: +SKIP
>>> result = pretrain("dataset.h5", settings, architecture=dict(d_seq=32, d_global=64))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.h5dataset import PretrainingDataset
from ..data.pretraining_batches import PretrainingBatches, StreamState
from ..errors import InputError, OutputBusyError, TrainingDivergedError, WeightsError
from ..io_utils import atomic_write_path, output_lock
from ..weights import ReleasedWeights, export_released_weights, load_released_weights, read_pkl
from . import checkpoints
from .distribution import any_worker
# Called through these names (a test makes a process no chief by patching _is_chief here).
from .distribution import is_chief as _is_chief, n_workers as _n_workers
from .interrupts import InterruptFlag
from .pretraining_eval import HeldoutEvaluation
from .pretraining_input import close_iterator, distributed_iterator
from .pretraining_metrics import (
    LOSS_KEYS, accuracies, add_step, describe_heldout, describe_train, epoch_metrics, fresh_epoch_sums,
)
from .pretraining_settings import (
    PlateauState, PretrainingSettings, check_architecture, check_replicas,
)
from .pretraining_step import build_train_step
from .summaries import write_scalar

# Re-exported: these were defined or imported here before they got modules of their own.
from ..data.pretraining_batches import PretrainingDataSettings, holdout_batch
from .distribution import make_strategy
from ..go_prediction import predict_go_terms
from .pretrained import load_pretrained
from .pretraining_eval import column_auc, evaluate_batch
from .pretraining_input import replica_dataset
from .pretraining_metrics import (
    LABEL_FREQUENCY_RECORDS, MACRO_AUC_BASELINE, accuracy_counts, position_masks, training_label_frequencies,
    unigram_baseline,
)
from .pretraining_settings import ARCHITECTURE_KEYS

logger = logging.getLogger(__name__)


@dataclass
class PretrainingResult:
    """What :meth:`Pretrainer.run` returns: where the run stopped, its history, its last save."""

    step: int
    epoch: int
    samples: int
    history: list
    step_losses: list  # (step, total, token loss, annotation loss) for the steps run by this call
    last_save: checkpoints.SaveInfo | None
    stopped: str  # "max_epochs", "time_budget", "interrupted"


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

    # -- setting up ----------------------------------------------------------------------------
    def _setup(self, dataset_path, architecture, init_weights, resume) -> None:
        self.dataset = PretrainingDataset(dataset_path)
        architecture = check_architecture(architecture)
        if resume and init_weights is not None:
            raise InputError("resume and init_weights exclude each other: a resumed run continues from its own save")
        saved = None
        if resume:
            saved = checkpoints.read_resume_point(self.output_dir, self.dataset, dataset_path)
            self.settings, architecture = checkpoints.resumed_settings(saved.state, self.settings, architecture)
        else:
            checkpoints.require_no_saves(self.output_dir)
        check_replicas(self.settings.data, self.n_replicas)
        self._build_model(architecture)
        stream_state = self._start_position(saved, init_weights)
        self.optimizer.learning_rate.assign(self.lr)
        self.stream = PretrainingBatches(self.dataset, self.settings.data, state=stream_state)
        self.last_save = saved.save if saved is not None else None
        self._saved_step = self.step if saved is not None else None
        self._train_step = None
        self._evaluation = HeldoutEvaluation(self.model, self.dataset, self.settings)

    def _start_position(self, saved, init_weights) -> StreamState | None:
        """Counters and weights to start from: the save's (returns its stream state), else fresh
        ones and ``init_weights`` if given."""
        self.step = self.samples = 0
        self.history: list = []
        self.plateau = PlateauState()
        self.lr = self.settings.learning_rate
        self.epoch_sums = fresh_epoch_sums()
        if saved is None:
            if init_weights is not None:
                self._load_initial_weights(init_weights)
            return None
        self._load_weights(saved.weights, str(saved.save.pkl_path), require_optimizer=True)
        checkpoints.restore_training_state(self, saved.state)
        logger.info("resuming from %s (step %d, %d samples)", saved.save.path, self.step, self.samples)
        return StreamState.from_arrays(saved.stream_arrays)

    def _build_model(self, architecture: dict) -> None:
        import keras

        from ..model import ProteinBertBackbone

        settings = self.settings
        with self.strategy.scope():
            # The backbone's initialisers draw from Keras' seed; fix it so a run is repeatable.
            keras.utils.set_random_seed(settings.seed)
            self.model = ProteinBertBackbone(n_annotations=self.dataset.n_annotations, dtype=settings.dtype,
                                             **architecture)
            # TF-Addons LAMB defaults of the 2021 run; Keras 3 matches it only with epsilon=1e-6.
            self.optimizer = keras.optimizers.Lamb(learning_rate=settings.learning_rate, epsilon=1e-6)
            self.optimizer.build(self.model.trainable_variables)

    # -- weights -------------------------------------------------------------------------------
    def _load_initial_weights(self, init_weights) -> None:
        if isinstance(init_weights, ReleasedWeights):
            self._load_weights(init_weights, "initial weights", require_optimizer=False)
        else:
            self._load_weights(read_pkl(init_weights), str(init_weights), require_optimizer=False)

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
        return build_train_step(self.model, self.optimizer, self.strategy, element_spec,
                                jit_compile=self.settings.jit_compile)

    def _dataset_iterator(self, stop: threading.Event):
        return distributed_iterator(self.strategy, self.stream, self.n_replicas, self.n_workers,
                                    self.settings.prefetch, stop)

    def _agree(self, flag: bool) -> bool:
        """True if any worker says so (workers must stop at the same step)."""
        return flag if self.n_workers == 1 else any_worker(self.strategy, flag)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> dict:
        """Held-out metrics and their baselines (see :mod:`.pretraining_metrics`), or ``{}``."""
        return self._evaluation()

    # -- saving --------------------------------------------------------------------------------
    def save(self) -> checkpoints.SaveInfo | None:
        """Write a save of the current position (chief only); prune older saves."""
        if not self.is_chief:
            return None
        stream_state = self.stream.state_after(self.step - 1)
        weights = export_released_weights(self.model, checkpoints.export_lamb_state(self.model, self.optimizer))
        info = checkpoints.write_save(self.output_dir, self.epoch, self.samples, weights,
                                      checkpoints.training_state(self), stream_state.to_arrays())
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
        from tqdm.auto import tqdm

        s = self.settings
        writer = self._open_output()
        max_steps = None if s.max_epochs is None else s.max_epochs * s.steps_per_epoch
        if self.step == 0 and not self.history and (s.eval_every_epochs and s.data.holdout_records):
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
            with InterruptFlag() as interrupt:
                while max_steps is None or self.step < max_steps:
                    losses, counts = self._one_step(iterator, bar)
                    step_losses.append((self.step - 1, *losses))
                    if step_hook is not None:
                        step_hook(self, self.step - 1, {**dict(zip(LOSS_KEYS, losses)), **accuracies(counts)})
                    at_epoch_end = self.step % s.steps_per_epoch == 0
                    if at_epoch_end:
                        self._end_epoch(writer)
                    reason = self._stop_reason(interrupt.set, started, at_epoch_end)
                    if reason is not None:
                        stopped = reason
                        break
        finally:
            bar.close()
            close_iterator(iterator, stop_pipeline)
        return self._finish(stopped, writer, step_losses)

    def _open_output(self):
        """Prepare the output directory (chief only); the TensorBoard writer, or ``None``."""
        if not self.is_chief:
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        checkpoints.remove_partial_saves(self.output_dir)
        # A run that could not save would train for nothing: weights and LAMB's two moments (float32).
        checkpoints.require_save_space(self.output_dir / checkpoints.save_name(self.epoch, self.samples),
                                       3 * 4 * self.model.count_params())
        if not self.settings.tensorboard:
            return None
        import tensorflow as tf

        return tf.summary.create_file_writer(str(self.output_dir / "tensorboard"))

    def _one_step(self, iterator, bar):
        """Train on the next batch and count it; ``((total, token, annotation) losses, accuracy counts)``."""
        data = self.settings.data
        t0 = time.perf_counter()
        x = next(iterator)
        batch_step = self._local_step(x)
        if batch_step != self.step:
            raise RuntimeError(f"internal: the pipeline delivered step {batch_step} at step {self.step}")
        out = self._train_step(x).numpy()
        losses, counts = tuple(float(v) for v in out[:3]), out[3:]
        self._check_finite(*losses)
        dt = time.perf_counter() - t0
        L, B = data.episodes[data.episode_for_step(self.step)]
        self.step += 1
        self.samples += B
        add_step(self.epoch_sums, losses, counts, tokens=L * B, samples=B, seconds=dt)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[0]:.4f}", tok_s=f"{L * B / max(dt, 1e-9):.0f}",
                        episode=f"{L}x{B}", lr=f"{self.lr:.2e}", refresh=False)
        return losses, counts

    def _check_finite(self, loss: float, seq_loss: float, annot_loss: float) -> None:
        if not all(math.isfinite(v) for v in (loss, seq_loss, annot_loss)):
            where = self.last_save.path if self.last_save else "none (no save was made yet)"
            raise TrainingDivergedError(
                f"the loss became {loss} (token {seq_loss}, annotation {annot_loss}) at step "
                f"{self.step}; training stopped. Last good save: {where}. Resume from it with a "
                "lower learning rate or check the data."
            )

    def _stop_reason(self, interrupted: bool, started: float, at_epoch_end: bool) -> str | None:
        """``"interrupted"``, ``"time_budget"`` or ``None`` (go on); several workers decide together,
        at epoch ends."""
        budget = self.settings.time_budget_s
        over_time = budget is not None and time.monotonic() - started >= budget
        if self.n_workers == 1:
            if interrupted:
                return "interrupted"
            return "time_budget" if over_time and at_epoch_end else None
        if not at_epoch_end:
            return None
        if self._agree(interrupted):
            return "interrupted"
        return "time_budget" if self._agree(over_time) else None

    def _finish(self, stopped: str, writer, step_losses: list) -> PretrainingResult:
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
        record = {"epoch": self.epoch, "step": self.step, "samples": self.samples, "learning_rate": self.lr,
                  **epoch_metrics(self.epoch_sums)}
        if s.data.holdout_records and s.eval_every_epochs and self.epoch % s.eval_every_epochs == 0:
            record.update(self.evaluate())
        self.lr = self.plateau.update(record["loss"], self.lr, s)
        self.optimizer.learning_rate.assign(self.lr)
        self.epoch_sums = fresh_epoch_sums()
        self._log_epoch(record, writer)
        if self.epoch % s.save_every_epochs == 0:
            self.save()

    def _log_epoch(self, record: dict, writer) -> None:
        self.history.append(record)
        logger.info("epoch %d: %s", record["epoch"], describe_train(record))
        heldout = describe_heldout(record)
        if heldout:
            logger.info("epoch %d held-out: %s", record["epoch"], heldout)
        if writer is not None:
            import tensorflow as tf

            with writer.as_default(step=record["step"]):
                for k, v in record.items():
                    if k not in ("epoch", "step"):
                        write_scalar(tf, k, v)


def pretrain(dataset_path, settings: PretrainingSettings, architecture: dict | None = None, init_weights=None,
             resume: bool = False, strategy=None, step_hook=None) -> PretrainingResult:
    """Pretrain on ``dataset_path`` (see :class:`PretrainingSettings`); returns the run's summary."""
    trainer = Pretrainer(dataset_path, settings, architecture=architecture, init_weights=init_weights,
                         resume=resume, strategy=strategy)
    try:
        return trainer.run(step_hook=step_hook)
    finally:
        trainer.close()


__all__ = [
    "PretrainingSettings", "PretrainingResult", "Pretrainer", "TrainingDivergedError", "pretrain",
    "make_strategy", "evaluate_batch", "predict_go_terms", "load_pretrained", "column_auc", "PlateauState",
    "MACRO_AUC_BASELINE", "accuracy_counts", "accuracies", "describe_heldout", "position_masks",
    "training_label_frequencies", "unigram_baseline",
    # importable from here before the split, too:
    "ARCHITECTURE_KEYS", "LABEL_FREQUENCY_RECORDS", "PretrainingDataSettings", "holdout_batch", "replica_dataset",
]
