"""What the notebooks read and where they write: environment variables, with defaults inside the repository.

==============================  ==============================================================================
variable                        meaning (default)
==============================  ==============================================================================
``PROTEINBERT_NOTEBOOK_SMALL``  ``1``: small settings, a few CPU minutes (default: the full settings)
``PROTEINBERT_NOTEBOOK_OUT``    folder for plots, tables and models (default: ``outputs/notebooks/`` in the
                                repository, which git ignores)
``PROTEINBERT_WEIGHTS``         pretrained weights, found by :func:`proteinbert.weights.resolve_weights`
                                (default: ``~/proteinbert_models/epoch_92400_sample_23500000.pkl``; if neither
                                exists, a randomly initialised model, whose scores mean nothing)
``PROTEINBERT_BENCHMARKS``      folder of the ProteinBERT benchmark CSVs (``signalP_binary.train.csv``, ...);
                                unset: the notebooks use the bundled ``data/`` sample instead (is a protein
                                annotated with GO:0016020, membrane?)
==============================  ==============================================================================

A variable that is set but names nothing is an error, not a silent fallback. The notebooks import
this module from their own folder; nothing here runs on import.

>>> inputs = inputs_from_environment({})
>>> inputs.small, inputs.benchmarks, inputs.out == REPO / "outputs" / "notebooks"
(False, None, True)
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proteinbert.cli.benchmark_suite import DATA_ENV as BENCHMARKS_ENV
from proteinbert.errors import InputError
from proteinbert.io_utils import atomic_write_path
from proteinbert.weights.locate import (
    DEFAULT_WEIGHTS_DIR, RELEASED_WEIGHTS_FILE, WEIGHTS_ENV_VAR, default_weights_path, resolve_weights,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SMALL_ENV = "PROTEINBERT_NOTEBOOK_SMALL"
OUT_ENV = "PROTEINBERT_NOTEBOOK_OUT"
DEFAULT_OUT = REPO / "outputs" / "notebooks"

#: The bundled task: GO term, and the files it is derived from (see proteinbert.pipeline.membrane_task).
MEMBRANE_FILES = dict(fasta=DATA / "sp2014_go.2k.fasta.gz", go_tsv=DATA / "sp2014_go.2k.go.tsv.gz",
                      go_obo=DATA / "go-2019-01-27.obo.gz")


@dataclass(frozen=True)
class NotebookInputs:
    small: bool
    out: Path
    weights: Path | None  # None: no pretrained weights found; a randomly initialised model
    benchmarks: Path | None  # None: the bundled data/ sample instead of the benchmark CSVs
    weights_source: str = ""  # where the weights were found: "$PROTEINBERT_WEIGHTS" or "the default location"

    def describe(self) -> str:
        """Which settings, weights and data a run uses, for the first output of each notebook."""
        if self.weights is None:
            weights = (f"none (${WEIGHTS_ENV_VAR} unset, {DEFAULT_WEIGHTS_DIR}/{RELEASED_WEIGHTS_FILE} absent): a randomly "
                       "initialised model; its scores mean nothing beyond showing that the code runs")
        else:
            weights = f"{self.weights.name} ({self.weights_source}; {self.weights.stat().st_size / 1e6:.1f} MB)"
        if self.benchmarks is None:
            data = (f"the bundled sample data/{MEMBRANE_FILES['fasta'].name} with its GO annotations "
                    f"(${BENCHMARKS_ENV} unset: no benchmark CSVs)")
        else:
            data = f"the benchmark CSVs in ${BENCHMARKS_ENV} ({len(list(self.benchmarks.glob('*.csv')))} files)"
        return "\n".join([f"settings: {'small (quick run)' if self.small else 'full'}", f"weights:  {weights}",
                          f"data:     {data}", f"outputs:  {_shown(self.out)}"])


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (stored outputs name no local folders)."""
    try:
        return path.resolve().relative_to(REPO).as_posix() + "/"
    except ValueError:
        return str(path)


def inputs_from_environment(environ=None) -> NotebookInputs:
    """The notebooks' inputs from ``environ`` (default: ``os.environ``); see the module docstring."""
    environ = os.environ if environ is None else environ
    weights, weights_source = None, ""
    if environ.get(WEIGHTS_ENV_VAR):
        weights, weights_source = resolve_weights(environ[WEIGHTS_ENV_VAR]), f"${WEIGHTS_ENV_VAR}"
    elif default_weights_path().exists():
        weights, weights_source = resolve_weights(default_weights_path()), "the default location"
    benchmarks = environ.get(BENCHMARKS_ENV) or None
    if benchmarks is not None:
        benchmarks = Path(benchmarks).expanduser()
        if not benchmarks.is_dir():
            raise InputError(f"${BENCHMARKS_ENV}={environ[BENCHMARKS_ENV]!r} is not a folder; unset it to use the "
                             "bundled data/ sample, or point it at the folder of the benchmark CSVs")
    out = Path(environ.get(OUT_ENV) or DEFAULT_OUT).expanduser()
    return NotebookInputs(small=environ.get(SMALL_ENV) == "1", out=out, weights=weights,
                          weights_source=weights_source, benchmarks=benchmarks)


def describe_model(backbone, weights: Path | None) -> str:
    """One line saying what the model is, so that nobody mistakes a test model's scores for the paper's."""
    from proteinbert.model import RELEASED_CONFIG

    arch = backbone.architecture
    sizes = ", ".join(f"{k}={arch[k]}" for k in ("d_seq", "d_global", "n_blocks", "n_heads", "d_key"))
    released = all(arch.get(k) == v for k, v in RELEASED_CONFIG.items())
    if weights is None:
        return f"model: randomly initialised ({sizes}); its scores mean nothing"
    if released and weights.name == RELEASED_WEIGHTS_FILE:
        return f"model: the released ProteinBERT ({weights.name}; {sizes})"
    return (f"model: {weights.name}, a model in the released format but NOT the released ProteinBERT "
            f"({sizes}; the released one has d_seq={RELEASED_CONFIG['d_seq']}, "
            f"n_blocks={RELEASED_CONFIG['n_blocks']}): its scores are not the paper's")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def membrane_csvs(inputs: NotebookInputs, seed: int = 0) -> Path:
    """Write the bundled membrane task (GO:0016020 or not) as ``membrane.{train,valid,test}.csv``
    (columns ``label,seq``, the benchmark CSVs' layout) under ``inputs.out``; return their folder.

    The labels are those of :func:`proteinbert.pipeline.membrane_task`: a pretraining dataset is built
    from the bundled FASTA, GO table and ontology (annotations propagated to their ancestors), and
    the test set is its last 400 proteins.
    """
    with warnings.catch_warnings():
        # tqdm.auto warns in Jupyter without ipywidgets; no progress bar is drawn here anyway.
        warnings.simplefilter("ignore")
        from proteinbert.data.dataset_builder import DatasetSettings, build_dataset
    from proteinbert.pipeline import PipelineSettings, membrane_task

    folder = inputs.out / "membrane_task"
    with tempfile.TemporaryDirectory(prefix="membrane_task.") as scratch:
        settings = PipelineSettings(output_dir=Path(scratch), seed=seed, **MEMBRANE_FILES)
        build_dataset(DatasetSettings(output=settings.dataset_path, go_obo=settings.go_obo, input_kind="fasta_tsv",
                                      fasta=settings.fasta, go_tsv=settings.go_tsv, progress=False,
                                      min_records_per_term=settings.min_records_per_term, seed=seed))
        task = membrane_task(settings)
    for split in ("train", "valid", "test"):
        frame = pd.DataFrame({"label": getattr(task, f"{split}_labels"), "seq": getattr(task, f"{split}_seqs")})
        _write_csv(frame, folder / f"membrane.{split}.csv")
    return folder


@dataclass(frozen=True)
class BinaryTask:
    """A global binary task: three DataFrames with columns ``label`` (0/1) and ``seq``."""

    name: str
    description: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    paper_auc: float | None  # the paper's test AUC with the released weights, where there is one
    label_names: tuple = ("negative", "positive")  # what labels 0 and 1 mean

    def subsample(self, n_train: int, n_valid: int, n_test: int, seed: int = 0) -> "BinaryTask":
        """A seeded subsample of each split, stratified by label (small runs keep both classes)."""
        rng = np.random.default_rng(seed)

        def pick(frame, n):
            if len(frame) <= n:
                return frame
            parts = [g.iloc[rng.permutation(len(g))[: max(1, round(n * len(g) / len(frame)))]]
                     for _, g in frame.groupby("label")]
            return pd.concat(parts).sort_index()

        return BinaryTask(self.name, f"{self.description}; subsampled with seed {seed}", pick(self.train, n_train),
                          pick(self.valid, n_valid), pick(self.test, n_test), self.paper_auc, self.label_names)


def binary_task(inputs: NotebookInputs, seed: int = 0) -> BinaryTask:
    """Signal peptides (the SignalP benchmark) when the benchmark CSVs are there, else the bundled membrane task."""
    from proteinbert.benchmark_suite import BENCHMARKS

    def read(path):
        frame = pd.read_csv(path, dtype={"seq": str})
        if list(frame.columns) != ["label", "seq"]:
            raise InputError(f"{path}: expected the columns label,seq. Received: {list(frame.columns)}")
        return frame.assign(label=frame["label"].astype(int))

    if inputs.benchmarks is not None:
        bench = next(b for b in BENCHMARKS if b.dataset == "signalP_binary")
        train, test = read(inputs.benchmarks / "signalP_binary.train.csv"), read(inputs.benchmarks / "signalP_binary.test.csv")
        order = np.random.default_rng(seed).permutation(len(train))
        n_valid = len(train) // 10  # no valid split upstream: 10 % of train held out, as the benchmark suite does
        valid, train = train.iloc[np.sort(order[:n_valid])], train.iloc[np.sort(order[n_valid:])]
        return BinaryTask("signal peptide", "SignalP benchmark (signalP_binary.*.csv); valid = 10 % of train",
                          train, valid, test, bench.paper, ("no signal peptide", "signal peptide"))
    folder = membrane_csvs(inputs, seed)
    train, valid, test = (read(folder / f"membrane.{s}.csv") for s in ("train", "valid", "test"))
    return BinaryTask("membrane (GO:0016020)", f"bundled data/{MEMBRANE_FILES['fasta'].name}: annotated with "
                      "GO:0016020 (membrane, after propagation to ancestors) or not", train, valid, test, None,
                      ("not membrane", "membrane"))


def example_protein(min_length: int = 100, max_length: int = 300) -> tuple[str, str]:
    """(accession, sequence) of the first bundled protein whose length is in [min_length, max_length]."""
    from proteinbert.data.fasta import read_fasta

    for record in read_fasta(MEMBRANE_FILES["fasta"]):
        if min_length <= len(record.seq) <= max_length:
            return record.id, record.seq
    raise InputError(f"no protein of {min_length}–{max_length} residues in {MEMBRANE_FILES['fasta']}")
