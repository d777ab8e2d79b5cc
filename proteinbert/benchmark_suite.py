"""The ProteinBERT benchmark suite: fine-tune and evaluate on every benchmark present, next to the paper.

Benchmarks (the CSVs of the ProteinBERT benchmark release, in one folder; paper numbers with the
released weights and, in brackets, without pretraining):

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

Beside each score, ``baseline`` is what a prediction that ignores the sequence scores on the same
test split (AUC 0.5, Spearman 0, or the accuracy of the training split's most frequent class: 0.03
on remote homology, 0.30 on fold classes).

Deviations, stated in the table's ``note`` column: where no validation split exists, 10 % of the
training split (seeded) is held out for early stopping; secondary structure and disorder are
trained on their *valid* split (the train files are missing); fluorescence has only its valid
split, which is split 80/10/10 into train/valid/test here (not comparable to the paper's test
set); major PTMs (PhosphositePTM) are missing and listed as not run.

``small`` settings (CI): a seeded subsample of each split, cropped to 126 residues (an explicit
crop, small setting only) and 1 epoch per stage;
``full``: all records and the 2021 schedule.

Resumable per benchmark: with ``out_prefix``, :func:`run_suite` rewrites ``<prefix>.csv``/``.md``
atomically after each benchmark, and a later call with the same settings (for a start from
weights, the same file content, not only the same name) keeps the finished rows (status ``ok``)
and runs only the rest (``redo=True`` runs them again). So a long suite can run in parts, even on
different machines: each row records its seed, wall time (with the fine-tuning of
every part it took) and machine, and ``<prefix>.json`` lists every part's command, machine and
package versions. Rows of benchmarks not selected this time are kept too; rows made with other
settings are refused, not mixed in.
Within a benchmark, the fine-tuning is saved after every epoch in ``<prefix>.checkpoints/`` and
a stopped run continues from its last epoch (see :func:`checkpoints_path`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

# Re-exported: the tables and the machine description lived here before they got modules of their own.
from .benchmark_tables import (
    COLUMNS, check_table_paths, checkpoints_path, read_results, sidecar_path, table_paths, to_markdown, write_tables,
)
from .benchmark_splits import baseline, draw_splits, missing_files, split_paths
from .data.streams import file_sha256
from .errors import InputError
from .presets import preset
from .provenance import cpu_model, machine_summary, package_versions
from .training.baselines import constant_baseline
from .training.evaluation import evaluate_by_len
from .training.finetuning import DEFAULT_STAGES, FinetuneConfig, Stage, finetune_from_backbone
from .training.jobs import starting_backbone
from .weights.locate import resolve_weights, weights_file

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

TINY_ARCHITECTURE = preset("tiny")


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
    # Seeds everything a run draws: the splits and subsamples, the initial weights (from scratch)
    # and the head's, dropout, and the batch order (it replaces ``config.seed``).
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


def selected(settings: SuiteSettings) -> list[Benchmark]:
    if not settings.benchmarks:
        return list(BENCHMARKS)
    names = {b.name: b for b in BENCHMARKS} | {b.dataset: b for b in BENCHMARKS}
    unknown = [x for x in settings.benchmarks if x not in names]
    if unknown:
        raise InputError(f"unknown benchmark(s) {unknown}; known: {[b.name for b in BENCHMARKS]}")
    return [names[x] for x in settings.benchmarks]


def run_benchmark(bench: Benchmark, settings: SuiteSettings, checkpoint_dir=None, digest: str | None = None) -> dict:
    """Fine-tune and evaluate one benchmark; returns one table row. With ``checkpoint_dir`` the
    fine-tuning is saved there after every epoch, and a run saved there is continued. ``digest``:
    :func:`settings_digest` of ``settings``, if the caller has it (it reads the whole weights file)."""
    started = time.perf_counter()
    row = dict(benchmark=bench.name,
               metric={"binary": "AUC", "categorical": "accuracy", "numeric": "Spearman"}[bench.task],
               score=float("nan"), paper_no_pretraining=bench.paper_no_pretraining, paper=bench.paper,
               baseline=float("nan"), dataset=bench.dataset, output=f"{bench.level} {bench.task}", n_train=0,
               n_valid=0, n_test=0, seed=settings.seed, wall_s=0.0, start=start_label(settings),
               machine=machine_summary(), status="ok", note=bench.note,
               settings=digest or settings_digest(settings))
    drawn = draw_splits(bench, settings)
    if drawn is None:
        row["status"] = "not run: missing " + ", ".join(missing_files(settings.data_dir, bench))
        return row
    train, valid, test, spec, dropped = drawn
    if dropped:
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"{dropped} test records of unseen classes left out"
    row["baseline"] = constant_baseline(spec, train.seqs, train.labels, test.seqs, test.labels)
    import keras  # here, not at the top: TensorFlow starts only when a benchmark runs

    keras.utils.set_random_seed(settings.seed)
    backbone = starting_backbone(settings.weights, settings.architecture)
    config = replace(settings.config, seed=settings.seed, checkpoint_dir=checkpoint_dir)
    tuning = time.perf_counter()
    model = finetune_from_backbone(backbone, spec, train.seqs, train.labels, valid.seqs, valid.labels,
                                   config=config, hidden_layers=settings.hidden_layers,
                                   train_row_ids=train.row_ids, valid_row_ids=valid.row_ids)
    tuning = time.perf_counter() - tuning
    evaluation = evaluate_by_len(model, test.seqs, test.labels, row_ids=test.row_ids,
                                 crop_len=settings.config.crop_len)
    row.update(score=evaluation.overall, n_train=len(train), n_valid=len(valid), n_test=len(test),
               wall_s=round(time.perf_counter() - started + _earlier_parts_s(model, tuning), 1))
    logger.info("%s: %s %.4f (paper: %s pretrained, %s without pretraining)", bench.name, row["metric"],
                row["score"], bench.paper, bench.paper_no_pretraining)
    return row


def _earlier_parts_s(model, tuning_s: float) -> float:
    """The fine-tuning time spent before this process continued a saved run: the stages' wall
    times (which cover every part) minus this part's fine-tuning; 0 for a run in one part."""
    stages_s = sum(stage["wall_s"] for stage in model.metadata.get("stages", ()))
    return max(0.0, stages_s - tuning_s)


def input_files(settings: SuiteSettings) -> dict:
    """The files the selected benchmarks read, by name (and the weights), for the output check."""
    files = {}
    for bench in selected(settings):
        for path in split_paths(settings.data_dir, bench):
            if path is not None and path.is_file():
                files[f"benchmark file {path.name} in"] = path
    if settings.weights:
        files["--weights"] = Path(settings.weights)
    return files


def runnable(settings: SuiteSettings) -> list[Benchmark]:
    """Selected benchmarks whose files are all present; InputError if the data folder is missing."""
    data_dir = Path(settings.data_dir)
    if not data_dir.is_dir():
        raise InputError(f"benchmark data folder {data_dir} does not exist or is not a directory (--data-dir)")
    return [b for b in selected(settings) if not missing_files(data_dir, b)]


def check_runnable(settings: SuiteSettings) -> None:
    """InputError unless the data folder exists and one of the selected benchmarks has its files."""
    if not runnable(settings):
        chosen = selected(settings)
        expected = ", ".join(f"{b.dataset}.{b.train_split}.csv" for b in chosen[:3])
        raise InputError(f"nothing to run: none of the {len(chosen)} selected benchmark(s) has its files in "
                         f"{settings.data_dir} (expected e.g. {expected})")


def start_label(settings: SuiteSettings) -> str:
    return Path(settings.weights).name if settings.weights else "from scratch"


def settings_digest(settings: SuiteSettings) -> str:
    """A short hash of everything that changes a result (not the data folder, not verbosity): a
    finished row is reused only by a run with the same digest."""
    config = asdict(settings.config)
    # Verbosity and where a run is saved change nothing; settings.seed replaces config.seed.
    for key in ("verbose", "checkpoint_dir", "seed"):
        config.pop(key, None)
    payload = dict(start=start_label(settings), architecture=settings.architecture, max_train=settings.max_train,
                   max_eval=settings.max_eval, config=config, hidden_layers=settings.hidden_layers,
                   seed=settings.seed)
    if settings.weights:
        # The file's content, not only its name: other weights saved under the same name are
        # another start (from scratch, the key is absent, so those digests stay as they were).
        payload["weights_sha256"] = file_sha256(weights_file(resolve_weights(settings.weights)))
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _add_missing_baselines(rows: dict, settings: SuiteSettings) -> list[str]:
    """Give finished rows of tables written before the ``baseline`` column theirs (it depends on
    the data and the seed only); the names of the rows given one."""
    known = {b.name: b for b in BENCHMARKS}
    filled = []
    for name, row in rows.items():
        if pd.isna(row.get("baseline")) and row["status"] == "ok" and name in known:
            row["baseline"] = baseline(known[name], settings)
            filled.append(name)
    if filled:
        logger.info("baseline column added to the rows of %s", ", ".join(filled))
    return filled


def _ordered(rows: dict) -> pd.DataFrame:
    order = {b.name: i for i, b in enumerate(BENCHMARKS)}
    frame = pd.DataFrame(sorted(rows.values(), key=lambda r: order.get(r["benchmark"], len(order))))
    return frame[[c for c in COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in COLUMNS]]


def run_suite(settings: SuiteSettings, out_prefix=None, redo: bool = False, command=None,
              inputs=()) -> pd.DataFrame:
    """Run every selected benchmark; one row each (benchmarks whose data are missing say so).

    With ``out_prefix`` the tables are rewritten after each benchmark (see :func:`write_tables`;
    never onto one of ``inputs``), the finished rows of an earlier run with the same settings are
    kept and not run again (unless ``redo``), and this run (``command``, machine, versions) is
    recorded in ``<prefix>.json``.

    Raises :class:`~proteinbert.errors.InputError` if the data folder is missing or none of the
    selected benchmarks has its files: a table of nothing but "not run" rows is not a result; and
    if ``<prefix>.csv`` holds rows made with other settings that this run would keep.
    """
    check_runnable(settings)
    chosen = selected(settings)
    digest = settings_digest(settings)
    rows: dict = {}
    if out_prefix is not None:
        csv_path = table_paths(out_prefix)[0]
        previous = read_results(csv_path)
        names = {b.name for b in chosen}
        for row in [] if previous is None else previous.to_dict(orient="records"):
            if row["benchmark"] in names and (redo or row["status"] != "ok"):
                continue  # run again
            if row["settings"] != digest:
                raise InputError(
                    f"{csv_path} holds a row for {row['benchmark']!r} made with other settings "
                    f"({row['settings']}; this run: {digest}); write to another output prefix, or run that "
                    "benchmark again with the same prefix and --redo")
            rows[row["benchmark"]] = row
    kept = set(rows)
    filled = _add_missing_baselines(rows, settings)
    run = {"command": list(command) if command is not None else None, "machine": machine_summary(),
           "versions": package_versions(), "settings": digest, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "benchmarks": []}
    for bench in chosen:
        if bench.name in kept:
            logger.info("%s: finished earlier (%s %s), kept; --redo runs it again", bench.name,
                        rows[bench.name]["metric"], rows[bench.name]["score"])
            continue
        saved = None if out_prefix is None else checkpoints_path(out_prefix) / bench.dataset
        rows[bench.name] = run_benchmark(bench, settings, checkpoint_dir=saved, digest=digest)
        run["benchmarks"].append(bench.name)
        run["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if out_prefix is not None:
            write_tables(_ordered(rows), out_prefix, inputs, run=run)
            shutil.rmtree(saved, ignore_errors=True)  # the row is written: the epochs saved are done with
            with contextlib.suppress(OSError):
                checkpoints_path(out_prefix).rmdir()  # once empty
    if out_prefix is not None and not run["benchmarks"]:
        logger.info("every selected benchmark was finished earlier in %s", table_paths(out_prefix)[0])
        if filled:
            write_tables(_ordered(rows), out_prefix, inputs)
    return _ordered(rows)


__all__ = ["BENCHMARKS", "COLUMNS", "Benchmark", "SuiteSettings", "baseline", "check_runnable",
           "check_table_paths", "checkpoints_path", "cpu_model", "input_files", "machine_summary", "read_results",
           "run_benchmark", "run_suite", "runnable", "settings_digest", "sidecar_path", "table_paths", "to_markdown",
           "write_tables"]
