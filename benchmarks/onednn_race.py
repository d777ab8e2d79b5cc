"""Does training corrupt memory at random? Many short runs of the commands, several at once.

TensorFlow 2.21 with its oneDNN operations on corrupts memory when two operations run side by
side while they make oneDNN primitives for shapes not seen before (NaN losses, garbage shapes in
a ``Reshape``, segfaults). The commands therefore run one operation at a time where oneDNN is on
(:func:`proteinbert.hardware.guard_onednn_concurrency`). This script counts failed runs:

* ``guarded``: the commands as they are;
* ``unguarded``: ``--threads CORES,2``, i.e. two operations at once, as TensorFlow's default does.

Workloads: ``pretrain`` (a tiny model, one length, 30 steps), ``lengths`` (pretraining with a new
sequence length at every step: the sensitive case, 60 steps) and ``finetune`` (a tiny fine-tuning
run with buckets; needs ``--weights`` and ``--finetune-csv``). Runs go ``--parallel`` at a time,
which also loads the machine. Results are appended to ``--out`` (JSON lines), so a later call
adds to the counts.

    python benchmarks/onednn_race.py --workloads lengths --modes guarded,unguarded --runs 30 --parallel 6
    python benchmarks/onednn_race.py --workloads pretrain --modes guarded --runs 200 --parallel 4 --onednn 1,0
    python benchmarks/onednn_race.py --quick    # 2 guarded runs of the lengths workload
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness

REPO = _harness.REPO
TINY = ["--d-seq", "32", "--d-global", "64", "--n-blocks", "2", "--n-heads", "4", "--d-key", "16"]


def pretrain_args(workload: str, dataset: Path, out: Path) -> list[str]:
    common = ["-m", "proteinbert.cli.pretrain", str(dataset), "-o", str(out), *TINY, "--seed", "5",
              "--eval-every", "0", "--no-progress", "--no-tensorboard"]
    if workload == "pretrain":  # the command of the original report
        return common + ["--episodes", "64:8", "--steps-per-epoch", "10", "--epochs", "3"]
    episodes = ",".join(f"{L}:8" for L in range(40, 160, 2))
    return common + ["--episodes", episodes, "--steps-per-episode", "1", "--steps-per-epoch", "10", "--epochs", "6"]


def finetune_args(csv: Path, weights: Path, out: Path) -> list[str]:
    return ["-m", "proteinbert.cli.finetune", "-i", str(csv), "--valid", str(csv), "--weights", str(weights),
            "-o", str(out), "--max-records", "300", "--max-epochs", "1", "--final-epochs", "1", "--seq-len", "128",
            "--padding", "bucket", "--seed", "0"]


def one_run(args: list[str], env: dict, timeout: float) -> dict:
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
        code, tail = proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1][:300]
    except subprocess.TimeoutExpired:
        code, tail = "timeout", ""
    return {"exit": code, "seconds": round(time.monotonic() - started, 1), "last_line": tail}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="lengths", help="comma-separated: pretrain, lengths, finetune")
    parser.add_argument("--modes", default="guarded,unguarded", help="comma-separated: guarded, unguarded")
    parser.add_argument("--onednn", default="1", help="TF_ENABLE_ONEDNN_OPTS values, comma-separated (1, 0)")
    parser.add_argument("--runs", type=int, default=30, help="runs per cell")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run counts as hung")
    parser.add_argument("--weights", default=os.environ.get("PROTEINBERT_WEIGHTS"), help="finetune: a .pkl")
    parser.add_argument("--finetune-csv", help="finetune: a CSV with columns seq,label (binary)")
    parser.add_argument("--out", type=Path, help="append one JSON line per cell here")
    parser.add_argument("--quick", action="store_true", help="2 runs of the lengths workload, guarded only")
    args = parser.parse_args(argv)
    if args.quick:
        args.workloads, args.modes, args.runs, args.parallel = "lengths", "guarded", 2, 2
    cores = os.cpu_count() or 1
    failures_total = 0
    with tempfile.TemporaryDirectory(prefix="onednn-race-") as tmp:
        workdir = Path(tmp)
        dataset = None
        print(f"{'workload':>9} {'oneDNN':>6} {'mode':>10} {'runs':>5} {'failed':>6} {'s/run':>6}  first failure")
        for workload in args.workloads.split(","):
            if workload in ("pretrain", "lengths") and dataset is None:
                dataset = _harness.build_pretraining_dataset(workdir, min_records=20)
            if workload == "finetune" and not (args.weights and args.finetune_csv):
                parser.error("the finetune workload needs --weights and --finetune-csv")
            for onednn in args.onednn.split(","):
                for mode in args.modes.split(","):
                    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2",
                               CUDA_VISIBLE_DEVICES="")
                    jobs = []
                    for i in range(args.runs):
                        out = workdir / f"{workload}-{onednn}-{mode}-{i}"
                        cmd = (finetune_args(Path(args.finetune_csv), Path(args.weights), out)
                               if workload == "finetune" else pretrain_args(workload, dataset, out))
                        if mode == "unguarded":
                            cmd += ["--threads", f"{cores},2"]
                        jobs.append(cmd)
                    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
                        results = list(pool.map(lambda c: one_run(c, env, args.timeout), jobs))
                    failed = [r for r in results if r["exit"] != 0]
                    failures_total += len(failed) if mode == "guarded" else 0
                    mean_s = sum(r["seconds"] for r in results) / max(len(results), 1)
                    first = failed[0]["last_line"] if failed else ""
                    print(f"{workload:>9} {onednn:>6} {mode:>10} {len(results):>5} {len(failed):>6} {mean_s:6.1f}  "
                          f"{first}", flush=True)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps({"workload": workload, "onednn": onednn, "mode": mode,
                                                "runs": len(results), "failed": len(failed), "parallel": args.parallel,
                                                "mean_seconds": round(mean_s, 1), "failures": failed,
                                                "date": time.strftime("%Y-%m-%d %H:%M")}) + "\n")
    return 1 if failures_total else 0


if __name__ == "__main__":
    sys.exit(main())
