"""The main job's settings: its inputs, sizes, budgets and where each step's results go.

>>> PipelineSettings(redo=("all",)).redo
('dataset', 'pretrain', 'membrane', 'signalp', 'report')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..presets import PRESETS

STEPS = ("dataset", "pretrain", "membrane", "signalp", "report")
MEMBRANE = "GO:0016020"
#: The two models fine-tuned on every task: the pretrained one and the same architecture from scratch.
VARIANTS = ("pretrained", "scratch")


@dataclass(frozen=True)
class PipelineSettings:
    """Inputs, sizes and budgets of the main job (defaults: about 10 minutes on 2 CPU cores)."""

    output_dir: Path = Path("outputs")
    fasta: Path = Path("data/sp2014_go.2k.fasta.gz")
    go_tsv: Path = Path("data/sp2014_go.2k.go.tsv.gz")
    go_obo: Path = Path("data/go-2019-01-27.obo.gz")
    benchmarks_dir: Path | None = None  # the folder of the benchmark CSVs; None skips signalp
    go_term: str = MEMBRANE
    min_records_per_term: int = 50
    seed: int = 0
    # The "main-job" preset: the released architecture takes hours per epoch on 2 CPU cores.
    d_seq: int = PRESETS["main-job"]["d_seq"]
    d_global: int = PRESETS["main-job"]["d_global"]
    n_blocks: int = PRESETS["main-job"]["n_blocks"]
    n_heads: int = PRESETS["main-job"]["n_heads"]
    d_key: int = PRESETS["main-job"]["d_key"]
    episodes: tuple = ((128, 32), (512, 8))
    steps_per_episode: int = 20
    steps_per_epoch: int = 20
    pretrain_epochs: int = 12
    pretrain_lr: float = 1e-3
    holdout_records: int = 400
    finetune_epochs: int = 3  # per stage (early stopping may end a stage sooner)
    finetune_lr: float = 1e-4
    finetune_frozen_lr: float = 1e-2
    membrane_train_records: int | None = 800  # subsample the membrane training pool (None: all)
    signalp_train_records: int = 800
    signalp_test_records: int = 500
    jit_compile: bool = False
    redo: tuple = ()
    progress: bool = True  # progress bars of the dataset build and the pretraining

    def __post_init__(self):
        for name in ("output_dir", "fasta", "go_tsv", "go_obo"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.benchmarks_dir is not None:
            object.__setattr__(self, "benchmarks_dir", Path(self.benchmarks_dir))
        object.__setattr__(self, "episodes", tuple((int(L), int(b)) for L, b in self.episodes))
        redo = tuple(self.redo)
        unknown = [s for s in redo if s not in STEPS and s != "all"]
        if unknown:
            raise InputError(f"redo names unknown steps {unknown}; steps are {', '.join(STEPS)} (or 'all')")
        object.__setattr__(self, "redo", STEPS if "all" in redo else redo)
        for name in ("pretrain_epochs", "finetune_epochs", "holdout_records"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0. Received: {name}={getattr(self, name)!r}")

    @property
    def architecture(self) -> dict:
        return dict(d_seq=self.d_seq, d_global=self.d_global, n_blocks=self.n_blocks, n_heads=self.n_heads,
                    d_key=self.d_key)

    # Where each step's results go.
    @property
    def dataset_path(self) -> Path:
        return self.output_dir / "dataset.h5"

    @property
    def pretrain_dir(self) -> Path:
        return self.output_dir / "pretrain"

    def task_dir(self, task: str) -> Path:
        return self.output_dir / task

    def roc_path(self, task: str, variant: str) -> Path:
        """A fine-tuned ``variant``'s test probabilities and labels (the report's ROC curves)."""
        return self.task_dir(task) / f"roc_{variant}.npz"
