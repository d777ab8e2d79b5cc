"""TensorFlow's CPU thread pools (``--threads INTRA,INTER``) on a fine-tuning training step.

TensorFlow sizes both pools to the core count by default. A fine-tuning step on short batches is
thousands of small operations, and splitting each across threads costs hand-offs. This script
trains the fine-tuning network (the small fixture model, or ``--random-released-size``) on
``tf.data``-fed batches of each ``--lengths`` for each thread setting, every setting in a fresh
process (the pools are fixed once TensorFlow starts), and prints wall and CPU time a step.
The step is ``benchmarks/cpu_allocator.py``'s, with the commands' allocator settings (tune_cpu_allocator).

    python benchmarks/cpu_threads.py --lengths 80,512 --settings default,1:2,1:1 --steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROTEINBERT_SHARED", REPO.parent / "shared"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="80,512", help="padded batch lengths (tokens), comma-separated")
    parser.add_argument("--settings", default="default,1:2",
                        help="thread settings, comma-separated: 'default' or INTRA:INTER")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default=str(SHARED / "fixtures" / "small_lamb.pkl"))
    parser.add_argument("--random-released-size", action="store_true",
                        help="instead of --weights: the released architecture with random weights")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    weights = None if args.random_released_size else args.weights
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cpu_allocator import measure, run_child

    if args.child:
        setting, length = args.child.split("@")
        if setting != "default":
            from proteinbert.hardware import set_cpu_threads

            set_cpu_threads(*(int(v) for v in setting.split(":")))
        result = measure("generator", args.steps, args.repeats, int(length), weights)
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        return 0
    model = "released size, random" if args.random_released_size else Path(args.weights).name
    print(f"fine-tuning train step ({model}), batch 32, {os.cpu_count()} CPU cores; "
          f"{args.repeats} x {args.steps} steps per setting")
    print(f"{'tokens':>6} {'threads':>8} {'ms/step':>8} {'CPU ms':>7}")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    for length in args.lengths.split(","):
        for setting in args.settings.split(","):
            child = [sys.executable, __file__, "--child", f"{setting}@{length}", "--steps", str(args.steps),
                     "--repeats", str(args.repeats), "--weights", args.weights]
            child += ["--random-released-size"] if args.random_released_size else []
            result = run_child(child, env)
            if result is None:
                return 1
            for row in result["rows"]:
                print(f"{length:>6} {setting:>8} {row['ms_per_step']:8.1f} {row['user_ms'] + row['sys_ms']:7.1f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
