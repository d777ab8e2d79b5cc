"""What a pretraining run is given and what it returns: settings, result, the plateau rule.

No TensorFlow here: the CLI and the saves use these before it starts.

>>> PretrainingSettings(output_dir="run").learning_rate
0.0002
>>> check_architecture({"d_seq": 32})
{'d_seq': 32}
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from .. import presets
from ..data.pretraining_batches import PretrainingDataSettings
from ..errors import InputError

logger = logging.getLogger(__name__)

#: Architecture keys a caller may set (the rest of ``ProteinBertBackbone``'s arguments).
# (the dataset fixes the other two: its GO terms and the token vocabulary)
ARCHITECTURE_KEYS = tuple(k for k in presets.ARCHITECTURE_KEYS if k not in ("n_annotations", "vocab_size"))


def check_architecture(architecture: dict | None) -> dict:
    """``architecture`` as a dict (``{}`` for ``None``); refuses keys outside :data:`ARCHITECTURE_KEYS`."""
    architecture = dict(architecture or {})
    unknown = sorted(set(architecture) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InputError(f"unknown architecture keys {unknown}; allowed: {', '.join(ARCHITECTURE_KEYS)}")
    return architecture


def check_replicas(data: PretrainingDataSettings, n_replicas: int) -> None:
    """Refuse episodes whose global batch the replicas cannot share equally."""
    for L, b in data.episodes:
        if b % n_replicas:
            raise InputError(f"batch size {b} of episode ({L}, {b}) is not a multiple of the {n_replicas} replicas")


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


# -- the plateau rule (kept in the save, so a resumed run decides as the uninterrupted one) -----
@dataclass
class PlateauState:
    """Keras ``ReduceLROnPlateau`` state.

    >>> s = PretrainingSettings(output_dir="run", plateau_patience=2)
    >>> plateau = PlateauState()
    >>> [plateau.update(loss, 1e-3, s) for loss in (1.0, 1.0, 1.0)]
    [0.001, 0.001, 0.0008]
    """

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
