"""CPU memory settings: glibc malloc vs TensorFlow's pooling (BFC) allocator, and glibc's heap-top pad.

The commands (``proteinbert.hardware.tune_cpu_allocator()``, called at their start-up) set
``TF_CPU_ALLOCATOR_USE_BFC=true`` and glibc's ``M_TOP_PAD`` to 16 MiB unless
``TF_CPU_ALLOCATOR_USE_BFC`` / ``MALLOC_TOP_PAD_`` are set already. This script shows why.
It trains a fine-tuning network (the model in ``--weights``, or ``--random-released-size``; virtual
padding to 512, as the default) on 32 x 80-token batches, fed the way fine-tuning feeds it: a
``tf.data`` generator. It then prints, per step, the wall time, the user and kernel CPU time,
the minor page faults, and the peak resident memory of the process, for three settings:

* glibc: ``TF_CPU_ALLOCATOR_USE_BFC=false`` (TensorFlow's tensors from malloc; 16 MiB pad);
* BFC, glibc pad: the pooling allocator, ``MALLOC_TOP_PAD_=131072`` (glibc's default pad; set
  explicitly it also fixes glibc's mmap threshold at its default);
* BFC, 16 MiB pad: what the commands do.

Each setting runs in a fresh process, since both are read once. With ``--source tensors`` the
batches come from ``Dataset.from_tensors`` instead; that path shows the allocators do not differ
when no generator is involved.

    python benchmarks/cpu_allocator.py --weights small_lamb.pkl --steps 100 --repeats 3
    python benchmarks/cpu_allocator.py --random-released-size --steps 10 --repeats 3
    python benchmarks/cpu_allocator.py --quick     # seconds: a tiny random model, 3 steps

``--weights`` defaults to ``$PROTEINBERT_WEIGHTS``.
"""

from __future__ import annotations

import argparse
import os
import sys

import _harness

SETTINGS = {"glibc": ("false", None), "BFC, glibc pad": ("true", "131072"), "BFC, 16 MiB pad": ("true", None)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=int, default=80, help="padded batch length (tokens)")
    parser.add_argument("--source", choices=("generator", "tensors"), default="generator")
    _harness.add_finetune_model_options(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _harness.emit_result(_harness.finetune_step_figures(args.source, args.steps, args.repeats, args.length,
                                                            **_harness.finetune_model_kwargs(args)))
        return 0
    name, model = _harness.resolve_finetune_model(parser, args)
    _harness.print_header(model=name)
    print(f"fine-tuning train step ({name}), 32 x {args.length} tokens, batches from {args.source}; "
          f"{args.repeats} x {args.steps} steps per setting")
    print(f"{'setting':>18} {'ms/step':>8} {'user ms':>8} {'sys ms':>7} {'faults':>7}  peak RSS")
    for setting, (bfc, top_pad) in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
        env.update(TF_CPU_ALLOCATOR_USE_BFC=bfc, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
        if top_pad is not None:
            env["MALLOC_TOP_PAD_"] = top_pad
        child = [sys.executable, __file__, "--child", "--steps", str(args.steps), "--repeats", str(args.repeats),
                 "--length", str(args.length), "--source", args.source, *model]
        result = _harness.run_result_child(child, env)
        if result is None:
            return 1
        for row in result["rows"]:
            print(f"{setting:>18} {row['ms_per_step']:8.1f} {row['user_ms']:8.1f} {row['sys_ms']:7.1f} "
                  f"{row['page_faults']:7.0f}  {result['max_rss_mb']:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
