"""The fine-tuning epoch log: one line per epoch of every stage; TensorBoard events and a CSV on request."""

from __future__ import annotations

import logging
import time
from pathlib import Path
import numpy as np

from ..errors import InputError
from .finetune_settings import FinetuneConfig
from .summaries import write_scalar, write_text

logger = logging.getLogger(__name__)


#: The epoch log's columns around the loss and metrics (training ones, then ``val_`` ones).
EPOCH_LOG_FIRST_COLUMNS = ("stage", "epoch", "stage_epoch")
EPOCH_LOG_LAST_COLUMNS = ("lr", "seconds")
_EVENT_FILE_GLOB = "events.out.tfevents.*"


def check_epoch_logs(config: FinetuneConfig) -> None:
    """Refuse epoch-log outputs that would mix with an earlier run's, unless ``config.replace_logs``.

    >>> import tempfile, pathlib
    >>> from proteinbert.training.finetune_settings import FinetuneConfig
    >>> csv = pathlib.Path(tempfile.mkdtemp()) / "epochs.csv"
    >>> _ = csv.write_text("old")
    >>> check_epoch_logs(FinetuneConfig(csv_log=str(csv)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: the epoch log ... exists; allow replacing it (replace_logs=True; ...)
    """
    if config.replace_logs:
        return
    if config.csv_log is not None and Path(config.csv_log).exists():
        raise InputError(f"the epoch log {config.csv_log} exists; allow replacing it (replace_logs=True; "
                         "--overwrite on the command line)")
    if config.tensorboard_dir is not None:
        old = sorted(Path(config.tensorboard_dir).glob(_EVENT_FILE_GLOB))
        if old:
            raise InputError(f"the TensorBoard directory {config.tensorboard_dir} already holds event files "
                             f"({old[0].name}, ...): curves of two runs would mix; choose a new directory "
                             "(TensorBoard shows each subdirectory of its --logdir as a run) or allow replacing "
                             "them (replace_logs=True; --overwrite on the command line)")


class EpochLog:
    """The record of every epoch of a fine-tuning run, all stages in one sequence.

    Epochs are numbered across stages (``epoch``; ``stage_epoch`` within the stage), so curves
    continue from one stage to the next. Each epoch gives one INFO log line (stage, epoch, loss,
    validation metrics, learning rate, seconds) and, when ``config`` asks for them, a row of the
    CSV ``config.csv_log`` (rewritten atomically after every epoch, so it is always complete) and
    TensorBoard scalars at step ``epoch`` in ``config.tensorboard_dir``, with the stage's name as a
    text summary and its 1-based position as the scalar ``stage_index``. ``lr`` is the learning
    rate the epoch ran with (a reduction on plateau shows in the next epoch).

    >>> from proteinbert.training.finetune_settings import FinetuneConfig
    >>> log = EpochLog(FinetuneConfig())
    >>> log.record("frozen", 1, 1, {"loss": 0.69, "val_loss": 0.68, "val_auc": 0.55}, lr=0.01, seconds=1.5)
    >>> log.record("unfrozen", 2, 1, {"loss": 0.60, "val_loss": 0.61, "val_auc": 0.70}, lr=1e-4, seconds=2.0)
    >>> [(row["stage"], row["epoch"], row["stage_epoch"]) for row in log.rows]
    [('frozen', 1, 1), ('unfrozen', 2, 1)]
    >>> log.columns()
    ['stage', 'epoch', 'stage_epoch', 'loss', 'val_loss', 'val_auc', 'lr', 'seconds']
    """

    def __init__(self, config: FinetuneConfig):
        self.csv_path = None if config.csv_log is None else Path(config.csv_log)
        self.tensorboard_dir = None if config.tensorboard_dir is None else Path(config.tensorboard_dir)
        self.stage_names = [stage.name for stage in config.stages]
        self.rows: list[dict] = []
        self._writer = None

    @classmethod
    def open(cls, config: FinetuneConfig, rows: list | None = None) -> "EpochLog":
        """Check the outputs (:func:`check_epoch_logs`), clear replaced ones and open the event writer.

        ``rows``: the epochs of the run so far, when it continues from a checkpoint; its logs are
        then continued, not checked or cleared.
        """
        if rows is None:
            check_epoch_logs(config)
        log = cls(config)
        log.rows = list(rows or [])
        if log.tensorboard_dir is not None:
            import tensorflow as tf

            log.tensorboard_dir.mkdir(parents=True, exist_ok=True)
            for old in [] if rows is not None else log.tensorboard_dir.glob(_EVENT_FILE_GLOB):
                old.unlink()  # only with replace_logs (checked above)
            log._writer = tf.summary.create_file_writer(str(log.tensorboard_dir))
        return log

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def epochs(self) -> int:
        """Epochs recorded so far, all stages together."""
        return len(self.rows)

    def columns(self) -> list[str]:
        """The CSV columns: the first ones, training losses/metrics, validation ones, the last ones."""
        seen: dict = {}
        for row in self.rows:
            seen.update(dict.fromkeys(k for k in row if k not in EPOCH_LOG_FIRST_COLUMNS + EPOCH_LOG_LAST_COLUMNS))
        return [*EPOCH_LOG_FIRST_COLUMNS, *_loss_first(seen), *EPOCH_LOG_LAST_COLUMNS]

    def record(self, stage: str, epoch: int, stage_epoch: int, metrics: dict, lr: float, seconds: float,
               stage_index: int = 0) -> None:
        """Add one epoch: log it, and write it to the CSV and TensorBoard if they are on.

        ``stage_index``: the stage's 1-based position in the schedule (TensorBoard's ``stage_index``).
        """
        # Keras's numbers are float32: their shortest float32 form (0.01, not 0.009999999776482582).
        values = {k: _float32_value(metrics[k]) for k in _loss_first(metrics) if k != "learning_rate"}
        row = {"stage": stage, "epoch": int(epoch), "stage_epoch": int(stage_epoch), **values,
               "lr": _float32_value(lr), "seconds": round(float(seconds), 3)}
        self.rows.append(row)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        logger.info("stage %s epoch %d (%d of the stage): %s, lr=%.3g, %.1f s", stage, epoch, stage_epoch, shown,
                    lr, seconds)
        if self.csv_path is not None:
            self._write_csv()
        if self._writer is not None:
            self._write_events(row, stage_index)

    def _write_csv(self) -> None:
        import csv

        from ..io_utils import atomic_write_path

        columns = self.columns()
        with atomic_write_path(self.csv_path) as tmp:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, columns, restval="")
                writer.writeheader()
                writer.writerows(self.rows)

    def _write_events(self, row: dict, stage_index: int) -> None:
        import tensorflow as tf


        with self._writer.as_default(step=row["epoch"]):
            for key, value in row.items():
                if key not in EPOCH_LOG_FIRST_COLUMNS:
                    write_scalar(tf, key, value)
            write_scalar(tf, "stage_index", stage_index)
            write_text(tf, "stage", row["stage"])
        self._writer.flush()

    def callback(self, stage_index: int):
        """A Keras callback that records the epochs of ``fit`` for stage ``stage_index`` (0-based) into this log."""
        import keras

        log, stage = self, self.stage_names[stage_index]

        class _StageEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()
                self._lr = float(np.asarray(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

            def on_epoch_end(self, epoch, logs=None):
                log.record(stage, log.epochs + 1, epoch + 1, dict(logs or {}), self._lr,
                           time.perf_counter() - self._start, stage_index + 1)

        return _StageEpochs()


def _loss_first(keys) -> list[str]:
    """Training loss and metrics, then validation ones; the loss first in each (Keras sorts by name).

    >>> _loss_first(["auc", "loss", "val_auc", "val_loss"])
    ['loss', 'auc', 'val_loss', 'val_auc']
    """
    keys = list(keys)
    ordered = []
    for group in ([k for k in keys if not k.startswith("val_")], [k for k in keys if k.startswith("val_")]):
        ordered += sorted(group, key=lambda k: k not in ("loss", "val_loss"))
    return ordered


def _float32_value(value) -> float:
    return float(str(np.float32(value)))
