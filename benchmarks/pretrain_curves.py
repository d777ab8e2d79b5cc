"""Plot the learning curves of a pretraining run (its ``history.tsv``) into a PNG: each held-out
metric beside its train counterpart and its baseline (see ``proteinbert.training.curves``).

    python benchmarks/pretrain_curves.py RUN_DIR/history.tsv curves.png [--title TITLE]
    python benchmarks/pretrain_curves.py --quick curves.png   # seconds: a tiny run on data/, then its plot

The x axis is proteins seen. The PNG is written atomically and may not be the history file.
``--quick`` pretrains a tiny model for 3 short epochs on a dataset made from ``data/`` (in a
temporary folder), evaluating it on 200 held-out proteins, and plots that run's history; it prints
the rows it plotted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402

QUICK_EPOCHS = 3


def quick_history(workdir: Path) -> list[dict]:
    """The history of a tiny pretraining run: 3 epochs of 4 steps, evaluated on 200 held-out proteins
    before the first and after each (4 rows)."""
    from proteinbert.data.pretraining_batches import PretrainingDataSettings
    from proteinbert.training.pretraining import Pretrainer, PretrainingSettings

    dataset = _harness.build_pretraining_dataset(workdir)
    data = PretrainingDataSettings(episodes=((64, 8),), holdout_records=200)
    settings = PretrainingSettings(output_dir=str(workdir / "run"), data=data,
                                   steps_per_epoch=4, max_epochs=QUICK_EPOCHS, eval_max_records=64,
                                   tensorboard=False, progress=False, seed=0)
    arch = {k: v for k, v in _harness.QUICK_ARCHITECTURE.items() if k != "n_annotations"}
    return Pretrainer(dataset, settings, architecture=arch).run().history


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="HISTORY_TSV PNG, or PNG alone with --quick")
    p.add_argument("--title")
    p.add_argument("--quick", action="store_true", help="plot a tiny pretraining run made on the spot")
    args = p.parse_args(argv)
    if len(args.paths) != (1 if args.quick else 2):
        p.error("give HISTORY_TSV and PNG" + (" (with --quick: PNG only)" if not args.quick else
                                            f" (with --quick: PNG only); received {len(args.paths)} paths"))
    png = Path(args.paths[-1])
    history_tsv = None if args.quick else Path(args.paths[0])
    from proteinbert.errors import UsageError
    from proteinbert.io_utils import atomic_write_path, check_output_path
    from proteinbert.training.curves import plot_pretraining_history

    try:
        check_output_path(png, {"HISTORY_TSV": history_tsv}, option="PNG")
    except UsageError as exc:
        p.error(str(exc))
    if history_tsv is not None:
        import pandas as pd

        if not history_tsv.is_file():
            p.error(f"HISTORY_TSV {history_tsv}: no such file")
        history = pd.read_csv(history_tsv, sep="\t").to_dict(orient="records")
    else:
        _harness.print_header(quick=True)
        with tempfile.TemporaryDirectory(prefix="bench-curves-") as workdir:
            history = quick_history(Path(workdir))
        keys = ("epoch", "samples", "seq_loss", "eval_seq_loss", "eval_go_auc_macro")
        print("\t".join(keys))
        for row in history:
            print("\t".join(_cell(row.get(k)) for k in keys))
    if not history:
        print(f"{history_tsv}: no rows to plot", file=sys.stderr)
        return 1
    with atomic_write_path(png) as tmp:
        plot_pretraining_history(history, tmp, x="samples", title=args.title, dpi=80)
    print(f"wrote {png} ({len(history)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
