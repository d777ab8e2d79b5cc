"""Fine-tuning that can be stopped and continued: the run's state after every epoch.

With ``FinetuneConfig.checkpoint_dir`` set, :func:`~proteinbert.training.finetune_schedule.finetune`
saves there, after every epoch of a stage that trains through the backbone and after every stage
trained on cached features, everything the rest of the run depends on: the model's variables
(dropout's seed state included), the optimizer's (moments, step count, learning rate), the state
of ReduceLROnPlateau and EarlyStopping (best weights included), the batch-order generator, the
finished stages' results and the epoch log. A later call with the same settings, the same data
and the same starting weights continues after the last saved epoch and ends with the model a run
that was never stopped ends with. A finished run's checkpoint makes a repeated call return at once.

Layout: ``state.json`` names the folder ``step-<n>`` that holds the arrays (``variables.npz``,
``optimizer.npz``, ``best.npz``). A step is written in full (and fsynced) before ``state.json``
points to it, so a run killed while saving leaves the previous checkpoint usable. The arrays are
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError
from .finetune_settings import StageResult

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
FORMAT_VERSION = 1
# Settings that change no number of the run (where it logs, where it saves).
_NOT_FINGERPRINTED = ("verbose", "tensorboard_dir", "csv_log", "replace_logs", "checkpoint_dir")


def run_fingerprint(model, config, train, valid=None) -> str:
    """A digest of what decides the run's numbers: settings, output spec, data and starting weights.

    A checkpoint is continued only by a run with the same fingerprint.
    """
    settings = dataclasses.asdict(config)
    for key in _NOT_FINGERPRINTED:
        settings.pop(key, None)
    digest = hashlib.sha1()
    header = dict(format=FORMAT_VERSION, config=settings, spec=train.spec.to_json(),
                  variables=[list(v.shape) for v in model.variables])  # not paths: Keras numbers those per process
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for variable in model.variables:
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    for data in (train, valid):
        digest.update(b"no set" if data is None else f"set of {len(data)}".encode())
        for tokens in [] if data is None else data.tokens:
            digest.update(np.asarray(tokens, dtype=np.int32).tobytes() + b"|")
        for label in [] if data is None or data.labels is None else data.labels:
            digest.update(np.asarray(label, dtype=np.float64).tobytes() + b"|")
    return digest.hexdigest()[:16]


def _callback_state(callback, keys) -> dict | None:
    if callback is None:
        return None
    return {key: None if getattr(callback, key) is None else float(getattr(callback, key)) for key in keys}


_REDUCE_LR_KEYS = ("wait", "best", "cooldown_counter")
_EARLY_STOPPING_KEYS = ("wait", "best", "best_epoch", "stopped_epoch")
_INT_KEYS = ("wait", "cooldown_counter", "best_epoch", "stopped_epoch")


@dataclasses.dataclass
class Resume:
    """A saved state to continue from: the next stage and epoch to run, and how to restore the rest."""

    state: dict
    step_dir: Path

    @property
    def next_stage(self) -> int:
        return int(self.state["next_stage"])

    @property
    def next_epoch(self) -> int:
        return int(self.state["next_epoch"])

    @property
    def optimizer_trainable(self) -> bool | None:
        """``train_pretrained`` of the stage whose optimizer was saved (None: no optimizer saved)."""
        return self.state["optimizer_trainable"]

    @property
    def rng_state(self) -> dict:
        return self.state["rng_state"]

    @property
    def log_rows(self) -> list:
        return list(self.state["log_rows"])

    @property
    def stage_history(self) -> dict:
        return {k: list(v) for k, v in self.state["stage_history"].items()}

    @property
    def stage_wall_s(self) -> float:
        return float(self.state["stage_wall_s"])

    def results(self) -> list:
        return [StageResult(**r) for r in self.state["results"]]

    def _arrays(self, name: str) -> list:
        path = self.step_dir / name
        try:
            with np.load(path, allow_pickle=False) as archive:
                return [archive[f"a{i}"] for i in range(len(archive.files))]
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"unreadable checkpoint arrays ({type(exc).__name__}: {exc})", path) from exc

    def _assign(self, variables, name: str) -> None:
        arrays = self._arrays(name)
        shapes = [tuple(v.shape) for v in variables]
        if [a.shape for a in arrays] != shapes:
            raise FormatError(f"the checkpoint holds {len(arrays)} arrays that do not match the {len(shapes)} "
                              "variables of this run", self.step_dir / name)
        for variable, value in zip(variables, arrays):
            variable.assign(value)

    def restore_variables(self, model) -> None:
        self._assign(model.variables, "variables.npz")

    def restore_optimizer(self, model) -> None:
        """Build the (freshly compiled) model's optimizer and load the saved moments, step and learning rate."""
        model.optimizer.build(model.trainable_variables)
        self._assign(model.optimizer.variables, "optimizer.npz")

    def restore_callbacks(self, reduce_lr=None, early_stopping=None) -> None:
        """Set the state of the stage's callbacks (call after their ``on_train_begin``, which resets it)."""
        for callback, key in ((reduce_lr, "reduce_lr"), (early_stopping, "early_stopping")):
            saved = self.state["callbacks"].get(key)
            if callback is None or saved is None:
                continue
            for name, value in saved.items():
                setattr(callback, name, int(value) if name in _INT_KEYS and value is not None else value)
        if early_stopping is not None and self.state["callbacks"].get("early_stopping_best_weights"):
            early_stopping.best_weights = self._arrays("best.npz")


class FinetuneCheckpoint:
    """The checkpoint folder of one fine-tuning run (see the module docstring).

    >>> import tempfile
    >>> FinetuneCheckpoint(tempfile.mkdtemp(), "0123abcd").load() is None  # nothing saved yet
    True
    """

    def __init__(self, directory, fingerprint: str):
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self._step: str | None = None  # the step folder state.json names (set by load and save)

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def load(self) -> Resume | None:
        """The saved state, or None when the folder holds none. Raises :class:`InputError` for the
        checkpoint of another run and :class:`FormatError` for a damaged one."""
        if not self.state_path.is_file():
            return None
        try:
            state = json.loads(self.state_path.read_text())
            step_dir = self.directory / state["step"]
            fingerprint = state["fingerprint"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"not a fine-tuning checkpoint state ({type(exc).__name__}: {exc})",
                              self.state_path) from exc
        if fingerprint != self.fingerprint:
            raise InputError(f"{self.directory} holds the checkpoint of another fine-tuning run (other settings, "
                             f"data or starting weights: {fingerprint}, this run: {self.fingerprint}); choose "
                             "another checkpoint folder, or delete that one to start over")
        if not step_dir.is_dir():
            raise FormatError(f"the checkpoint's arrays ({step_dir.name}) are missing", self.state_path)
        self._step = state["step"]
        resume = Resume(state, step_dir)
        logger.info("continuing the fine-tuning saved in %s: stage %d, epoch %d", self.directory,
                    resume.next_stage + 1, resume.next_epoch + 1)
        return resume

    def save(self, model, *, next_stage: int, next_epoch: int, results, rng, log_rows, stage_history=None,
             stage_wall_s: float = 0.0, optimizer_trainable: bool | None = None, reduce_lr=None,
             early_stopping=None) -> None:
        """Write the state reached (``next_stage``/``next_epoch``: 0-based, what runs next)."""
        from ..io_utils import atomic_write_path

        previous = self._step
        step = f"step-{0 if previous is None else int(previous.split('-')[1]) + 1}"
        best = None if early_stopping is None else early_stopping.best_weights
        # A folder of this name that state.json does not name was left by a run killed mid-save.
        shutil.rmtree(self.directory / step, ignore_errors=True)
        with atomic_write_path(self.directory / step, suffix="") as tmp:
            tmp = Path(tmp)
            tmp.mkdir()
            _save_arrays(tmp / "variables.npz", model.variables)
            if optimizer_trainable is not None:
                _save_arrays(tmp / "optimizer.npz", model.optimizer.variables)
            if best is not None:
                _save_arrays(tmp / "best.npz", best)
        state = dict(format=FORMAT_VERSION, fingerprint=self.fingerprint, step=step, next_stage=int(next_stage),
                     next_epoch=int(next_epoch), optimizer_trainable=optimizer_trainable,
                     rng_state=rng.bit_generator.state, log_rows=list(log_rows),
                     results=[dataclasses.asdict(r) for r in results],
                     stage_history={k: [float(x) for x in v] for k, v in (stage_history or {}).items()},
                     stage_wall_s=float(stage_wall_s),
                     callbacks=dict(reduce_lr=_callback_state(reduce_lr, _REDUCE_LR_KEYS),
                                    early_stopping=_callback_state(early_stopping, _EARLY_STOPPING_KEYS),
                                    early_stopping_best_weights=best is not None))
        with atomic_write_path(self.state_path) as tmp:
            Path(tmp).write_text(json.dumps(state))
        self._step = step
        if previous is not None:
            shutil.rmtree(self.directory / previous, ignore_errors=True)


def _save_arrays(path: Path, values) -> None:
    arrays = {f"a{i}": np.asarray(v) for i, v in enumerate(values)}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def epoch_saver(checkpoint: FinetuneCheckpoint, *, stage_index: int, max_epochs: int, results, rng, epoch_log,
                optimizer_trainable: bool, reduce_lr=None, early_stopping=None, resume: Resume | None = None):
    """A Keras callback for one stage's ``fit``: restores the callbacks' state when continuing
    (``resume``), and saves the run after each epoch but the stage's last (the stage's end is saved
    by the caller, after EarlyStopping has put the best weights back). Its ``history`` and
    ``elapsed`` cover the whole stage, the part before a resume included. Put it after the stage's
    other callbacks: it saves what they did in the epoch.
    """
    import time

    import keras

    class _SaveEveryEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = {} if resume is None else resume.stage_history
            self._before = 0.0 if resume is None else resume.stage_wall_s
            self._start = time.perf_counter()

        @property
        def elapsed(self) -> float:
            return self._before + time.perf_counter() - self._start

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()
            if resume is not None:
                resume.restore_callbacks(reduce_lr, early_stopping)

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            if self.model.stop_training or epoch + 1 >= max_epochs:
                return
            checkpoint.save(self.model, next_stage=stage_index, next_epoch=epoch + 1, results=results, rng=rng,
                            log_rows=epoch_log.rows, stage_history=self.history, stage_wall_s=self.elapsed,
                            optimizer_trainable=optimizer_trainable, reduce_lr=reduce_lr,
                            early_stopping=early_stopping)

    return _SaveEveryEpoch()


__all__ = ["FinetuneCheckpoint", "Resume", "epoch_saver", "run_fingerprint"]
