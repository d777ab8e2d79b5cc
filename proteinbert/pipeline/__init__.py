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

The parts live in one module each (this module runs them, and keeps their names importable from
here): :mod:`.settings` (the settings, where results go), :mod:`.tasks` (the
fine-tuning tasks' records), :mod:`.steps` (the steps but the report) and
:mod:`.report` (``report.md``, its plots and the pretraining verdict).

>>> settings = PipelineSettings(output_dir="outputs", pretrain_epochs=1)  # doctest: +SKIP
>>> run_pipeline(settings)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

# The parts, one module each; their names stay importable from here.
from .report import BEAT_MARGIN, BEATEN_KEYS, pretraining_table, pretraining_verdict, step_report
from .settings import MEMBRANE, STEPS, VARIANTS, PipelineSettings
from .steps import _write_json, step_dataset, step_pretrain, step_task
from .tasks import TaskData, membrane_task, signalp_task

logger = logging.getLogger(__name__)

__all__ = [
    "BEAT_MARGIN", "BEATEN_KEYS", "MEMBRANE", "STEPS", "VARIANTS", "PipelineSettings", "TaskData", "membrane_task",
    "pretraining_table", "pretraining_verdict", "run_pipeline", "signalp_task", "step_dataset", "step_pretrain",
    "step_report", "step_task",
]


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
               "tasks": {k: ({v: t[v]["auc"] for v in VARIANTS} if t else None)
                         for k, t in tasks.items()}}
    logger.info("main job done in %.0f s: %s", summary["seconds"], summary["tasks"])
    return summary
