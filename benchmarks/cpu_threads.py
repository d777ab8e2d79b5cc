"""TensorFlow's CPU thread pools (``--threads INTRA,INTER``) on a fine-tuning training step.

A fine-tuning step on short batches is thousands of small operations, and splitting each across
threads costs hand-offs. This script trains the fine-tuning network (the model in ``--weights``, or
``--random-released-size``) on ``tf.data``-fed batches of each ``--lengths`` for each thread
setting, every setting in a fresh process (the pools are fixed once TensorFlow starts), and prints
wall and CPU time a step. ``default`` is what the commands do: one operation at a time where
oneDNN is on (``proteinbert.hardware.guard_onednn_concurrency``), else TensorFlow's pools. The
step is ``benchmarks/cpu_allocator.py``'s (``_harness.finetune_step_figures``), with the commands'
allocator settings.

    python benchmarks/cpu_threads.py --weights small_lamb.pkl --lengths 80,512 --settings default,1:2,1:1 \\
        --steps 100 --repeats 3
    python benchmarks/cpu_threads.py --quick       # seconds: a tiny random model, 3 steps

``--weights`` defaults to ``$PROTEINBERT_WEIGHTS``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="80,512", help="padded batch lengths (tokens), comma-separated")
    parser.add_argument("--settings", default="default,1:2",
                        help="thread settings, comma-separated: 'default' or INTRA:INTER")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    _harness.add_finetune_model_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        setting, length = args.child.split("@")
        if setting == "default":
            from proteinbert.hardware import guard_onednn_concurrency

            guard_onednn_concurrency()  # as the commands do
        else:
            from proteinbert.hardware import set_cpu_threads

            set_cpu_threads(*(int(v) for v in setting.split(":")))
        result = _harness.finetune_step_figures("generator", args.steps, args.repeats, int(length),
                                                **_harness.finetune_model_kwargs(args))
        _harness.emit_result(result)
        return 0
    name, model = _harness.resolve_finetune_model(parser, args)
    _harness.print_header(model=name)
    print(f"fine-tuning train step ({name}), batch 32; {args.repeats} x {args.steps} steps per setting")
    print(f"{'tokens':>6} {'threads':>8} {'ms/step':>8} {'CPU ms':>7}")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    for length in args.lengths.split(","):
        for setting in args.settings.split(","):
            child = [sys.executable, __file__, "--child", f"{setting}@{length}", "--steps", str(args.steps),
                     "--repeats", str(args.repeats), *model]
            result = _harness.run_result_child(child, env)
            if result is None:
                return 1
            for row in result["rows"]:
                print(f"{length:>6} {setting:>8} {row['ms_per_step']:8.1f} {row['user_ms'] + row['sys_ms']:7.1f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
