"""Learning curves of a pretraining run, each held-out metric beside its train counterpart and its
baseline (dashed), so that no curve looks good that a model copying its input or predicting label
frequencies would draw (the metrics are described in :mod:`.pretraining`).

>>> plot_pretraining_history(result.history, "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math

from .pretraining_metrics import MACRO_AUC_BASELINE

#: Panels: (title, y-axis label, [(history key, legend label, line style)], constant baselines).
PANELS = (
    ("token loss", "cross-entropy (nats per token)",
     [("seq_loss", "train batches (dropout on)", "-"), ("eval_seq_loss", "held-out", "-")], ()),
    ("accuracy at corrupted positions", "fraction predicted correctly",
     [("corrupted_accuracy", "train batches (dropout on)", "-"), ("eval_corrupted_accuracy", "held-out", "-"),
      ("eval_corrupted_unigram_baseline", "baseline: most frequent token", "--")], ()),
    ("accuracy at uncorrupted positions", "fraction predicted correctly",
     [("uncorrupted_accuracy", "train batches (dropout on)", "-"), ("eval_uncorrupted_accuracy", "held-out", "-")],
     ((1.0, "baseline: copying the input"),)),
    ("held-out GO AUC (sequence only)", "ROC AUC",
     [("eval_go_auc_macro", "macro (mean over GO terms)", "-"), ("eval_go_auc_micro", "micro (pairs pooled)", "-"),
      ("eval_go_auc_micro_baseline", "micro baseline: label frequencies", "--")],
     ((MACRO_AUC_BASELINE, "macro baseline: any constant score"),)),
)


def _value(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def plot_pretraining_history(history, png, x: str = "epoch", title: str | None = None, dpi: int = 110):
    """Draw ``history`` (a list of dicts, e.g. ``PretrainingResult.history`` or the rows of
    ``history.tsv``) into ``png``. ``x``: ``"epoch"`` or ``"samples"`` (proteins seen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xlabel = {"epoch": "epoch", "samples": "proteins seen (thousands)"}[x]
    scale = 1000.0 if x == "samples" else 1.0
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.1 * len(PANELS), 3.6))
    for ax, (panel_title, ylabel, series, constants) in zip(axes, PANELS):
        drawn = False
        for key, label, style in series:
            pts = [(_value(h.get(x)) / scale, _value(h.get(key))) for h in history
                   if _value(h.get(x)) is not None and _value(h.get(key)) is not None]
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
    fig.tight_layout()
    fig.savefig(png, dpi=dpi)
    plt.close(fig)
    return png


__all__ = ["PANELS", "plot_pretraining_history"]
