"""CPU memory settings: glibc malloc vs TensorFlow's pooling (BFC) allocator, and glibc's heap-top pad.

The commands (``proteinbert.hardware.tune_cpu_allocator()``, called at their start-up) set
``TF_CPU_ALLOCATOR_USE_BFC=true`` and glibc's ``M_TOP_PAD`` to 16 MiB unless
``TF_CPU_ALLOCATOR_USE_BFC`` / ``MALLOC_TOP_PAD_`` are set already. This script shows why.
It trains a fine-tuning network (the small fixture model, or ``--random-released-size``; virtual
padding to 512, as the default) on 32 x 80-token batches, fed the way fine-tuning feeds it: a
``tf.data`` generator. It then prints, per step, the wall time, the user and kernel CPU time,
the minor page faults, and the peak resident memory of the process, for three settings:

* glibc: ``TF_CPU_ALLOCATOR_USE_BFC=false`` (TensorFlow's tensors from malloc; 16 MiB pad);
* BFC, glibc pad: the pooling allocator, ``MALLOC_TOP_PAD_=131072`` (glibc's default pad; set
  explicitly it also fixes glibc's mmap threshold at its default);
* BFC, 16 MiB pad: what ``import proteinbert`` does.

Each setting runs in a fresh process, since both are read once. With ``--source tensors`` the
batches come from ``Dataset.from_tensors`` instead; that path shows the allocators do not differ
when no generator is involved.

    python benchmarks/cpu_allocator.py --steps 100 --repeats 3
    python benchmarks/cpu_allocator.py --random-released-size --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROTEINBERT_SHARED", REPO.parent / "shared"))


def measure(source: str, steps: int, repeats: int, length: int, weights: str | None) -> dict:
    """Run in the child process: per-step figures of ``repeats`` fits of ``steps`` steps each."""
    import resource
    import time

    from proteinbert.hardware import tune_cpu_allocator

    tune_cpu_allocator()  # as the commands do; the parent's environment decides what it may set
    import keras
    import numpy as np
    import tensorflow as tf

    from proteinbert.model import RELEASED_CONFIG, ProteinBertBackbone
    from proteinbert.training import finetuning as ft
    from proteinbert.training.jobs import load_backbone

    spec = ft.OutputSpec("global", "binary")
    if weights is None:
        keras.utils.set_random_seed(0)
        backbone = ProteinBertBackbone(**RELEASED_CONFIG)
    else:
        backbone = load_backbone(weights)
    model = ft.build_finetuning_model(backbone, spec, seed=0, virtual_pad_length=512)
    ft.compile_model(model, spec, 1e-4)
    rng = np.random.default_rng(0)
    n_annotations = model.inputs[1].shape[-1]
    batches = [((rng.integers(3, 23, (32, length)).astype("int32"), np.zeros((32, n_annotations), "float32")),
                rng.integers(0, 2, (32, 1)).astype("float32")) for _ in range(8)]
    if source == "generator":
        def generate():
            while True:
                for (tokens, annotations), y in batches:
                    # Fresh arrays each time, as fine-tuning's generator makes them.
                    yield (tokens.copy(), annotations.copy()), y.copy()

        signature = ((tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, n_annotations), tf.float32)),
                     tf.TensorSpec((None, 1), tf.float32))
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)
    else:
        dataset = tf.data.Dataset.from_tensors(batches[0]).repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # tracing
    rows = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"ms_per_step": 1e3 * wall / steps,
                     "user_ms": 1e3 * (after.ru_utime - before.ru_utime) / steps,
                     "sys_ms": 1e3 * (after.ru_stime - before.ru_stime) / steps,
                     "page_faults": (after.ru_minflt - before.ru_minflt) / steps})
    return {"rows": rows, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(argv: list, env: dict) -> dict | None:
    """Run a ``--child`` invocation; its result, or None (after echoing its stderr tail) if it failed."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        sys.stderr.write(done.stderr[-3000:])
        return None
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=int, default=80, help="padded batch length (tokens)")
    parser.add_argument("--source", choices=("generator", "tensors"), default="generator")
    parser.add_argument("--weights", default=str(SHARED / "fixtures" / "small_lamb.pkl"))
    parser.add_argument("--random-released-size", action="store_true",
                        help="instead of --weights: the released architecture with random weights")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = measure(args.source, args.steps, args.repeats, args.length,
                         None if args.random_released_size else args.weights)
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        return 0
    model = "released size, random" if args.random_released_size else Path(args.weights).name
    print(f"fine-tuning train step ({model}), 32 x {args.length} tokens, batches from {args.source}; "
          f"{args.repeats} x {args.steps} steps per setting")
    print(f"{'setting':>18} {'ms/step':>8} {'user ms':>8} {'sys ms':>7} {'faults':>7}  peak RSS")
    settings = {"glibc": ("false", None), "BFC, glibc pad": ("true", "131072"), "BFC, 16 MiB pad": ("true", None)}
    for name, (bfc, top_pad) in settings.items():
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
        env.update(TF_CPU_ALLOCATOR_USE_BFC=bfc, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
        if top_pad is not None:
            env["MALLOC_TOP_PAD_"] = top_pad
        child = [sys.executable, __file__, "--child", "--steps", str(args.steps),
                 "--repeats", str(args.repeats), "--length", str(args.length), "--source", args.source,
                 "--weights", args.weights] + (["--random-released-size"] if args.random_released_size else [])
        result = run_child(child, env)
        if result is None:
            return 1
        for row in result["rows"]:
            print(f"{name:>18} {row['ms_per_step']:8.1f} {row['user_ms']:8.1f} {row['sys_ms']:7.1f} "
                  f"{row['page_faults']:7.0f}  {result['max_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
