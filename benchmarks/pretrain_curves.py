"""Plot the learning curves of a pretraining run (its ``history.tsv``) into a PNG: each held-out
metric beside its train counterpart and its baseline (see ``proteinbert.training.curves``).

    python benchmarks/pretrain_curves.py RUN_DIR/history.tsv docs/pretrain_curves.png [TITLE]
"""

from __future__ import annotations

import sys

import pandas as pd

from proteinbert.training.curves import plot_pretraining_history


def plot(history_tsv, png, title=None):
    history = pd.read_csv(history_tsv, sep="\t").to_dict(orient="records")
    return plot_pretraining_history(history, png, x="samples", title=title, dpi=80)


if __name__ == "__main__":
    plot(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
