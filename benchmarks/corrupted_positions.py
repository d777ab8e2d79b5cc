"""What a pretrained model does at the corrupted positions of its held-out proteins: how often it
keeps the input token, and how well it recovers the clean residue where the input token cannot
stand there (``U``, ``X``, ``<OTHER>``, ``<START>``, ``<END>``, ``<PAD>`` inside a sequence) and where
it could.

    python benchmarks/corrupted_positions.py --weights RUN/epoch_E_sample_S --dataset DATA.h5 --holdout 2000
    python benchmarks/corrupted_positions.py --quick   # a tiny random model on a dataset made from data/

The held-out batch is the one pretraining evaluates (the last ``--holdout`` records of the file,
tokens corrupted as in training with the dataset seed ``--seed``), at ``--seq-len``. Prints one
Markdown table. It answers why plain accuracy at the corrupted positions stays near its baseline
however long a model is trained (docs/results/pretraining_50k.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402

import numpy as np  # noqa: E402

#: Input tokens a residue position cannot hold in a real protein (rare residues and special tokens).
IMPLAUSIBLE = ("U", "X", "<OTHER>", "<START>", "<END>", "<PAD>")


def heldout_probabilities(backbone, dataset, holdout: int, records: int, seq_len: int, seed: int, batch: int = 100):
    """``(batch, token probabilities)`` of the held-out slice, as pretraining evaluates it."""
    from proteinbert.data.pretraining_batches import PretrainingDataSettings, holdout_batch

    data = PretrainingDataSettings(episodes=((seq_len, 1),), holdout_records=holdout, seed=seed)
    held = holdout_batch(dataset, data, seq_len=seq_len, max_records=records)
    probs = [np.asarray(backbone([held.tokens[i:i + batch], held.annotations[i:i + batch]], training=False)[0])
             for i in range(0, len(held.tokens), batch)]
    return held, np.concatenate(probs)


def corrupted_position_rows(held, probs) -> list[tuple]:
    """``(positions, share, keeps the input, accuracy, best other guess)`` for the implausible
    inputs, the plausible ones and all corrupted positions."""
    from proteinbert.tokenizer import TOKEN_TO_ID
    from proteinbert.training.pretraining_metrics import position_masks, recovery_accuracy

    tokens, targets = held.tokens, held.token_targets
    corrupted, _ = position_masks(tokens, targets, held.token_weights)
    first = probs.argmax(-1)
    implausible = np.isin(tokens, [TOKEN_TO_ID[t] for t in IMPLAUSIBLE])
    rows = []
    for name, part in (("input cannot stand there", corrupted & implausible),
                       ("input could stand there", corrupted & ~implausible), ("all corrupted positions", corrupted)):
        n = int(part.sum())
        if not n:
            rows.append((name, 0, 0.0, *[float("nan")] * 3))
            continue
        rows.append((name, n, n / max(int(corrupted.sum()), 1), float(np.mean(first[part] == tokens[part])),
                     float(np.mean(first[part] == targets[part])), recovery_accuracy(probs, tokens, targets, part)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", help="a pretraining save (directory or .pkl)")
    p.add_argument("--dataset", help="the pretraining HDF5 of that run")
    p.add_argument("--holdout", type=int, default=2000, help="held-out records at the file's end (as in the run)")
    p.add_argument("--records", type=int, default=1000, help="held-out records evaluated")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="the run's data seed")
    p.add_argument("--quick", action="store_true", help="a tiny random model on a dataset made from data/")
    args = p.parse_args(argv)
    if not args.quick and not (args.weights and args.dataset):
        p.error("give --weights and --dataset (or --quick)")
    _harness.print_header(weights=args.weights, dataset=args.dataset, holdout=args.holdout, records=args.records,
                          seq_len=args.seq_len, quick=args.quick)
    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.training.pretraining_metrics import recovery_baseline, unigram_baseline

    with tempfile.TemporaryDirectory(prefix="bench-corrupted-") as workdir:
        if args.quick:
            from proteinbert.model import ProteinBertBackbone

            dataset = PretrainingDataset(_harness.build_pretraining_dataset(Path(workdir)))
            arch = {**_harness.QUICK_ARCHITECTURE, "n_annotations": dataset.n_annotations}
            backbone, holdout, records = ProteinBertBackbone(**arch), 200, 200
        else:
            from proteinbert.weights import load_backbone

            dataset = PretrainingDataset(args.dataset)
            backbone, holdout, records = load_backbone(args.weights), args.holdout, args.records
        held, probs = heldout_probabilities(backbone, dataset, holdout, records, args.seq_len, args.seed)
    rows = corrupted_position_rows(held, probs)
    print("| corrupted positions | n | share | first guess = input token | accuracy | best guess other than the input |")
    print("|---|---|---|---|---|---|")
    for name, n, share, keeps, acc, other in rows:
        print(f"| {name} | {n} | {share:.3f} | {keeps:.3f} | {acc:.3f} | {other:.3f} |")
    from proteinbert.training.pretraining_metrics import position_masks

    corrupted, _ = position_masks(held.tokens, held.token_targets, held.token_weights)
    print(f"baselines at all corrupted positions: most frequent token "
          f"{unigram_baseline(held.token_targets[corrupted]):.3f}; most frequent other token "
          f"{recovery_baseline(held.tokens, held.token_targets, corrupted):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
