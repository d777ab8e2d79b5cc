"""Moved: the pretraining learning curves are drawn by :mod:`proteinbert.plots` (kept for old imports)."""

from ..plots import PRETRAINING_PANELS as PANELS
from ..plots import plot_pretraining_history

__all__ = ["PANELS", "plot_pretraining_history"]
