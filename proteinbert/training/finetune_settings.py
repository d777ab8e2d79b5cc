"""Fine-tuning settings: the stages of a schedule (the 2021 one by default) and the run's options.

>>> [s.name for s in DEFAULT_STAGES], FinetuneConfig().padding
(['frozen', 'unfrozen', 'final'], 'fixed')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.batching import DEFAULT_PAD_LENGTH, check_padding
from ..errors import InputError


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
        check_padding(self.padding)
        for key in ("tensorboard_dir", "csv_log", "checkpoint_dir"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, str(getattr(self, key)))  # a Path too; stays JSON-friendly


@dataclass(frozen=True)
class StageResult:
    name: str
    epochs: int
    wall_s: float
    history: dict = field(default_factory=dict)


__all__ = ["DEFAULT_STAGES", "FinetuneConfig", "Stage", "StageResult", "default_stages", "parse_stage"]
