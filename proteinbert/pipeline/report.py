"""The main job's report: ``report.md`` and its plots, and the verdict on pretraining.

Pretraining is reported by its held-out metrics next to their baselines (accuracy at corrupted
positions vs always predicting the most frequent token, GO AUC macro and micro vs constant scores
and label frequencies), and one sentence says whether these minutes of pretraining beat them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._numbers import finite_float
from ..io_utils import atomic_write_path
from .settings import VARIANTS, PipelineSettings

#: A metric counts as beating its baseline only when above it by at least this much (differences
#: below it are within the noise of a few hundred held-out proteins).
BEAT_MARGIN = 0.01

#: Held-out metrics that must beat their baselines for pretraining to count as having learnt. The
#: residue metric is the best guess other than the input token at the corrupted positions: there the
#: plain accuracy stays near its baseline even for a model that learnt a lot (the input token rightly
#: stays its first guess; see :mod:`proteinbert.training.pretraining_metrics`). Histories written
#: before that metric existed are judged on the plain accuracy.
BEATEN_KEYS = ("eval_corrupted_recovery_accuracy", "eval_go_auc_macro", "eval_go_auc_micro")
_OLD_RESIDUE_KEY = "eval_corrupted_accuracy"


def _heldout_rows() -> tuple:
    """(label, history key, baseline label, baseline: history key, constant or None) of the
    report's pretraining table."""
    from ..training.pretraining_metrics import MACRO_AUC_BASELINE

    return (
        ("accuracy at corrupted positions", "eval_corrupted_accuracy", "most frequent token",
         "eval_corrupted_unigram_baseline"),
        ("at corrupted positions, best guess other than the input token", "eval_corrupted_recovery_accuracy",
         "most frequent other token", "eval_corrupted_recovery_baseline"),
        ("accuracy at uncorrupted positions", "eval_uncorrupted_accuracy", "copying the input", 1.0),
        ("GO AUC, macro", "eval_go_auc_macro", "any constant score", MACRO_AUC_BASELINE),
        ("GO AUC, micro", "eval_go_auc_micro", "label frequencies", "eval_go_auc_micro_baseline"),
        ("token cross-entropy (nats per token)", "eval_seq_loss", None, None),
    )


def _baseline(record: dict, key):
    return key if isinstance(key, float) else None if key is None else finite_float(record.get(key))


def _fmt(value) -> str:
    v = finite_float(value)
    return "–" if v is None else f"{v:.4f}"


def pretraining_verdict(record: dict) -> str:
    """One sentence: do the held-out metrics of ``record`` (a history entry) beat their baselines?"""
    keys = BEATEN_KEYS if BEATEN_KEYS[0] in record else (_OLD_RESIDUE_KEY, *BEATEN_KEYS[1:])
    checks = [(label, finite_float(record.get(key)), _baseline(record, base_key))
              for label, key, _, base_key in _heldout_rows() if key in keys]
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


def _write_plots(settings: PipelineSettings, history: list, tasks: dict) -> None:
    from ..plots import plot_pretraining_history, roc_comparison_figure, save_figure

    plots = settings.output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    if history:
        plot_pretraining_history(history, plots / "pretraining_curves.png")
    for name, info in tasks.items():
        if not info:
            continue
        curves = {}
        for variant in VARIANTS:
            data = np.load(settings.roc_path(name, variant))
            curves[variant] = (data["labels"], data["probs"])
        save_figure(roc_comparison_figure(curves, f"{name}: test ROC"), plots / f"roc_{name}.png")


def _pretraining_section(settings: PipelineSettings, dataset: dict, pretraining: dict, history: list) -> list[str]:
    evaluated = [h for h in history if finite_float(h.get("eval_seq_loss")) is not None]
    first, last = (evaluated[0], evaluated[-1]) if evaluated else ({}, {})
    return [
        "# ProteinBERT main job: report", "",
        f"Inputs: `{settings.fasta}`, `{settings.go_tsv}`, `{settings.go_obo}`.",
        f"Dataset: {dataset.get('n_records', '?')} proteins, {dataset.get('n_annotations', '?')} GO terms "
        f"(≥ {settings.min_records_per_term} proteins each, propagated to ancestors).", "",
        "## Pretraining", "",
        f"Architecture {settings.architecture}; {pretraining.get('epochs')} epochs × {settings.steps_per_epoch} "
        f"steps, episodes {list(settings.episodes)}, {pretraining.get('samples')} samples in "
        f"{pretraining.get('seconds')} s. The last {settings.holdout_records} proteins were held out; their "
        "tokens are corrupted as in training (5 % replaced at random) and GO terms are predicted from the "
        "sequence alone. Only the corrupted positions show what the model learnt about residues: at the "
        "others copying the input is right. At the corrupted ones the input token, though wrong, rightly "
        "stays a trained model's first guess almost everywhere (a random replacement is far less likely "
        "than the residue it looks like), so the best guess other than the input token is what measures "
        "learning there.", "",
        *pretraining_table(first, last), "",
        pretraining_verdict(last), "",
        "![pretraining curves](plots/pretraining_curves.png)", "",
    ]


def _finetuning_section(tasks: dict) -> list[str]:
    lines = [
        "## Fine-tuning (test AUC)", "",
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
    return lines


def step_report(settings: PipelineSettings, dataset: dict, pretraining: dict, tasks: dict) -> Path:
    """Write the plots and ``report.md`` (always, from the steps' results); returns the report's path."""
    history = pretraining.get("history") or []
    _write_plots(settings, history, tasks)
    lines = _pretraining_section(settings, dataset, pretraining, history) + _finetuning_section(tasks)
    report = settings.output_dir / "report.md"
    with atomic_write_path(report) as tmp:
        Path(tmp).write_text("\n".join(lines))
    return report
