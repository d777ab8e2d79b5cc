"""Plot the learning curves of a pretraining run (its ``history.tsv``) into a small PNG.

    python benchmarks/pretrain_curves.py RUN_DIR/history.tsv docs/pretrain_curves.png
"""

from __future__ import annotations

import sys

import pandas as pd


def plot(history_tsv, png, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.read_csv(history_tsv, sep="\t")
    x = h["samples"] / 1000
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=80)
    ax = axes[0]
    for col, label in (("loss", "train total"), ("seq_loss", "train token"), ("annot_loss", "train GO"),
                       ("eval_seq_loss", "held-out token"), ("eval_annot_loss", "held-out GO")):
        if col in h:
            ax.plot(x, h[col], label=label, marker=".", ls="--" if col.startswith("eval") else "-")
    ax.set_yscale("log")
    ax.set_title("loss"); ax.set_xlabel("samples seen (thousands)"); ax.legend(fontsize=7)  # noqa: E702
    ax = axes[1]
    for col, label in (("token_accuracy", "train (all tokens)"), ("eval_token_accuracy", "held-out (all tokens)"),
                       ("eval_corrupted_accuracy", "held-out (corrupted tokens)")):
        if col in h:
            ax.plot(x, h[col], label=label, marker=".")
    ax.set_title("token accuracy"); ax.set_xlabel("samples seen (thousands)"); ax.legend(fontsize=7)  # noqa: E702
    ax = axes[2]
    for col, label in (("eval_go_auc", "sequence only, macro"), ("eval_go_auc_micro", "sequence only, micro"),
                       ("eval_partial_input_go_auc", "withheld terms, macro"),
                       ("eval_partial_input_go_auc_micro", "withheld terms, micro")):
        if col in h:
            ax.plot(x, h[col], label=label, marker=".")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set_title("held-out GO AUC"); ax.set_xlabel("samples seen (thousands)")  # noqa: E702
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    plot(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
