"""The ProteinBERT benchmark suite: fine-tune and evaluate on every benchmark present, next to the paper.

Benchmarks (``../shared/data/protein_benchmarks``; paper numbers from SPEC §7, with the released
weights and, in brackets, without pretraining):

========================  =====================================  ===========  ==================
benchmark                 files                                  output       paper
========================  =====================================  ===========  ==================
signal peptide            signalP_binary (train, test)            global bin.  AUC 0.996 (0.991)
neuropeptide cleavage     ProFET_NP_SP_Cleaved (train/valid/test) global bin.  AUC 0.978 (0.940)
remote homology           remote_homology (train/valid/test)      global cat.  acc 0.219 (0.063)
fold classes              scop (train, test)                      global cat.  acc 0.884 (0.593)
stability                 stability (train/valid/test)            global num.  ρ 0.762 (0.634)
secondary structure       secondary_structure (valid, test)       local cat.   acc 0.740 (0.704)
disorder                  disorder_secondary_structure (v, t)     local bin.   AUC 0.870 (0.862)
fluorescence              fluorescence (valid only)               global num.  ρ 0.663 (0.647)
========================  =====================================  ===========  ==================

Deviations, stated in the table's ``note`` column: where no validation split exists, 10 % of the
training split (seeded) is held out for early stopping; secondary structure and disorder are
trained on their *valid* split (the train files are missing); fluorescence has only its valid
split, which is split 80/10/10 into train/valid/test here (not comparable to the paper's test
set); major PTMs (PhosphositePTM) are missing and listed as not run.

``small`` settings (CI): a seeded subsample of each split, cropped to 126 residues (an explicit
crop, small setting only) and 1 epoch per stage;
``full``: all records and the 2021 schedule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data.labelled import read_labelled
from .errors import InputError
from .io_utils import atomic_write_path
from .training.evaluation import evaluate_by_len
from .training.finetuning import DEFAULT_STAGES, FinetuneConfig, OutputSpec, Stage, finetune_from_backbone
from .training.jobs import load_backbone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str
    level: str
    task: str
    train_split: str
    valid_split: str | None
    test_split: str | None
    paper: float | None
    paper_no_pretraining: float | None
    note: str = ""


BENCHMARKS = (
    Benchmark("signal peptide", "signalP_binary", "global", "binary", "train", None, "test", 0.996, 0.991,
              "no valid split upstream: 10% of train held out"),
    Benchmark("neuropeptide cleavage", "ProFET_NP_SP_Cleaved", "global", "binary", "train", "valid", "test",
              0.978, 0.940),
    Benchmark("remote homology", "remote_homology", "global", "categorical", "train", "valid", "test", 0.219, 0.063),
    Benchmark("fold classes", "scop", "global", "categorical", "train", None, "test", 0.884, 0.593,
              "no valid split upstream: 10% of train held out"),
    Benchmark("stability", "stability", "global", "numeric", "train", "valid", "test", 0.762, 0.634),
    Benchmark("secondary structure", "secondary_structure", "local", "categorical", "valid", None, "test",
              0.740, 0.704, "deviation: trained on the valid split (train file missing); 10% of it held out"),
    Benchmark("disorder", "disorder_secondary_structure", "local", "binary", "valid", None, "test", 0.870, 0.862,
              "deviation: trained on the valid split (train file missing); 10% of it held out"),
    Benchmark("fluorescence", "fluorescence", "global", "numeric", "valid", None, None, 0.663, 0.647,
              "deviation: only the valid split exists; split 80/10/10 into train/valid/test (not comparable)"),
    Benchmark("major PTMs", "PhosphositePTM", "local", "binary", "train", "valid", "test", 0.948, None,
              "data missing (Git LFS object never published in a snapshot)"),
)

TINY_ARCHITECTURE = dict(n_annotations=16, d_seq=16, d_global=32, n_blocks=2, n_heads=2, d_key=8)


@dataclass(frozen=True)
class SuiteSettings:
    """What to run. ``weights``: released-format ``.pkl`` (2021 or our checkpoints) / ``.keras``; None = scratch."""

    data_dir: str
    weights: str | None = None
    architecture: dict = field(default_factory=dict)  # from scratch only
    benchmarks: tuple = ()  # names or dataset names; () = all present
    max_train: int | None = None
    max_eval: int | None = None
    config: FinetuneConfig = FinetuneConfig()
    hidden_layers: str = "all"
    seed: int = 0

    @classmethod
    def small(cls, data_dir, weights=None, **overrides) -> "SuiteSettings":
        """CI settings: ≤ 48 training and ≤ 24 evaluation records cropped to 126 residues, 1 epoch per
        stage (eager: cheaper than tracing for so few batches), a tiny model when from scratch."""
        stages = (Stage("frozen", 1e-2, 1, False, 128, 16), Stage("unfrozen", 1e-3, 1, True, 128, 16))
        base = dict(data_dir=str(data_dir), weights=weights, max_train=48, max_eval=24,
                    config=FinetuneConfig(stages=stages, run_eagerly=True, crop_len=126),
                    architecture={} if weights else dict(TINY_ARCHITECTURE), hidden_layers="last")
        base.update(overrides)
        return cls(**base)

    @classmethod
    def full(cls, data_dir, weights=None, **overrides) -> "SuiteSettings":
        """All records and the 2021 schedule (released architecture when from scratch)."""
        base = dict(data_dir=str(data_dir), weights=weights, config=FinetuneConfig(stages=DEFAULT_STAGES))
        base.update(overrides)
        return cls(**base)


def _path(data_dir: Path, bench: Benchmark, split: str | None) -> Path | None:
    return None if split is None else data_dir / f"{bench.dataset}.{split}.csv"


def _subsample(records, n: int | None, rng: np.random.Generator):
    if n is None or len(records) <= n:
        return records
    keep = np.sort(rng.choice(len(records), size=n, replace=False))
    return _take(records, keep)


def _take(records, idx):
    from .data.labelled import LabelledRecords

    idx = list(idx)
    return LabelledRecords(tuple(records.ids[i] for i in idx), tuple(records.seqs[i] for i in idx),
                           tuple(records.labels[i] for i in idx), tuple(records.row_ids[i] for i in idx))


def _split(records, fractions, rng):
    order = rng.permutation(len(records))
    cuts = np.cumsum([int(round(f * len(records))) for f in fractions[:-1]])
    return [_take(records, np.sort(part)) for part in np.split(order, cuts)]


def _keep_known(records, spec: OutputSpec, what: str):
    """Small subsamples can miss categories: drop (and count) evaluation records of unseen classes."""
    if spec.task != "categorical" or spec.level != "global":
        return records, 0
    known = set(spec.labels)
    from .training.finetuning import _as_label_str

    idx = [i for i, y in enumerate(records.labels) if _as_label_str(y) in known]
    dropped = len(records) - len(idx)
    if dropped:
        logger.warning("%s: %d record(s) of categories not in the training subsample left out", what, dropped)
    return _take(records, idx), dropped


def selected(settings: SuiteSettings) -> list[Benchmark]:
    if not settings.benchmarks:
        return list(BENCHMARKS)
    names = {b.name: b for b in BENCHMARKS} | {b.dataset: b for b in BENCHMARKS}
    unknown = [x for x in settings.benchmarks if x not in names]
    if unknown:
        raise InputError(f"unknown benchmark(s) {unknown}; known: {[b.name for b in BENCHMARKS]}")
    return [names[x] for x in settings.benchmarks]


def run_benchmark(bench: Benchmark, settings: SuiteSettings) -> dict:
    """Fine-tune and evaluate one benchmark; returns one table row."""
    data_dir = Path(settings.data_dir)
    row = dict(benchmark=bench.name, dataset=bench.dataset, output=f"{bench.level} {bench.task}",
               metric={"binary": "AUC", "categorical": "accuracy", "numeric": "Spearman"}[bench.task],
               score=float("nan"), paper=bench.paper, paper_no_pretraining=bench.paper_no_pretraining,
               n_train=0, n_valid=0, n_test=0, wall_s=0.0, status="ok", note=bench.note)
    paths = [_path(data_dir, bench, s) for s in (bench.train_split, bench.valid_split, bench.test_split)]
    missing = [str(p) for p in paths if p is not None and not p.is_file()]
    if missing:
        row["status"] = "not run: missing " + ", ".join(Path(m).name for m in missing)
        return row
    rng = np.random.default_rng(settings.seed)
    train = read_labelled(paths[0])
    valid = read_labelled(paths[1]) if paths[1] else None
    test = read_labelled(paths[2]) if paths[2] else None
    if test is None:
        train, valid, test = _split(train, (0.8, 0.1, 0.1), rng)
    elif valid is None:
        valid, train = _split(train, (0.1, 0.9), rng)
    train = _subsample(train, settings.max_train, rng)
    valid = _subsample(valid, settings.max_eval, rng)
    test = _subsample(test, settings.max_eval, rng)
    spec = OutputSpec.from_labels(bench.level, bench.task, train.labels)
    valid, _ = _keep_known(valid, spec, f"{bench.name} valid")
    test, dropped = _keep_known(test, spec, f"{bench.name} test")
    if dropped:
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"{dropped} test records of unseen classes left out"
    start = time.perf_counter()
    backbone = load_backbone(settings.weights, settings.architecture)
    model = finetune_from_backbone(backbone, spec, train.seqs, train.labels, valid.seqs, valid.labels,
                                   config=settings.config, hidden_layers=settings.hidden_layers,
                                   train_row_ids=train.row_ids, valid_row_ids=valid.row_ids)
    evaluation = evaluate_by_len(model, test.seqs, test.labels, row_ids=test.row_ids,
                                 crop_len=settings.config.crop_len)
    row.update(score=evaluation.overall, n_train=len(train), n_valid=len(valid), n_test=len(test),
               wall_s=round(time.perf_counter() - start, 1))
    logger.info("%s: %s %.4f (paper %s)", bench.name, row["metric"], row["score"], bench.paper)
    return row


def run_suite(settings: SuiteSettings) -> pd.DataFrame:
    """Run every selected benchmark; one row each (benchmarks whose data are missing say so)."""
    rows = [run_benchmark(b, settings) for b in selected(settings)]
    frame = pd.DataFrame(rows)
    frame["start"] = (Path(settings.weights).name if settings.weights else "from scratch")
    return frame


def to_markdown(frame: pd.DataFrame) -> str:
    """The table as GitHub Markdown (no extra dependency)."""
    cols = ["benchmark", "output", "metric", "score", "paper", "paper_no_pretraining", "n_train", "n_test",
            "wall_s", "start", "status", "note"]
    cols = [c for c in cols if c in frame.columns]

    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in frame.iterrows()]
    return "\n".join(lines) + "\n"


def write_tables(frame: pd.DataFrame, out_prefix) -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.md`` atomically."""
    out_prefix = Path(out_prefix)
    csv_path, md_path = out_prefix.with_suffix(".csv"), out_prefix.with_suffix(".md")
    with atomic_write_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_write_path(md_path) as tmp:
        Path(tmp).write_text(to_markdown(frame))
    return csv_path, md_path


__all__ = ["BENCHMARKS", "Benchmark", "SuiteSettings", "run_benchmark", "run_suite", "to_markdown", "write_tables"]
