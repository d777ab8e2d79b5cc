"""Report figures: labelled axes, baselines drawn, one metric per panel; no backend chosen."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from proteinbert import plots  # noqa: E402

from conftest import REPO  # noqa: E402

HISTORY = [
    {"epoch": 1, "samples": 800, "seq_loss": 2.9, "eval_seq_loss": 2.95, "corrupted_accuracy": 0.08,
     "eval_corrupted_accuracy": 0.07, "eval_corrupted_unigram_baseline": 0.09, "uncorrupted_accuracy": 0.5,
     "eval_uncorrupted_accuracy": 0.48, "eval_go_auc_macro": 0.52, "eval_go_auc_micro": 0.8,
     "eval_go_auc_micro_baseline": 0.79},
    {"epoch": 2, "samples": 1600, "seq_loss": 2.7, "eval_seq_loss": float("nan"), "corrupted_accuracy": 0.1,
     "eval_corrupted_accuracy": "", "uncorrupted_accuracy": 0.7},
]


def test_pretraining_figure_has_labelled_panels_and_baselines(tmp_path):
    fig = plots.pretraining_figure(HISTORY, x="samples")
    assert len(fig.axes) == len(plots.PRETRAINING_PANELS) == 4
    for ax, (title, ylabel, _, _) in zip(fig.axes, plots.PRETRAINING_PANELS):
        assert ax.get_title() == title and ax.get_ylabel() == ylabel
        assert ax.get_xlabel() == "proteins seen (thousands)"
    corrupted = fig.axes[1]
    labels = [t.get_text() for t in corrupted.get_legend().get_texts()]
    assert "baseline: most frequent token" in labels
    # the held-out series skips the non-finite and empty values: one point each
    held_out = [line for line in corrupted.get_lines() if line.get_label() == "held-out"][0]
    assert list(held_out.get_xdata()) == [0.8]
    uncorrupted = fig.axes[2]
    assert any(line.get_label() == "baseline: copying the input" and list(line.get_ydata()) == [1.0, 1.0]
               for line in uncorrupted.get_lines())
    png = plots.plot_pretraining_history(HISTORY, tmp_path / "c.png")
    assert png.stat().st_size > 5000 and not list(tmp_path.glob("*.tmp*"))
    # no backend chosen, no global figure list: pyplot is never imported (checked in a fresh process)
    code = ("import sys; from proteinbert import plots; plots.plot_pretraining_history([{'epoch': 1, 'seq_loss': 2.0}], "
            f"{str(tmp_path / 'd.png')!r}); print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_roc_comparison_figure_names_every_curve():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    good, bad = labels + rng.normal(0, 0.5, 100), rng.normal(0, 1, 100)
    fig = plots.roc_comparison_figure({"pretrained": (labels, good), "scratch": (labels, bad)}, "membrane")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[0].startswith("pretrained (AUC 0.9") and texts[1].startswith("scratch (AUC 0.")
    assert texts[2] == "chance (AUC 0.500)"
    assert fig.axes[0].get_title() == "membrane\n50 positives, 50 negatives"


def test_old_import_path_still_works():
    from proteinbert.training.curves import PANELS, plot_pretraining_history

    assert PANELS is plots.PRETRAINING_PANELS and plot_pretraining_history is plots.plot_pretraining_history
