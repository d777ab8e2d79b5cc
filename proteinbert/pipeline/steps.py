"""The main job's steps: each writes into ``output_dir`` and is skipped when its result is there.

``dataset`` builds the pretraining HDF5, ``pretrain`` pretrains (resuming an interrupted run), and
``step_task`` fine-tunes the pretrained and a from-scratch model on one task and tests both. The
report is :mod:`proteinbert.pipeline.report`; :func:`proteinbert.pipeline.run_pipeline` runs them all.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io_utils import atomic_write_path
from .settings import VARIANTS, PipelineSettings
from .tasks import TaskData, membrane_task, signalp_task

logger = logging.getLogger(__name__)


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
    from ..data.dataset_builder import DatasetSettings, build_dataset

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
    from ..data.pretraining_batches import PretrainingDataSettings
    from ..training import checkpoints
    from ..training.pretraining import PretrainingSettings, pretrain

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

def _finetune_and_test(task: TaskData, backbone, settings: PipelineSettings, frozen_stage: bool) -> dict:
    from ..training.evaluation import evaluate_by_len
    from ..training.finetuning import FinetuneConfig, OutputSpec, default_stages, finetune_from_backbone

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

    from ..model.backbone import ProteinBertBackbone
    from ..training import checkpoints
    from ..weights.released import backbone_from_released

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
    for variant in VARIANTS:
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
        with atomic_write_path(settings.roc_path(task_name, variant)) as tmp:  # ends in .npz: savez adds none
            np.savez(tmp, probs=r["probs"], labels=r["labels"])
        results[variant] = {"auc": r["auc"], "train_seconds": r["train_seconds"],
                            "by_length": r["evaluation"].results.to_dict(orient="records"),
                            "stages": r["stages"]}
        logger.info("step %s: %s test AUC %.4f", task_name, variant, r["auc"])
    info = {"task": task_name, "description": task.description, "n_train": len(task.train_seqs),
            "n_valid": len(task.valid_seqs), "n_test": len(task.test_seqs),
            "positives_test": int(np.sum(task.test_labels)), **results}
    _write_json(marker, info)
    return info

