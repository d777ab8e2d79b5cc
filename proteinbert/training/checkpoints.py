"""Pretraining saves: atomic directories holding weights, optimizer state and the run's state.

A save is a directory ``epoch_{E}_sample_{S}/`` inside the output directory with

* ``epoch_{E}_sample_{S}.pkl`` — the 2021 interchange format: ``(n_annotations, model weights in
  released order, LAMB state [iterations int64, first moments, second moments] in weight order)``;
* ``stream.npz`` — where the batch stream stands (step, next chunk, record ids waiting per episode);
* ``state.json`` — counters, learning rate and plateau state, settings, architecture, history and
  the GO term list of the annotation slots (the mapping the released model lost).

It is written in a hidden temporary directory, every file and the directory fsynced, and renamed
into place (the output directory fsynced after), so a crash, a power loss or a full disk during a
save leaves every earlier save as it was. Only complete saves are listed.

What ``state.json`` holds is defined here too: written by :func:`training_state`, checked by
:func:`read_state`, read back by :func:`restore_training_state` and :func:`resumed_settings`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.pretraining_batches import PretrainingDataSettings
from ..errors import InputError, OutOfSpaceError, WeightsError
from ..io_utils import NO_SPACE_ERRNOS, fsync_dir, fsync_tree, require_space
# Only numpy here: reading a save's state (e.g. `predict-go` checking its inputs) starts no TensorFlow.
from ..weights.pkl import ReleasedWeights, read_pkl, write_pkl
from .pretraining_metrics import fresh_epoch_sums
from .pretraining_settings import ARCHITECTURE_KEYS, PlateauState

logger = logging.getLogger(__name__)

SAVE_PATTERN = re.compile(r"^epoch_(\d+)_sample_(\d+)$")
STATE_FILE = "state.json"
STREAM_FILE = "stream.npz"
FORMAT_VERSION = 1
#: Keys a save's state.json must hold for a run to resume from it (nested: ``plateau.best`` …).
REQUIRED_STATE_KEYS = ("step", "samples", "learning_rate", "plateau", "epoch_sums", "history", "architecture",
                       "data", "steps_per_epoch", "annotations")


@dataclass(frozen=True)
class SaveInfo:
    path: Path
    epoch: int
    samples: int

    @property
    def pkl_path(self) -> Path:
        return self.path / f"{self.path.name}.pkl"


def save_name(epoch: int, samples: int) -> str:
    return f"epoch_{int(epoch)}_sample_{int(samples)}"


def list_saves(output_dir) -> list[SaveInfo]:
    """Complete saves in ``output_dir``, oldest first."""
    out = []
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return out
    for p in output_dir.iterdir():
        m = SAVE_PATTERN.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            out.append(SaveInfo(p, int(m.group(1)), int(m.group(2))))
    return sorted(out, key=lambda s: (s.epoch, s.samples))


def latest_save(output_dir) -> SaveInfo | None:
    saves = list_saves(output_dir)
    return saves[-1] if saves else None


def remove_partial_saves(output_dir) -> None:
    """Delete temporary directories left by a save that was interrupted."""
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        for p in output_dir.glob(".partial-*"):
            logger.info("removing the unfinished save %s", p)
            shutil.rmtree(p, ignore_errors=True)


def write_save(output_dir, epoch: int, samples: int, weights: ReleasedWeights, state: dict,
               stream_arrays: dict) -> SaveInfo:
    """Write one save atomically; returns where it is."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = save_name(epoch, samples)
    final = output_dir / name
    state_text = json.dumps({"format_version": FORMAT_VERSION, **state}, indent=1)
    arrays = [*weights.model_weights, *(weights.optimizer_weights or ()), *stream_arrays.values()]
    require_save_space(final, sum(np.asarray(a).nbytes for a in arrays) + len(state_text))
    tmp = Path(tempfile.mkdtemp(prefix=f".partial-{name}-", dir=output_dir))
    try:
        write_pkl(tmp / f"{name}.pkl", weights)
        with open(tmp / STREAM_FILE, "wb") as f:
            np.savez(f, **stream_arrays)
        with open(tmp / STATE_FILE, "w") as f:
            f.write(state_text)
        # Every file's data and the directory's entries reach the disk before the save gets its
        # name: otherwise a power loss can leave a complete-looking save of empty files.
        fsync_tree(tmp)
        if final.exists():  # a save of the same position (a re-run): swap it out last
            old = Path(tempfile.mkdtemp(prefix=f".partial-old-{name}-", dir=output_dir))
            os.replace(final, old / name)
            os.replace(tmp, final)
            fsync_dir(output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
            fsync_dir(output_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        code = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and code in NO_SPACE_ERRNOS:  # Python's own message names no file
            raise OutOfSpaceError(code, f"cannot write the save {final}: {os.strerror(code)} (the earlier "
                                        "saves are as they were)") from exc
        raise
    logger.info("saved %s", final)
    return SaveInfo(final, int(epoch), int(samples))


def require_save_space(save_path, nbytes: int) -> None:
    """Refuse (:class:`~proteinbert.errors.OutOfSpaceError`) a save of about ``nbytes`` of arrays
    and text at ``save_path`` that the disk cannot hold, before anything is written."""
    require_space(save_path, int(nbytes) + (1 << 20), "the save")  # + pickle and file-system overhead


def _save_info(save: SaveInfo | str | os.PathLike) -> SaveInfo:
    if isinstance(save, SaveInfo):
        return save
    path = Path(save)
    m = SAVE_PATTERN.match(path.name)
    if not m:
        raise WeightsError(f"{path}: not a pretraining save directory (expected a name like epoch_10_sample_1280)")
    return SaveInfo(path, int(m.group(1)), int(m.group(2)))


def read_state(save: SaveInfo | str | os.PathLike) -> dict:
    """The checked ``state.json`` of a save directory, without reading its weights."""
    save = _save_info(save)
    try:
        with open(save.path / STATE_FILE) as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{save.path}: unreadable save ({exc})") from exc
    _check_state(state, save.path / STATE_FILE)
    return state


def read_save(save: SaveInfo | str | os.PathLike):
    """``(ReleasedWeights, state dict, stream arrays)`` of a save directory."""
    save = _save_info(save)
    state = read_state(save)
    try:
        with np.load(save.path / STREAM_FILE) as z:
            stream = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{save.path}: unreadable save ({exc})") from exc
    return read_pkl(save.pkl_path), state, stream


def _check_state(state, path) -> None:
    """Refuse a state.json that a resume cannot use, naming what is missing."""
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a JSON object. Received: {type(state).__name__}")
    missing = [k for k in REQUIRED_STATE_KEYS if k not in state]
    if isinstance(state.get("plateau"), dict):
        missing += [f"plateau.{k}" for k in ("best", "wait") if k not in state["plateau"]]
    elif "plateau" in state:
        missing.append("plateau.best")
    if missing:
        raise WeightsError(f"{path}: not a complete pretraining save state (missing {', '.join(missing)}); "
                           "resume from another save or start a new run")
    for key in ("architecture", "data", "epoch_sums"):
        if not isinstance(state[key], dict):
            raise WeightsError(f"{path}: {key} must be a JSON object. Received: {state[key]!r:.60}")
    for key in ("annotations", "history"):
        if not isinstance(state[key], list):
            raise WeightsError(f"{path}: {key} must be a JSON list. Received: {state[key]!r:.60}")


def prune_saves(output_dir, save_every: int, keep_every: int) -> list[Path]:
    """Apply the keep-every-Mth policy: save number ``k = epoch // save_every`` stays if
    ``k % keep_every == 0``; the newest always stays. Returns the deleted paths."""
    saves = list_saves(output_dir)
    deleted = []
    for s in saves[:-1]:
        k = s.epoch // max(save_every, 1)
        if keep_every > 0 and k % keep_every == 0:
            continue
        shutil.rmtree(s.path, ignore_errors=True)
        deleted.append(s.path)
    return deleted


# -- a run's state, saved and resumed ---------------------------------------------------------
#: JSON holds no infinity: the plateau's ``best`` before the first epoch is saved as this.
_JSON_INFINITY = 1e300


class ResumePoint(NamedTuple):
    save: SaveInfo
    weights: ReleasedWeights
    state: dict
    stream_arrays: dict


def read_resume_point(output_dir, dataset, dataset_path) -> ResumePoint:
    """The newest save of ``output_dir``, read for a resume of a run on ``dataset`` (its GO terms
    must be the save's)."""
    save = latest_save(output_dir)
    if save is None:
        raise InputError(f"--resume: no save found in {output_dir}")
    point = ResumePoint(save, *read_save(save))
    if point.state["annotations"] != dataset.annotations:
        raise InputError(
            f"{dataset_path}: its {dataset.n_annotations} GO terms differ from the "
            f"{len(point.state['annotations'])} of the save {save.path}; resume needs the same dataset"
        )
    return point


def require_no_saves(output_dir) -> None:
    """Refuse a new run in a directory that holds saves (continuing them is ``resume=True``)."""
    if list_saves(output_dir):
        raise InputError(
            f"{output_dir} already holds saves; pass resume=True (--resume) to continue, "
            "or choose another output directory"
        )


def saved_architecture(state: dict) -> dict:
    """The backbone arguments of a save (its GO terms and the vocabulary aside)."""
    return {k: v for k, v in state["architecture"].items() if k in ARCHITECTURE_KEYS}


def resumed_settings(state: dict, settings, architecture: dict):
    """``(settings, architecture)`` a resumed run continues with: the save's architecture, data
    settings and steps per epoch (the model and the batch schedule must not change), the rest
    of ``settings`` as given."""
    if architecture and any(state["architecture"].get(k) != v for k, v in architecture.items()):
        logger.warning("resuming with the saved architecture %s (ignoring %s)", state["architecture"], architecture)
    data_settings = PretrainingDataSettings.from_dict(state["data"])
    if data_settings != settings.data:
        logger.info("resuming with the saved data settings (the schedule must not change)")
    if int(state["steps_per_epoch"]) != settings.steps_per_epoch:
        logger.warning("resuming with the saved steps_per_epoch=%s (ignoring %s)", state["steps_per_epoch"],
                       settings.steps_per_epoch)
    settings = replace(settings, data=data_settings, steps_per_epoch=int(state["steps_per_epoch"]))
    return settings, saved_architecture(state)


def training_state(trainer) -> dict:
    """The ``state.json`` of a save of ``trainer`` (a :class:`~.pretraining.Pretrainer`) as it is now."""
    best = trainer.plateau.best
    settings, dataset = trainer.settings, trainer.dataset
    return {
        "step": trainer.step, "epoch": trainer.epoch, "samples": trainer.samples,
        "learning_rate": trainer.lr,
        "plateau": {"best": best if math.isfinite(best) else _JSON_INFINITY, "wait": trainer.plateau.wait},
        "epoch_sums": trainer.epoch_sums, "history": trainer.history,
        "architecture": trainer.model.architecture, "dtype": settings.dtype,
        "data": settings.data.to_dict(), "seed": settings.seed,
        "steps_per_epoch": settings.steps_per_epoch,
        "dataset": {"path": dataset.path, "n_records": len(dataset),
                    "go_release": _text_attr(dataset.metadata.get("go_release"))},
        "annotations": dataset.annotations,
    }


def restore_training_state(trainer, state: dict) -> None:
    """Set ``trainer``'s counters, history, learning rate, plateau and epoch sums from a save's state."""
    trainer.step, trainer.samples = int(state["step"]), int(state["samples"])
    trainer.history = list(state["history"])
    trainer.plateau = PlateauState(float(state["plateau"]["best"]), int(state["plateau"]["wait"]))
    trainer.lr = float(state["learning_rate"])
    # Saves written before the accuracy split carry a single "accuracy" sum: dropped (it only
    # affects the epoch in progress's train accuracy, not the training itself).
    fresh = fresh_epoch_sums()
    trainer.epoch_sums = {**fresh, **{k: v for k, v in state["epoch_sums"].items() if k in fresh}}


def _text_attr(value) -> str | None:
    """An HDF5 string attribute as ``str`` (``None`` stays ``None``: 2021 files carry no metadata)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- LAMB state in the 2021 order --------------------------------------------------------------
def export_lamb_state(model, optimizer) -> list:
    """``[iterations (int64), first moments…, second moments…]`` in released weight order."""
    if not optimizer.built:
        return []
    from ..weights.released import released_variables

    moments, velocities = _moment_slots(optimizer, released_variables(model))
    return ([np.int64(optimizer.iterations.numpy())]
            + [np.asarray(m.numpy(), np.float32) for m in moments]
            + [np.asarray(v.numpy(), np.float32) for v in velocities])


def import_lamb_state(model, optimizer, arrays, source: str = "optimizer state") -> bool:
    """Set a built Keras ``Lamb``'s state from the 2021 list; ``False`` (and a warning) if it does not fit."""
    from ..weights.released import released_variables

    variables = released_variables(model)
    n = len(variables)
    arrays = list(arrays or [])
    if len(arrays) != 1 + 2 * n:
        if arrays:
            logger.warning("%s: %d optimizer arrays, expected %d (1 + 2 × %d weights); starting the "
                           "optimizer afresh", source, len(arrays), 1 + 2 * n, n)
        return False
    bad = [f"{v.path} {tuple(v.shape)} vs {tuple(np.shape(a))}"
           for v, a in zip(variables * 2, arrays[1:]) if tuple(np.shape(a)) != tuple(v.shape)]
    if bad:
        logger.warning("%s: optimizer moments do not fit (%s); starting the optimizer afresh", source,
                       "; ".join(bad[:3]))
        return False
    optimizer.iterations.assign(int(np.asarray(arrays[0])))
    moments, velocities = _moment_slots(optimizer, variables)
    for slot, value in zip(moments + velocities, arrays[1:]):
        slot.assign(np.asarray(value, np.float32))
    return True


def _moment_slots(optimizer, variables) -> tuple[list, list]:
    """The first- and second-moment slots of ``variables`` in a built Keras Adam/Lamb, found by the
    names Keras gives them (``<variable path, '/' as '_'>_momentum`` / ``_velocity``, the names its
    own saves store) rather than through the optimizer's private lists."""
    slots = {v.name: v for v in optimizer.variables}
    stems = [v.path.replace("/", "_") for v in variables]
    missing = [f"{stem}_{kind}" for stem in stems for kind in ("momentum", "velocity")
               if f"{stem}_{kind}" not in slots]
    if missing:
        raise WeightsError(f"the optimizer {optimizer.name} has no slot {missing[0]} (and {len(missing) - 1} more "
                           "missing): this Keras version names its optimizer variables differently")
    return [slots[f"{stem}_momentum"] for stem in stems], [slots[f"{stem}_velocity"] for stem in stems]
