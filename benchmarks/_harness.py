"""What the benchmark scripts share: timing, peak memory, synthetic inputs, the machine/version
header every result starts with, and the two workloads more than one script runs.

Scripts import it as ``import _harness`` (``python benchmarks/x.py`` puts this folder first on
``sys.path``). At module level it imports only the standard library and numpy, so that
``baseline_keras2.py`` can use it from a TensorFlow 2.15 environment, where ``proteinbert`` (which
needs Keras 3) does not import. TensorFlow, Keras and ``proteinbert`` are imported inside the
functions that need them.

>>> tokens, annotations = synthetic_inputs(2, 5, n_annotations=3)
>>> tokens.shape, tokens.dtype.name, annotations.shape
((2, 5), 'int32', (2, 3))
>>> best_time(lambda: None, repeats=3) >= 0
True
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Files the repository ships (a 2,000-protein Swiss-Prot sample with GO annotations, the 2019 GO).
DATA = REPO / "data"

#: The released model's annotation count: the default input width of the model-speed scripts.
N_ANNOTATIONS = 8943
#: Residue and special-token ids drawn by :func:`synthetic_inputs` (0..24; 25 is ``<PAD>``).
N_NON_PAD_TOKENS = 25
#: The architecture ``--quick`` runs use: small enough that a training step takes milliseconds.
QUICK_ARCHITECTURE = dict(n_annotations=16, d_seq=16, d_global=32, n_blocks=2, n_heads=2, d_key=8)

#: /proc/cpuinfo flags worth naming in a result: wide vectors and native bfloat16.
REPORTED_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

#: The prefix of the one stdout line a ``--child`` process reports its result on.
RESULT_PREFIX = "RESULT "


# -- inputs ---------------------------------------------------------------------------------------
def synthetic_inputs(batch: int, length: int, n_annotations: int = N_ANNOTATIONS, seed: int = 0):
    """Random token ids (no ``<PAD>``) and a sparse 0/1 annotation matrix (0.1 % ones), seeded.

    >>> t, a = synthetic_inputs(1, 4, n_annotations=2, seed=1)
    >>> bool((t < N_NON_PAD_TOKENS).all()), sorted(set(a.ravel().tolist())) <= [0.0, 1.0]
    (True, True)
    """
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, N_NON_PAD_TOKENS, size=(batch, length), dtype=np.int32)
    annotations = (rng.random((batch, n_annotations)) < 0.001).astype("float32")
    return tokens, annotations


# -- timing ---------------------------------------------------------------------------------------
def call_times(fn, repeats: int) -> list[float]:
    """Wall seconds of each of ``repeats`` calls of ``fn()`` (warm it up first: nothing is discarded).

    >>> len(call_times(lambda: None, 4))
    4
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls, in seconds: on a shared machine the least disturbed one."""
    return min(call_times(fn, repeats))


def median_time(fn, repeats: int) -> float:
    """Median of ``repeats`` calls, in seconds: the typical call, disturbances included."""
    return statistics.median(call_times(fn, repeats))


def wall_and_cpu_ms(fn, calls: int) -> tuple[float, float]:
    """Wall and CPU (user + system, all threads) milliseconds per call, over ``calls`` calls in a row.

    >>> wall, cpu = wall_and_cpu_ms(lambda: sum(range(1000)), 10)
    >>> wall >= 0 and cpu >= 0
    True
    """
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return 1e3 * (time.perf_counter() - start) / calls, 1e3 * cpu / calls


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Reads ``VmHWM`` from /proc/self/status: ``getrusage``'s ``ru_maxrss`` would also count the
    parent's memory at the fork (Linux carries it across exec). Falls back to ``ru_maxrss``
    where /proc is absent.

    >>> peak_rss_mb() > 0
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the machine ----------------------------------------------------------------------------------
def _cpuinfo_fields(cpuinfo: Path) -> tuple[str | None, set[str]]:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None, set()
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / Arm
            flags = set(value.split())
    return model, flags


def _lscpu_model() -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return None


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU model and the :data:`REPORTED_CPU_FLAGS` it has.

    >>> import pathlib, tempfile
    >>> info = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    >>> _ = info.write_text("model name : Some CPU\\nflags : fpu avx2 fma avx512f\\n")
    >>> cpu_description(info)
    {'cpu': 'Some CPU', 'cpu_flags': ['avx2', 'fma', 'avx512f']}
    """
    model, flags = _cpuinfo_fields(Path(cpuinfo))
    model = model or _lscpu_model() or platform.processor() or platform.machine()
    return {"cpu": model, "cpu_flags": [f for f in REPORTED_CPU_FLAGS if f in flags]}


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN operations in this process; None without TensorFlow.

    The same query as ``proteinbert.hardware.onednn_enabled``, made here because this module must
    also work where ``proteinbert`` does not import (the TensorFlow 2.15 baseline). It imports
    TensorFlow but starts no TensorFlow runtime, so thread pools can still be set afterwards.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine_header(**extra) -> dict:
    """Date, CPU, cores, oneDNN and library versions: what a figure needs to be compared later.

    ``extra`` fields (the script's own settings) are added at the end. Imports TensorFlow and Keras
    when they are installed (no TensorFlow operation runs).
    """
    header = {"date": time.strftime("%Y-%m-%d %H:%M"), **cpu_description(), "cores": os.cpu_count(),
              "onednn": onednn_enabled(), "python": platform.python_version(), "numpy": np.__version__,
              "tensorflow": _version("tensorflow"), "keras": _version("keras")}
    try:
        import keras

        header["keras_backend"] = keras.backend.backend()
    except (ImportError, AttributeError):  # no Keras, or Keras 2 (no backend() there)
        header["keras_backend"] = None
    header.update(extra)
    return header


def header_line(header: dict) -> str:
    """One human-readable line for text tables, starting with ``#``.

    >>> header_line({"date": "2026-12-01 10:00", "cpu": "X", "cpu_flags": ["avx2"], "cores": 2,
    ...              "onednn": True, "tensorflow": "2.21.0", "keras": "3.15.1", "keras_backend": "tensorflow",
    ...              "python": "3.11.9", "numpy": "2.4.6"})
    '# 2026-12-01 10:00 | X, 2 cores, flags avx2 | oneDNN on | TensorFlow 2.21.0, Keras 3.15.1 (tensorflow), Python 3.11.9, numpy 2.4.6'
    """
    onednn = {True: "on", False: "off", None: "n/a"}[header.get("onednn")]
    backend = f" ({header['keras_backend']})" if header.get("keras_backend") else ""
    line = (f"# {header['date']} | {header['cpu']}, {header['cores']} cores, "
            f"flags {' '.join(header['cpu_flags']) or 'none of ' + '/'.join(REPORTED_CPU_FLAGS)} | "
            f"oneDNN {onednn} | TensorFlow {header.get('tensorflow')}, Keras {header.get('keras')}{backend}, "
            f"Python {header['python']}, numpy {header['numpy']}")
    known = {"date", "cpu", "cpu_flags", "cores", "onednn", "tensorflow", "keras", "keras_backend", "python", "numpy"}
    rest = {k: v for k, v in header.items() if k not in known}
    return line + ("".join(f" | {k} {v}" for k, v in rest.items()))


def print_header(as_json: bool = False, **extra) -> dict:
    """Print :func:`machine_header` first thing in a result: a JSON line (``section: machine``) for
    the scripts that print JSON lines, else :func:`header_line`. Returns the header."""
    header = machine_header(**extra)
    print(json.dumps({"section": "machine", **header}) if as_json else header_line(header), flush=True)
    return header


# -- child processes ------------------------------------------------------------------------------
def emit_result(result) -> None:
    """Report a ``--child`` process's result to :func:`run_result_child` (one stdout line)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_result_child(argv: list, env: dict | None = None):
    """Run a child process that ends with :func:`emit_result`; its result, or None (after echoing
    the tail of its stderr) when it failed or reported nothing. Runs from the repository root."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    line = next((x for x in done.stdout.splitlines() if x.startswith(RESULT_PREFIX)), None)
    if done.returncode != 0 or line is None:
        sys.stderr.write(f"child {argv[1:]} exited with {done.returncode}:\n{done.stderr[-3000:]}")
        return None
    return json.loads(line[len(RESULT_PREFIX):])


# -- shared workloads -----------------------------------------------------------------------------
def build_pretraining_dataset(workdir: str | Path, min_records: int = 20) -> Path:
    """A pretraining HDF5 (``workdir/ds.h5``) from the 2,000 proteins in ``data/``, by the
    ``create_dataset`` command; GO terms kept where at least ``min_records`` proteins have them."""
    dataset = Path(workdir) / "ds.h5"
    cmd = [sys.executable, "-m", "proteinbert.cli.create_dataset", "--fasta", str(DATA / "sp2014_go.2k.fasta.gz"),
           "--go-tsv", str(DATA / "sp2014_go.2k.go.tsv.gz"), "--go-obo", str(DATA / "go-2019-01-27.obo.gz"),
           "-o", str(dataset), "--min-records", str(min_records), "-q"]
    subprocess.run(cmd, check=True, cwd=REPO)
    return dataset


def finetune_step_figures(source: str, steps: int, repeats: int, length: int, weights: str | None = None,
                          architecture: dict | None = None) -> dict:
    """Per-step figures of ``repeats`` fits of ``steps`` fine-tuning steps (32 sequences of ``length``).

    The fine-tuning network (binary global head, virtual padding to 512, the default) over a
    backbone from ``weights`` (released format), else a seeded random one of ``architecture``
    (default: the released architecture). ``source``: ``"generator"`` feeds it the way fine-tuning
    does (a ``tf.data`` generator that makes fresh arrays), ``"tensors"`` from
    ``Dataset.from_tensors``. Returns ``{"rows": [{ms_per_step, user_ms, sys_ms, page_faults}],
    "max_rss_mb": ...}``.

    Run it in a fresh process whose allocator and thread settings are the ones being measured
    (they are read once, when TensorFlow starts); it calls ``tune_cpu_allocator()`` as the
    commands do, which leaves explicit environment settings alone.
    """
    from proteinbert.hardware import tune_cpu_allocator

    tune_cpu_allocator()
    import keras
    import tensorflow as tf

    from proteinbert.model import RELEASED_CONFIG, ProteinBertBackbone
    from proteinbert.training import finetuning as ft
    from proteinbert.training.jobs import load_backbone

    spec = ft.OutputSpec("global", "binary")
    if weights is None:
        keras.utils.set_random_seed(0)
        backbone = ProteinBertBackbone(**(architecture or RELEASED_CONFIG))
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
    return {"rows": rows, "max_rss_mb": peak_rss_mb()}


def add_finetune_model_options(parser) -> None:
    """``--weights``, ``--random-released-size`` and ``--quick``: the backbone of
    :func:`finetune_step_figures` (``cpu_allocator.py`` and ``cpu_threads.py`` time the same step)."""
    parser.add_argument("--weights", default=os.environ.get("PROTEINBERT_WEIGHTS"),
                        help="released-format weights (default: $PROTEINBERT_WEIGHTS)")
    parser.add_argument("--random-released-size", action="store_true",
                        help="instead of --weights: the released architecture with random weights")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: a tiny random model (no --weights needed), 3 steps, 1 repeat, 16 tokens")


def resolve_finetune_model(parser, args) -> tuple[str, list]:
    """(the model's name for the table, the options that pass it on to a ``--child``).

    ``--quick`` also sets ``args.steps``, ``args.repeats`` and ``args.length`` (and ``args.lengths``
    where the script has it) to tiny values. Naming no model, or a missing weights file, is a
    usage error (exit 2) naming the option.
    """
    if args.quick:
        args.steps, args.repeats, args.length = 3, 1, 16
        if hasattr(args, "lengths"):
            args.lengths = "16"
        return "tiny random", ["--quick"]
    if args.random_released_size:
        return "released size, random", ["--random-released-size"]
    if not args.weights:
        parser.error("give --weights (or set PROTEINBERT_WEIGHTS), --random-released-size or --quick")
    if not Path(args.weights).is_file():
        parser.error(f"--weights {args.weights}: no such file")
    return Path(args.weights).name, ["--weights", args.weights]


def finetune_model_kwargs(args) -> dict:
    """:func:`finetune_step_figures`'s model arguments, in a ``--child`` given the options above."""
    if args.quick:
        return {"architecture": QUICK_ARCHITECTURE}
    if args.random_released_size:
        return {}
    return {"weights": args.weights}


# -- results --------------------------------------------------------------------------------------
def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically: a reader (or a crash) never leaves a
    half-written file under that name (``proteinbert.io_utils.atomic_write_path``)."""
    from proteinbert.io_utils import atomic_write_path

    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))
