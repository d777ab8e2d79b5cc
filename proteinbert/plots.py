"""Figures of fine-tuning and analysis results (the notebooks draw with these).

Each function returns a :class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`, so
no global figure list grows and no backend is chosen for the process; Jupyter shows a figure that
ends a cell, and :func:`save_figure` writes one atomically. matplotlib is an optional dependency
(``pip install 'proteinbert[plots]'``); it is imported when a figure is drawn.

>>> import numpy as np, os, tempfile
>>> fig = roc_figure([0, 1, 0, 1], [0.1, 0.8, 0.4, 0.6], "toy")
>>> fig.axes[0].get_legend().get_texts()[0].get_text()
'this model (AUC 1.000)'
>>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "roc.png"))
>>> path.stat().st_size > 0
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._numbers import finite_float
from ._optional import require
from .io_utils import atomic_write_path
from .training.pretraining_metrics import MACRO_AUC_BASELINE

#: Axis label of each benchmark metric (the names the benchmark suite's ``metric`` column uses).
METRIC_AXIS_LABELS = {
    "AUC": "test ROC AUC (0.5 = chance)",
    "accuracy": "test accuracy (fraction correct)",
    "Spearman": "test Spearman ρ (rank correlation)",
}

#: Bars of the benchmark figure: (table column, legend label).
BENCHMARK_BARS = (
    ("score", "this run"),
    ("paper", "paper, released weights"),
    ("paper_no_pretraining", "paper, no pretraining"),
)


def _figure(width: float, height: float):
    require("matplotlib", "plots", "drawing figures")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, e.g. ``.png``), never half-written."""
    path = Path(path)
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def roc_figure(labels, scores, title: str, paper_auc: float | None = None, paper_label: str = "paper",
               model_label: str = "this model"):
    """ROC curve of binary ``labels`` (0/1) against ``scores``, the chance diagonal, and the AUC in
    the legend; ``paper_auc`` (if given) is listed in the legend for comparison."""
    return roc_comparison_figure({model_label: (labels, scores)}, title, paper_auc, paper_label)


def roc_comparison_figure(curves: dict, title: str, paper_auc: float | None = None, paper_label: str = "paper"):
    """One ROC curve per entry of ``curves`` (legend label -> ``(labels, scores)``, same test set)
    on one pair of axes, with the chance diagonal and each AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    labels = None
    for name, (labels, scores) in curves.items():
        labels = np.asarray(labels, dtype=int)
        scores = np.asarray(scores, dtype=float)
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance (AUC 0.500)")
    if paper_auc is not None:
        ax.plot([], [], " ", label=f"{paper_label}: AUC {paper_auc:.3f}")  # a legend line, no curve
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (fraction of negatives)")
    ax.set_ylabel("true positive rate (fraction of positives)")
    ax.set_title(f"{title}\n{int(labels.sum())} positives, {int((labels == 0).sum())} negatives", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def benchmark_figure(table, title: str = "benchmark scores"):
    """One panel per metric (AUC, accuracy, Spearman ρ: never two on one axis), one group of bars per
    benchmark: this run's score beside the paper's with and without pretraining.

    ``table``: the benchmark suite's table (columns ``benchmark``, ``metric``, ``score``, ``paper``,
    ``paper_no_pretraining``); a missing score (benchmark not run) is marked "not run".

    >>> import pandas as pd
    >>> t = pd.DataFrame({"benchmark": ["a", "b"], "metric": ["AUC", "accuracy"], "score": [0.6, float("nan")],
    ...                   "paper": [0.9, 0.7], "paper_no_pretraining": [0.8, None]})
    >>> [ax.get_ylabel() for ax in benchmark_figure(t).axes]
    ['test ROC AUC (0.5 = chance)', 'test accuracy (fraction correct)']
    """
    metrics = [m for m in METRIC_AXIS_LABELS if m in set(table["metric"])]
    metrics += sorted(set(table["metric"]) - set(metrics))
    widths = [max(1, int((table["metric"] == m).sum())) for m in metrics]
    fig = _figure(min(14.0, max(4.0, 0.9 * sum(widths) + 1.2 * len(metrics))), 4.0)
    axes = fig.subplots(1, len(metrics), squeeze=False, width_ratios=widths)[0]
    bar = 0.8 / len(BENCHMARK_BARS)
    for ax, metric in zip(axes, metrics):
        rows = table[table["metric"] == metric]
        x = np.arange(len(rows))
        for i, (column, label) in enumerate(BENCHMARK_BARS):
            values = np.array([np.nan if v is None else float(v) for v in rows[column]], dtype=float)
            offsets = x + (i - (len(BENCHMARK_BARS) - 1) / 2) * bar
            ax.bar(offsets, np.nan_to_num(values), bar, color=f"C{i}", label=label)
            for xo, v in zip(offsets, values):
                text = ("not run" if column == "score" else "") if np.isnan(v) else f"{v:.3f}"
                ax.text(xo, 0.01 if np.isnan(v) else max(v, 0) + 0.01, text, ha="center", va="bottom",
                        rotation=90, fontsize=7)
        low = min(0.0, float(np.nanmin(rows[[c for c, _ in BENCHMARK_BARS]].to_numpy(dtype=float), initial=0.0)))
        ax.set_ylim(low, 1.15)
        if metric == "AUC":
            ax.axhline(0.5, ls="--", c="grey", lw=1)  # chance
        ax.axhline(0, c="black", lw=0.6)
        crowded = len(rows) > 2
        ax.set_xticks(x, list(rows["benchmark"]), rotation=25 if crowded else 0, ha="right" if crowded else "center",
                      fontsize=8)
        ax.set_ylabel(METRIC_AXIS_LABELS.get(metric, metric))
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(BENCHMARK_BARS), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def attention_figure(maps, title: str = "global attention"):
    """Heatmaps of attention weights ``maps`` (n_blocks, n_heads, L): one panel per block, heads as rows.

    The colour scale is fixed from 0 to the largest weight of all blocks, and the uniform weight
    1/L is marked on the colour bar, so attention that is close to uniform looks flat rather than
    being stretched into apparent structure.

    >>> maps = np.full((2, 3, 10), 0.1)
    >>> fig = attention_figure(maps)
    >>> len(fig.axes)  # two panels and their shared colour bar
    3
    """
    maps = np.asarray(maps, dtype=float)
    n_blocks, n_heads, length = maps.shape
    uniform = 1.0 / length
    vmax = max(float(maps.max()), 2 * uniform)  # never a scale narrower than 0 .. 2/L
    fig = _figure(10, 0.45 * n_heads * n_blocks + 1.2 * n_blocks + 0.6)
    axes = fig.subplots(n_blocks, 1, squeeze=False, sharex=True)[:, 0]
    for b, ax in enumerate(axes):
        image = ax.imshow(maps[b], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest",
                          extent=(-0.5, length - 0.5, n_heads - 0.5, -0.5))
        ax.set_yticks(range(n_heads), [str(h + 1) for h in range(n_heads)], fontsize=7)
        ax.set_ylabel("head")
        ax.set_title(f"block {b + 1}: max {maps[b].max() / uniform:.1f} × uniform", fontsize=9)
    axes[-1].set_xlabel("token position (0 = <START>, last = <END>)")
    bar = fig.colorbar(image, ax=list(axes), fraction=0.03)
    bar.set_label(f"attention weight (sums to 1 over positions)\nwhite line: uniform, 1/L = {uniform:.4f}", fontsize=8)
    bar.ax.axhline(uniform, c="white", lw=2.5)
    fig.suptitle(title, fontsize=10)
    return fig


def embedding_figure(xy, labels, names: dict, explained=None, title: str = "protein embeddings"):
    """Scatter of 2-D coordinates ``xy`` (e.g. PCA of embeddings) coloured by ``labels``; ``names``
    maps each label to its legend text; ``explained``: the fraction of variance of each axis.

    >>> fig = embedding_figure(np.zeros((4, 2)), [0, 1, 0, 1], {0: "no", 1: "yes"}, explained=[0.5, 0.25])
    >>> fig.axes[0].get_xlabel()
    'PC 1 (50.0 % of the variance)'
    """
    xy = np.asarray(xy, dtype=float)
    labels = np.asarray(labels)
    fig = _figure(5.2, 4.2)
    ax = fig.add_subplot()
    for i, (value, name) in enumerate(names.items()):
        sel = labels == value
        ax.scatter(xy[sel, 0], xy[sel, 1], s=12, alpha=0.7, color=f"C{i}", label=f"{name} ({int(sel.sum())})")
    for axis, setter in enumerate((ax.set_xlabel, ax.set_ylabel)):
        share = "" if explained is None else f" ({100 * float(explained[axis]):.1f} % of the variance)"
        setter(f"PC {axis + 1}{share}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig



#: Pretraining panels: (title, y-axis label, [(history key, legend label, line style)], constant baselines).
PRETRAINING_PANELS = (
    ("token loss", "cross-entropy (nats per token)",
     [("seq_loss", "train batches (dropout on)", "-"), ("eval_seq_loss", "held-out", "-")], ()),
    ("accuracy at corrupted positions", "fraction predicted correctly",
     [("corrupted_accuracy", "train batches (dropout on)", "-"), ("eval_corrupted_accuracy", "held-out", "-"),
      ("eval_corrupted_unigram_baseline", "baseline: most frequent token", "--"),
      ("eval_corrupted_recovery_accuracy", "held-out, input token excluded", "-"),
      ("eval_corrupted_recovery_baseline", "baseline: most frequent other token", "--")], ()),
    ("accuracy at uncorrupted positions", "fraction predicted correctly",
     [("uncorrupted_accuracy", "train batches (dropout on)", "-"), ("eval_uncorrupted_accuracy", "held-out", "-")],
     ((1.0, "baseline: copying the input"),)),
    ("held-out GO AUC (sequence only)", "ROC AUC",
     [("eval_go_auc_macro", "macro (mean over GO terms)", "-"), ("eval_go_auc_micro", "micro (pairs pooled)", "-"),
      ("eval_go_auc_micro_baseline", "micro baseline: label frequencies", "--")],
     ((MACRO_AUC_BASELINE, "macro baseline: any constant score"),)),
)


def pretraining_figure(history, x: str = "epoch", title: str | None = None):
    """Learning curves of a pretraining run (``PretrainingResult.history`` or the rows of
    ``history.tsv``): each held-out metric beside its train counterpart and its baseline (dashed),
    so that no curve looks good that a model copying its input or predicting label frequencies
    would draw. ``x``: ``"epoch"`` or ``"samples"`` (proteins seen)."""
    xlabel = {"epoch": "epoch", "samples": "proteins seen (thousands)"}[x]
    scale = 1000.0 if x == "samples" else 1.0
    fig = _figure(4.1 * len(PRETRAINING_PANELS), 3.6)
    axes = fig.subplots(1, len(PRETRAINING_PANELS))
    for ax, (panel_title, ylabel, series, constants) in zip(axes, PRETRAINING_PANELS):
        drawn = False
        for key, label, style in series:
            pts = [(finite_float(h.get(x)) / scale, finite_float(h.get(key))) for h in history
                   if finite_float(h.get(x)) is not None and finite_float(h.get(key)) is not None]
            if pts:
                ax.plot(*zip(*pts), ls=style, marker="" if style == "--" else "o", ms=3, label=label)
                drawn = True
        for value, label in constants:
            ax.axhline(value, ls="--", c="grey", lw=1, label=label)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn or constants:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_pretraining_history(history, png, x: str = "epoch", title: str | None = None, dpi: int = 110):
    """:func:`pretraining_figure` written to ``png``; returns the path."""
    return save_figure(pretraining_figure(history, x, title), png, dpi)


__all__ = ["BENCHMARK_BARS", "METRIC_AXIS_LABELS", "PRETRAINING_PANELS", "attention_figure", "benchmark_figure",
           "embedding_figure", "plot_pretraining_history", "pretraining_figure", "roc_comparison_figure",
           "roc_figure", "save_figure"]
