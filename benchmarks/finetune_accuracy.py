"""Fine-tuning accuracy of the padding modes on the 2021 demo notebook's signal-peptide recipe.

The recipe, through the 2021 API (``load_pretrained_model`` → ``FinetuningModelGenerator`` with
``get_model_with_hidden_layers_as_outputs`` and dropout 0.5 → ``finetune`` → ``evaluate_by_len``):
3,000 training records sampled from ``signalP_binary.train.csv`` (10 % held out for validation,
stratified), 400 test records from ``signalP_binary.test.csv``; ``seq_len=128``, ``batch_size=32``,
6 epochs per stage at most, lr 1e-4 (frozen stage 1e-2), one final epoch at length 256 at 1e-5,
ReduceLROnPlateau(patience=1, factor=0.25, min_lr=1e-5) + EarlyStopping(patience=2). Per seed,
``keras.utils.set_random_seed(seed)`` first and ``finetune(..., seed=seed)`` (batch order). The data
sample is the same for every seed.

Modes (``--modes``):

* ``default``: nothing passed beyond the recipe (whatever the library's defaults are).
* ``fixed``: ``padding="fixed"``, no virtual padding, evaluation with ``padding="model_len"``
  (every record padded to its model length, as the 2021 code did).
* ``bucket``: length buckets with virtual padding to 512, evaluation in buckets.
* ``bucket-seqlen``: length buckets with virtual padding to the recipe's ``seq_len`` (128).
* ``2021``: the 2021 package itself, run by ``--keras2-python`` (an interpreter whose environment
  holds ``protein-bert`` 1.0.1 and TensorFlow 2.15, as for ``baseline_keras2.py``): this script
  runs there as a subprocess, importing that package (no ``seed=``: it has none).

Results go to ``--out`` (JSON) after every run; a re-run skips the (mode, seed) pairs already
there. Prints a table of mean ± sd test AUC and mean wall time per mode.

    PROTEINBERT_BENCHMARKS=/path/to/protein_benchmarks PROTEINBERT_WEIGHTS=/path/to/small_lamb.pkl \\
        python benchmarks/finetune_accuracy.py --seeds 0-7 --modes default,fixed,bucket --out acc.json
    python benchmarks/finetune_accuracy.py --quick --data-dir ... --weights ...   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import _harness  # noqa: E402

MODES = ("default", "fixed", "bucket", "bucket-seqlen", "2021")
RECIPE = dict(n_train=3000, n_test=400, valid_fraction=0.1, seq_len=128, batch_size=32, max_epochs_per_stage=6,
              lr=1e-4, lr_with_frozen_pretrained_layers=1e-2, n_final_epochs=1, final_seq_len=256, final_lr=1e-5)
QUICK = dict(RECIPE, n_train=300, n_test=100, max_epochs_per_stage=1)
DATA_SEED = 0  # the record sample, the same for every training seed


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def load_data(data_dir: Path, recipe: dict):
    import pandas as pd
    from sklearn.model_selection import train_test_split

    train = pd.read_csv(data_dir / "signalP_binary.train.csv").sample(recipe["n_train"], random_state=DATA_SEED)
    test = pd.read_csv(data_dir / "signalP_binary.test.csv").sample(recipe["n_test"], random_state=DATA_SEED)
    train, valid = train_test_split(train, test_size=recipe["valid_fraction"], stratify=train["label"],
                                    random_state=DATA_SEED)
    return train, valid, test


def legacy_architecture(weights: Path) -> dict:
    """The 2021 ``create_model`` keyword arguments for a released-format file: the 2021 loader
    builds the released sizes unless told, while ours reads the sizes off the file."""
    from proteinbert.weights.pkl import read_pkl
    from proteinbert.weights.released import infer_architecture

    arch = infer_architecture(read_pkl(weights), str(weights))
    return dict(d_hidden_seq=arch["d_seq"], d_hidden_global=arch["d_global"], n_blocks=arch["n_blocks"],
                n_heads=arch["n_heads"], d_key=arch["d_key"], conv_kernel_size=arch["conv_kernel_size"])


def run_recipe(mode: str, seed: int, data_dir: Path, weights: Path, recipe: dict,
               legacy_arch: dict | None = None) -> dict:
    """One fine-tuning + evaluation; the 2021 API of whichever ``proteinbert`` is importable.

    Mode ``2021`` (the 2021 package) gets the file's sizes (``legacy_arch``) and the legacy Adam:
    on TensorFlow 2.15 its ``finetune`` fails with the default Adam (no ``get_weights``).
    """
    import keras
    from keras.callbacks import EarlyStopping, ReduceLROnPlateau
    from proteinbert import (FinetuningModelGenerator, OutputSpec, OutputType, evaluate_by_len, finetune,
                             load_pretrained_model)
    from proteinbert.conv_and_global_attention_model import get_model_with_hidden_layers_as_outputs

    train, valid, test = load_data(data_dir, recipe)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    loader_kwargs = {}
    if mode == "2021":
        loader_kwargs = dict(create_model_kwargs=legacy_arch or {}, optimizer_class=keras.optimizers.legacy.Adam)
    pretrained_model_generator, input_encoder = load_pretrained_model(
        local_model_dump_dir=str(weights.parent), local_model_dump_file_name=weights.name, **loader_kwargs)
    output_spec = OutputSpec(OutputType(False, "binary"), [0, 1])
    generator_kwargs, finetune_kwargs, eval_kwargs = {}, {}, {}
    if mode != "2021":
        finetune_kwargs["seed"] = seed
    if mode == "fixed":
        generator_kwargs["virtual_pad_length"] = None
        finetune_kwargs["padding"] = "fixed"
        eval_kwargs["padding"] = "model_len"
    elif mode in ("bucket", "bucket-seqlen"):
        generator_kwargs["virtual_pad_length"] = 512 if mode == "bucket" else recipe["seq_len"]
        finetune_kwargs["padding"] = "bucket"
        eval_kwargs["padding"] = "bucket"
    model_generator = FinetuningModelGenerator(
        pretrained_model_generator, output_spec,
        pretraining_model_manipulation_function=get_model_with_hidden_layers_as_outputs, dropout_rate=0.5,
        **generator_kwargs)
    callbacks = [ReduceLROnPlateau(patience=1, factor=0.25, min_lr=1e-5, verbose=0),
                 EarlyStopping(patience=2, restore_best_weights=True)]
    finetune(model_generator, input_encoder, output_spec, train["seq"], train["label"], valid["seq"],
             valid["label"], seq_len=recipe["seq_len"], batch_size=recipe["batch_size"],
             max_epochs_per_stage=recipe["max_epochs_per_stage"], lr=recipe["lr"],
             begin_with_frozen_pretrained_layers=True,
             lr_with_frozen_pretrained_layers=recipe["lr_with_frozen_pretrained_layers"],
             n_final_epochs=recipe["n_final_epochs"], final_seq_len=recipe["final_seq_len"],
             final_lr=recipe["final_lr"], callbacks=callbacks, **finetune_kwargs)
    results, _ = evaluate_by_len(model_generator, input_encoder, output_spec, test["seq"], test["label"],
                                 start_seq_len=recipe["seq_len"], start_batch_size=recipe["batch_size"], **eval_kwargs)
    wall = time.perf_counter() - start
    auc = float(results.loc["All"].iloc[-1])
    import tensorflow as tf

    return {"mode": mode, "seed": seed, "auc": round(auc, 5), "wall_s": round(wall, 1), "tf": tf.__version__,
            "keras": keras.__version__}


def run_2021(python: str, seed: int, data_dir: Path, weights: Path, quick: bool, legacy_arch: dict) -> dict:
    """The recipe under another interpreter (its own ``proteinbert``), from a neutral directory."""
    cmd = [python, str(Path(__file__).resolve()), "--child", "2021", "--seeds", str(seed),
           "--data-dir", str(data_dir.resolve()), "--weights", str(weights.resolve()),
           "--child-architecture", json.dumps(legacy_arch)] + (["--quick"] if quick else [])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd="/", env=env)
    if out.returncode != 0:
        raise RuntimeError(f"the 2021 run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(runs: list[dict], modes) -> list[dict]:
    import numpy as np

    rows = []
    for mode in modes:
        mine = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["seed"])
        if not mine:
            continue
        auc = np.array([r["auc"] for r in mine])
        rows.append({"mode": mode, "n": len(mine), "mean": float(auc.mean()),
                     "sd": float(auc.std(ddof=1)) if len(auc) > 1 else float("nan"),
                     "min": float(auc.min()), "max": float(auc.max()),
                     "wall_s": float(np.mean([r["wall_s"] for r in mine])),
                     "per_seed": {r["seed"]: r["auc"] for r in mine}})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| mode | seeds | test AUC mean ± sd | min … max | wall s / run | per seed |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        per_seed = ", ".join(f"{s}: {a:.3f}" for s, a in r["per_seed"].items())
        lines.append(f"| {r['mode']} | {r['n']} | {r['mean']:.3f} ± {r['sd']:.3f} | {r['min']:.3f} … {r['max']:.3f} "
                     f"| {r['wall_s']:.0f} | {per_seed} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,2,5 (default 0-7)")
    p.add_argument("--modes", default="default,fixed,bucket", help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--data-dir", default=os.environ.get("PROTEINBERT_BENCHMARKS"),
                   help="directory holding signalP_binary.{train,test}.csv (default: $PROTEINBERT_BENCHMARKS)")
    p.add_argument("--weights", default=os.environ.get("PROTEINBERT_WEIGHTS"),
                   help="released-format .pkl (default: $PROTEINBERT_WEIGHTS)")
    p.add_argument("--keras2-python", help="interpreter of an environment holding the 2021 package (adds mode 2021)")
    p.add_argument("--out", help="results JSON, written after every run and read back to resume")
    p.add_argument("--quick", action="store_true", help="smoke test: 300 training records, 1 epoch per stage")
    p.add_argument("--child", choices=("2021",), help=argparse.SUPPRESS)
    p.add_argument("--child-architecture", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.data_dir or not args.weights:
        p.error("--data-dir and --weights are needed (or PROTEINBERT_BENCHMARKS / PROTEINBERT_WEIGHTS)")
    data_dir, weights = Path(args.data_dir), Path(args.weights)
    recipe = QUICK if args.quick else RECIPE
    seeds = parse_seeds(args.seeds)
    if args.child:
        print(json.dumps(run_recipe("2021", seeds[0], data_dir, weights, recipe, json.loads(args.child_architecture))))
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if args.keras2_python and "2021" not in modes:
        modes.append("2021")
    unknown = [m for m in modes if m not in MODES]
    if unknown or ("2021" in modes and not args.keras2_python):
        p.error(f"unknown modes {unknown}" if unknown else "mode 2021 needs --keras2-python")
    out = Path(args.out) if args.out else None
    state = {"runs": []}
    if out is not None and out.exists():
        state = json.loads(out.read_text())
    if state.get("quick", args.quick) != args.quick:
        p.error(f"{out} holds {'quick' if state['quick'] else 'full'} results; use another --out")
    done = {(r["mode"], r["seed"]) for r in state["runs"]}
    if any(m != "2021" for m in modes):
        from proteinbert.hardware import guard_onednn_concurrency

        guard_onednn_concurrency()  # before TensorFlow starts (clear_session starts it)
    header = _harness.print_header(quick=args.quick)
    state.update(quick=args.quick, recipe=recipe, machine=header["cpu"], n_cpus=header["cores"])
    state.setdefault("headers", []).append(header)  # one per invocation: a resumed file may span machines
    for mode in modes:
        for seed in seeds:
            if (mode, seed) in done:
                continue
            if mode == "2021":
                result = run_2021(args.keras2_python, seed, data_dir, weights, args.quick, legacy_architecture(weights))
            else:
                import keras

                keras.backend.clear_session()
                result = run_recipe(mode, seed, data_dir, weights, recipe)
            state["runs"].append(result)
            print(json.dumps(result), flush=True)
            if out is not None:
                _harness.write_json(out, state)
    rows = summary([r for r in state["runs"] if r["seed"] in seeds], modes)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
