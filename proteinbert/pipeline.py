"""The main job, end to end: dataset -> pretraining -> fine-tuning -> report.

1. ``dataset``: build the pretraining HDF5 from a FASTA + GO TSV and the Gene Ontology.
2. ``pretrain``: pretrain a small ProteinBERT for a fixed number of epochs; the last
   ``holdout_records`` of the (shuffled) file are never trained on.
3. ``membrane``: fine-tune on "is the protein annotated with GO:0016020 (membrane)?", derived from the
   same data (labels after propagation to ancestors); the test set is the pretraining hold-out, so
   neither its sequences nor its annotations were seen before. A from-scratch model (same
   architecture, random weights, same schedule) is the baseline.
4. ``signalp``: the same comparison on the ProteinBERT signal-peptide benchmark, when its CSVs are
   present (``benchmarks_dir``); subsampled to keep the job short.
5. ``report``: learning curves, ROC curves and ``report.md``. Pretraining is reported by its
   held-out metrics next to their baselines (accuracy at corrupted positions vs always predicting
   the most frequent token, GO AUC macro and micro vs constant scores and label frequencies), and
   one sentence says whether these minutes of pretraining beat them.

Every step writes into ``output_dir`` and is skipped when its result is already there (``redo``
names steps to run again). Interrupted pretraining resumes from its last save.

>>> settings = PipelineSettings(output_dir="outputs", pretrain_epochs=1)  # doctest: +SKIP
>>> run_pipeline(settings)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ._numbers import finite_float
from .errors import InputError
from .io_utils import atomic_write_path
from .presets import PRESETS

logger = logging.getLogger(__name__)

STEPS = ("dataset", "pretrain", "membrane", "signalp", "report")
MEMBRANE = "GO:0016020"


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


def _done_marker(directory: Path) -> Path:
    return directory / "DONE.json"


def _write_json(path: Path, payload) -> None:
    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, default=str))


def _should_run(settings: PipelineSettings, step: str, result: Path) -> bool:
    if step in settings.redo:
        return True
    if result.exists():
        logger.info("step %s: already done (%s); skipping (redo with --redo %s)", step, result, step)
        return False
    return True


# -- 1. dataset -------------------------------------------------------------------------------

def step_dataset(settings: PipelineSettings) -> dict:
    from .data.dataset_builder import DatasetSettings, build_dataset

    path = settings.dataset_path
    summary_path = settings.output_dir / "dataset.json"
    # dataset.json is written last: it is the step's marker. A dataset.h5 without it (a run stopped
    # between the two) is rebuilt rather than trusted without its summary.
    if not _should_run(settings, "dataset", summary_path):
        return json.loads(summary_path.read_text())
    if path.exists():
        logger.info("step dataset: %s has no summary (%s); building it again", path, summary_path.name)
        path.unlink()
    for p in (settings.fasta, settings.go_tsv, settings.go_obo):
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
    logger.info("step dataset: %s + %s + %s -> %s", settings.fasta, settings.go_tsv, settings.go_obo, path)
    summary = build_dataset(DatasetSettings(
        output=path, go_obo=settings.go_obo, input_kind="fasta_tsv", fasta=settings.fasta,
        go_tsv=settings.go_tsv, min_records_per_term=settings.min_records_per_term, seed=settings.seed,
        progress=settings.progress,
    ))
    info = summary.as_dict()
    _write_json(summary_path, info)
    return info


# -- 2. pretraining ---------------------------------------------------------------------------

def step_pretrain(settings: PipelineSettings) -> dict:
    from .data.pretraining_batches import PretrainingDataSettings
    from .training import checkpoints
    from .training.pretraining import PretrainingSettings, pretrain

    out = settings.pretrain_dir
    marker = _done_marker(out)
    if not _should_run(settings, "pretrain", marker):
        return json.loads(marker.read_text())
    if "pretrain" in settings.redo and out.exists():
        shutil.rmtree(out)
    resume = checkpoints.latest_save(out) is not None
    logger.info("step pretrain: %d epochs of %d steps, episodes %s%s", settings.pretrain_epochs,
                settings.steps_per_epoch, settings.episodes, " (resuming)" if resume else "")
    data = PretrainingDataSettings(episodes=settings.episodes, steps_per_episode=settings.steps_per_episode,
                                   holdout_records=settings.holdout_records, seed=settings.seed)
    run = PretrainingSettings(
        output_dir=str(out), data=data, learning_rate=settings.pretrain_lr,
        steps_per_epoch=settings.steps_per_epoch, max_epochs=settings.pretrain_epochs,
        save_every_epochs=max(1, settings.pretrain_epochs // 4), keep_every_saves=0, eval_every_epochs=1,
        eval_max_records=settings.holdout_records, jit_compile=settings.jit_compile, seed=settings.seed,
        tensorboard=True, progress=settings.progress,
    )
    start = time.perf_counter()
    result = pretrain(settings.dataset_path, run, architecture=settings.architecture, resume=resume)
    if result.stopped not in ("max_epochs",):
        raise InputError(f"pretraining stopped early ({result.stopped}); re-run to resume")
    save = checkpoints.latest_save(out)
    info = {"epochs": result.epoch, "steps": result.step, "samples": result.samples,
            "seconds": round(time.perf_counter() - start, 1), "weights": str(save.pkl_path),
            "history": result.history}
    _write_json(marker, info)
    return info


# -- 3./4. fine-tuning tasks ------------------------------------------------------------------

@dataclass(frozen=True)
class TaskData:
    name: str
    train_seqs: list = field(repr=False)
    train_labels: list = field(repr=False)
    valid_seqs: list = field(repr=False)
    valid_labels: list = field(repr=False)
    test_seqs: list = field(repr=False)
    test_labels: list = field(repr=False)
    description: str = ""


def membrane_task(settings: PipelineSettings) -> TaskData:
    """Labels from the dataset's propagated annotations; test = the pretraining hold-out."""
    from .data.h5dataset import PretrainingDataset

    with PretrainingDataset(settings.dataset_path) as ds:
        if settings.go_term not in ds.annotations:
            raise InputError(f"{settings.go_term} is not among the {ds.n_annotations} GO terms kept in "
                             f"{settings.dataset_path} (lower min_records_per_term or pick another term)")
        column = ds.annotations.index(settings.go_term)
        records = ds.read(0, len(ds))
    annotated = records.annotation_masks.any(axis=1)  # unannotated proteins have no known answer
    labels = records.annotation_masks[:, column].astype(int)
    n = len(records.seqs)
    cut = n - settings.holdout_records
    pool = [i for i in range(cut) if annotated[i]]
    test = [i for i in range(cut, n) if annotated[i]]
    rng = np.random.default_rng(settings.seed)
    rng.shuffle(pool)
    if settings.membrane_train_records is not None:
        pool = pool[: settings.membrane_train_records]
    n_valid = max(1, len(pool) // 8)
    valid, train = pool[:n_valid], pool[n_valid:]
    pick = lambda idx: ([records.seqs[i] for i in idx], [int(labels[i]) for i in idx])  # noqa: E731
    (trs, trl), (vas, val), (tes, tel) = pick(train), pick(valid), pick(test)
    return TaskData("membrane", trs, trl, vas, val, tes, tel,
                    f"{settings.go_term} (membrane) vs not, from the GO annotations of {settings.fasta.name}; "
                    f"test = the {len(tes)} annotated proteins of the pretraining hold-out")


def signalp_task(settings: PipelineSettings) -> TaskData:
    import pandas as pd

    base = settings.benchmarks_dir
    frames = {}
    for split in ("train", "test"):
        path = base / f"signalP_binary.{split}.csv"
        frames[split] = pd.read_csv(path, dtype={"seq": str})
        if list(frames[split].columns) != ["label", "seq"]:
            raise InputError(f"{path}: expected columns label,seq. Received: {list(frames[split].columns)}")
    rng = np.random.default_rng(settings.seed)
    train = frames["train"].iloc[rng.permutation(len(frames["train"]))[: settings.signalp_train_records]]
    test = frames["test"].iloc[rng.permutation(len(frames["test"]))[: settings.signalp_test_records]]
    n_valid = max(1, len(train) // 8)
    valid, train = train.iloc[:n_valid], train.iloc[n_valid:]
    col = lambda f, c: f[c].tolist()  # noqa: E731
    return TaskData("signalp", col(train, "seq"), col(train, "label"), col(valid, "seq"), col(valid, "label"),
                    col(test, "seq"), col(test, "label"),
                    f"signal peptide (SignalP benchmark), {len(train)} train / {len(valid)} valid / "
                    f"{len(test)} test records subsampled with seed {settings.seed}")


def _finetune_and_test(task: TaskData, backbone, settings: PipelineSettings, frozen_stage: bool) -> dict:
    from .training.evaluation import evaluate_by_len
    from .training.finetuning import FinetuneConfig, OutputSpec, default_stages, finetune_from_backbone

    spec = OutputSpec("global", "binary")
    stages = default_stages(seq_len=512, batch_size=32, max_epochs=settings.finetune_epochs,
                            lr=settings.finetune_lr, frozen=frozen_stage, lr_frozen=settings.finetune_frozen_lr,
                            n_final_epochs=1)
    config = FinetuneConfig(stages=stages, seed=settings.seed)
    start = time.perf_counter()
    model = finetune_from_backbone(backbone, spec, task.train_seqs, task.train_labels, task.valid_seqs,
                                   task.valid_labels, config=config)
    train_s = time.perf_counter() - start
    evaluation = evaluate_by_len(model, task.test_seqs, task.test_labels)
    probs = evaluation.predictions["prob"].to_numpy(dtype=float)
    return {"model": model, "evaluation": evaluation, "auc": float(evaluation.overall),
            "train_seconds": round(train_s, 1), "probs": probs, "labels": np.asarray(task.test_labels, int),
            "stages": model.metadata.get("stages", [])}


def step_task(settings: PipelineSettings, task_name: str) -> dict | None:
    import keras

    from .model.backbone import ProteinBertBackbone
    from .training import checkpoints
    from .weights.released import backbone_from_released

    out = settings.task_dir(task_name)
    marker = _done_marker(out)
    if task_name == "signalp" and (settings.benchmarks_dir is None
                                   or not (settings.benchmarks_dir / "signalP_binary.train.csv").is_file()):
        logger.info("step signalp: benchmark CSVs not found (benchmarks_dir=%s); skipping", settings.benchmarks_dir)
        return None
    if not _should_run(settings, task_name, marker):
        return json.loads(marker.read_text())
    task = membrane_task(settings) if task_name == "membrane" else signalp_task(settings)
    logger.info("step %s: %s", task_name, task.description)
    save = checkpoints.latest_save(settings.pretrain_dir)
    if save is None:
        raise InputError(f"no pretrained model in {settings.pretrain_dir}: run the pretrain step first")
    results, n_annotations = {}, None
    for variant in ("pretrained", "scratch"):
        keras.utils.set_random_seed(settings.seed)
        if variant == "pretrained":
            backbone = backbone_from_released(save.pkl_path)
            n_annotations = backbone.n_annotations
        else:  # the same architecture, randomly initialised
            backbone = ProteinBertBackbone(n_annotations=n_annotations, **settings.architecture)
        logger.info("step %s: fine-tuning the %s model", task_name, variant)
        r = _finetune_and_test(task, backbone, settings, frozen_stage=(variant == "pretrained"))
        r["model"].save(out / f"model_{variant}", overwrite=True)
        r["evaluation"].write_predictions(out / f"test_predictions_{variant}.csv")
        np.savez(out / f"roc_{variant}.npz", probs=r["probs"], labels=r["labels"])
        results[variant] = {"auc": r["auc"], "train_seconds": r["train_seconds"],
                            "by_length": r["evaluation"].results.to_dict(orient="records"),
                            "stages": r["stages"]}
        logger.info("step %s: %s test AUC %.4f", task_name, variant, r["auc"])
    info = {"task": task_name, "description": task.description, "n_train": len(task.train_seqs),
            "n_valid": len(task.valid_seqs), "n_test": len(task.test_seqs),
            "positives_test": int(np.sum(task.test_labels)), **results}
    _write_json(marker, info)
    return info


# -- 5. report ----------------------------------------------------------------------------------

#: A metric counts as beating its baseline only when above it by at least this much (differences
#: below it are within the noise of a few hundred held-out proteins).
BEAT_MARGIN = 0.01

#: Held-out metrics that must beat their baselines for pretraining to count as having learnt.
BEATEN_KEYS = ("eval_corrupted_accuracy", "eval_go_auc_macro", "eval_go_auc_micro")


def _heldout_rows() -> tuple:
    """(label, history key, baseline label, baseline: history key, constant or None) of the
    report's pretraining table."""
    from .training.pretraining_metrics import MACRO_AUC_BASELINE

    return (
        ("accuracy at corrupted positions", "eval_corrupted_accuracy", "most frequent token",
         "eval_corrupted_unigram_baseline"),
        ("accuracy at uncorrupted positions", "eval_uncorrupted_accuracy", "copying the input", 1.0),
        ("GO AUC, macro", "eval_go_auc_macro", "any constant score", MACRO_AUC_BASELINE),
        ("GO AUC, micro", "eval_go_auc_micro", "label frequencies", "eval_go_auc_micro_baseline"),
        ("token cross-entropy (nats per token)", "eval_seq_loss", None, None),
    )


def _baseline(record: dict, key):
    return key if isinstance(key, float) else None if key is None else finite_float(record.get(key))


def pretraining_verdict(record: dict) -> str:
    """One sentence: do the held-out metrics of ``record`` (a history entry) beat their baselines?"""
    checks = [(label, finite_float(record.get(key)), _baseline(record, base_key))
              for label, key, _, base_key in _heldout_rows() if key in BEATEN_KEYS]
    checks = [(label, v, b) for label, v, b in checks if v is not None and b is not None]
    if not checks:
        return ("This run has no held-out evaluation, so nothing shows that its pretraining learnt anything; "
                "see `docs/results/` in the repository for real pretraining runs.")
    lost = [f"{label} {v:.3f} vs baseline {b:.3f}" for label, v, b in checks if not v >= b + BEAT_MARGIN]
    if lost:
        return (f"These few minutes of pretraining do not beat the baselines ({'; '.join(lost)}), so the "
                "fine-tuning results below do not show what pretraining can do; see `docs/results/` in the "
                "repository for real pretraining runs.")
    return (f"After pretraining, every held-out metric beats its baseline by at least {BEAT_MARGIN} "
            f"({'; '.join(f'{label} {v:.3f} vs {b:.3f}' for label, v, b in checks)}); see `docs/results/` in the "
            "repository for longer runs.")


def pretraining_table(first: dict, last: dict) -> list[str]:
    """The report's held-out pretraining table (Markdown lines): metric, baseline, before, after."""
    n_terms = last.get("eval_go_terms_scored") or first.get("eval_go_terms_scored")
    n_pos = last.get("eval_corrupted_positions") or first.get("eval_corrupted_positions")
    lines = ["| held-out metric | baseline | before pretraining | after |", "|---|---|---|---|"]
    for label, key, base_label, base_key in _heldout_rows():
        if key not in first and key not in last:
            continue
        if key == "eval_go_auc_macro" and n_terms:
            label += f" over {int(float(n_terms))} GO terms"
        if key == "eval_corrupted_accuracy" and n_pos:
            label += f" ({int(float(n_pos))} positions)"
        base = "–" if base_label is None else f"{base_label}: {_fmt(_baseline(last or first, base_key))}"
        lines.append(f"| {label} | {base} | {_fmt(first.get(key))} | {_fmt(last.get(key))} |")
    return lines


def step_report(settings: PipelineSettings, dataset: dict, pretraining: dict, tasks: dict) -> Path:
    from .plots import plot_pretraining_history, roc_comparison_figure, save_figure

    out = settings.output_dir
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    history = pretraining.get("history") or []
    if history:
        plot_pretraining_history(history, plots / "pretraining_curves.png")
    for name, info in tasks.items():
        if not info:
            continue
        curves = {}
        for variant in ("pretrained", "scratch"):
            data = np.load(settings.task_dir(name) / f"roc_{variant}.npz")
            curves[variant] = (data["labels"], data["probs"])
        save_figure(roc_comparison_figure(curves, f"{name}: test ROC"), plots / f"roc_{name}.png")

    evaluated = [h for h in history if finite_float(h.get("eval_seq_loss")) is not None]
    first, last = (evaluated[0], evaluated[-1]) if evaluated else ({}, {})
    lines = [
        "# ProteinBERT main job: report", "",
        f"Inputs: `{settings.fasta}`, `{settings.go_tsv}`, `{settings.go_obo}`.",
        f"Dataset: {dataset.get('n_records', '?')} proteins, {dataset.get('n_annotations', '?')} GO terms "
        f"(≥ {settings.min_records_per_term} proteins each, propagated to ancestors).", "",
        "## Pretraining", "",
        f"Architecture {settings.architecture}; {pretraining.get('epochs')} epochs × {settings.steps_per_epoch} "
        f"steps, episodes {list(settings.episodes)}, {pretraining.get('samples')} samples in "
        f"{pretraining.get('seconds')} s. The last {settings.holdout_records} proteins were held out; their "
        "tokens are corrupted as in training (5 % replaced at random) and GO terms are predicted from the "
        "sequence alone. Only the accuracy at the corrupted positions shows what the model learnt: at the "
        "other positions copying the input is right.", "",
        *pretraining_table(first, last), "",
        pretraining_verdict(last), "",
        "![pretraining curves](plots/pretraining_curves.png)", "", "## Fine-tuning (test AUC)", "",
        "| task | train / valid / test | pretrained | from scratch | time pretrained / scratch (s) |",
        "|---|---|---|---|---|",
    ]
    for name, info in tasks.items():
        if info:
            lines.append(f"| {name} | {info['n_train']} / {info['n_valid']} / {info['n_test']} | "
                         f"{info['pretrained']['auc']:.3f} | {info['scratch']['auc']:.3f} | "
                         f"{info['pretrained']['train_seconds']} / {info['scratch']['train_seconds']} |")
    for name, info in tasks.items():
        if info:
            lines += ["", f"**{name}**: {info['description']}.", "", f"![ROC {name}](plots/roc_{name}.png)"]
    if "signalp" in tasks and not tasks["signalp"]:
        lines += ["", "The signal-peptide benchmark was skipped: its CSVs were not found."]
    lines += ["", "The paper reports signal peptide AUC 0.996 with the released weights (0.991 without "
              "pretraining); this job pretrains a much smaller model for minutes, not weeks.", ""]
    report = out / "report.md"
    with atomic_write_path(report) as tmp:
        Path(tmp).write_text("\n".join(lines))
    return report


def _fmt(value) -> str:
    v = finite_float(value)
    return "–" if v is None else f"{v:.4f}"


def run_pipeline(settings: PipelineSettings) -> dict:
    """Run every step (skipping finished ones); returns a summary with the report path."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    _write_json(settings.output_dir / "settings.json", asdict(settings))
    start = time.perf_counter()
    dataset = step_dataset(settings)
    pretraining = step_pretrain(settings)
    tasks = {"membrane": step_task(settings, "membrane"), "signalp": step_task(settings, "signalp")}
    report = step_report(settings, dataset, pretraining, tasks)
    summary = {"report": str(report), "seconds": round(time.perf_counter() - start, 1),
               "tasks": {k: ({v: t[v]["auc"] for v in ("pretrained", "scratch")} if t else None)
                         for k, t in tasks.items()}}
    logger.info("main job done in %.0f s: %s", summary["seconds"], summary["tasks"])
    return summary
