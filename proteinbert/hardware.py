"""What the machine can do fast: warnings before a setting that would be slow here, CPU thread pools,
and the CPU allocator tuning the commands apply (:func:`tune_cpu_allocator`)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .errors import InputError

logger = logging.getLogger(__name__)

# CPU flags (as /proc/cpuinfo names them) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags listed in ``cpuinfo`` (empty where the file is absent, e.g. not Linux).

    >>> import pathlib, tempfile
    >>> info = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    >>> _ = info.write_text("flags : fpu avx2 fma")
    >>> sorted(cpu_flags(info))
    ['avx2', 'fma', 'fpu']
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_native_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True if a GPU is visible to TensorFlow or the CPU has bfloat16 instructions."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    return any(flag in cpu_flags(cpuinfo) for flag in BF16_CPU_FLAGS)


def warn_if_bfloat16_is_slow(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Log a warning (and return True) when mixed bfloat16 would run emulated, i.e. slower than float32."""
    if has_native_bfloat16(cpuinfo):
        return False
    logger.warning(
        "mixed bfloat16 requested, but this machine has no GPU and no native bfloat16 CPU instructions (%s): "
        "TensorFlow emulates it, which measured 0.7x float32 speed for inference and 6x slower training "
        "on an AVX2 CPU. Leave mixed precision off here.", "/".join(BF16_CPU_FLAGS))
    return True


def set_cpu_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's two CPU thread pools; call it before TensorFlow runs its first operation.

    ``intra_op`` threads split one operation (a matrix product) between them; ``inter_op`` threads
    run independent operations side by side. TensorFlow's default sizes both to the core count,
    which suits large operations. A fine-tuning step on short batches is many small operations,
    and handing each one to several threads costs more than it saves: on a 2-core CPU, the test
    model's training step at 32 x 80 tokens took 13.4 ms with ``intra_op=1, inter_op=2`` against
    19 ms by default, with no loss at 32 x 512 tokens or at the released model's size. On many
    cores, ``intra_op=1`` would leave the large products of long batches on one core: measure
    (``benchmarks/cpu_threads.py``, ``benchmarks/finetune_speed.py --threads``) before adopting it.

    Raises :class:`~proteinbert.errors.InputError` for counts below 1, and when TensorFlow already
    runs with other pool sizes (they cannot change after its first operation).

    >>> set_cpu_threads(0, 2)
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: intra_op must be an integer >= 1. Received: 0
    """
    for name, value in (("intra_op", intra_op), ("inter_op", inter_op)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be an integer >= 1. Received: {value!r}")
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # TensorFlow refuses a change once its runtime has started
        current = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
        raise InputError(
            f"CPU threads intra_op={intra_op}, inter_op={inter_op} requested after TensorFlow started with "
            f"intra_op={current[0]}, inter_op={current[1]} (0: one per core); set them before the first "
            "TensorFlow operation, e.g. first thing in the script") from None
    logger.info("TensorFlow CPU threads: %d within an operation, %d operations at once", intra_op, inter_op)


#: glibc's M_TOP_PAD (see :func:`pad_malloc_heap_top`).
MALLOC_TOP_PAD_BYTES = 16 << 20


def pad_malloc_heap_top(pad_bytes: int = MALLOC_TOP_PAD_BYTES) -> bool:
    """Have glibc keep ``pad_bytes`` free at the top of each malloc heap; True if it was set.

    Eigen's matrix-product packing buffers bypass TensorFlow's allocator. glibc gives the freed
    top of a heap back to the kernel at once (128 KiB kept), so the next product faults its pages
    in again. Keeping 16 MiB cut a fine-tuning step of the released-size model at 32 x 80 tokens
    from 1.26 to 1.04-1.10 s of CPU and from 30k to about 1k page faults; peak memory grew 1.5 %
    (benchmarks/cpu_allocator.py --random-released-size). An explicit ``MALLOC_TOP_PAD_`` in the
    environment wins; other C libraries are left alone.
    """
    if "MALLOC_TOP_PAD_" in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-2, int(pad_bytes)))  # -2: M_TOP_PAD
    except (OSError, AttributeError):
        return False


def tune_cpu_allocator() -> None:
    """Process-wide CPU memory settings for fast TensorFlow training; call before TensorFlow starts.

    The ``proteinbert`` commands call it at start-up; importing the package never does, since it
    changes the whole process (a notebook kernel shared with other libraries, say). Two settings,
    each left alone where the environment sets it explicitly:

    * ``TF_CPU_ALLOCATOR_USE_BFC=true``: TensorFlow's CPU tensors otherwise come straight from
      glibc malloc. Fed from a tf.data generator, a fine-tuning step then maps fresh pages for its
      large buffers every time (17,000 page faults a step, half the step in the kernel, steps
      1.5-2x slower; see benchmarks/cpu_allocator.py). TensorFlow's pooling allocator reuses them.
      TensorFlow reads it when it makes its first tensor, so it only helps before that.
    * glibc's ``M_TOP_PAD`` of 16 MiB (:func:`pad_malloc_heap_top`).
    """
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    pad_malloc_heap_top()


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN operations here (``TF_ENABLE_ONEDNN_OPTS``, or its CPU default)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


# Warn once per process (library calls repeat the guard).
_warned = False


def _warn_once(message: str, *args) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(message, *args)


def guard_onednn_concurrency() -> bool:
    """Run one TensorFlow operation at a time when oneDNN is on; True if this call changed it.

    With oneDNN on, TensorFlow 2.21 corrupts memory at random when two operations run side by
    side while they make oneDNN primitives for shapes not seen before: NaN losses, garbage shapes
    in a ``Reshape``, segfaults, glibc heap aborts with its pooling allocator off. Pretraining
    with a new sequence length at every step failed in 5 of 30 runs; with one inter-op thread,
    0 of 30, as with oneDNN off (``benchmarks/onednn_race.py``). Operations still use every core
    each (``intra_op``); only their side-by-side scheduling goes.

    Leaves alone a pool size set explicitly (logging a warning when it is above 1), and a
    process whose TensorFlow runtime has already started (warning once: it can no longer change).
    The commands call it first; so do :func:`~proteinbert.weights.load_backbone`, pretraining,
    fine-tuning and embedding, which protects a script whose first TensorFlow work is one of them.
    Set ``TF_ENABLE_ONEDNN_OPTS=0`` to run operations side by side safely.
    """
    import tensorflow as tf

    if not onednn_enabled():
        return False
    threading = tf.config.threading
    current = threading.get_inter_op_parallelism_threads()
    if current == 1:
        return False
    if current > 1:
        _warn_once(
            "TensorFlow runs %d operations at once with oneDNN on: this corrupts memory at random in "
            "TensorFlow 2.21 (NaN losses, crashes). Use --threads INTRA,1 or TF_ENABLE_ONEDNN_OPTS=0.", current)
        return False
    try:
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime has started: pools are fixed
        _warn_once(
            "TensorFlow started before proteinbert could limit it to one operation at a time; with oneDNN on "
            "this can corrupt memory at random (NaN losses, crashes). Call "
            "proteinbert.hardware.guard_onednn_concurrency() first thing, or set TF_ENABLE_ONEDNN_OPTS=0.")
        return False
    logger.debug("oneDNN is on: TensorFlow runs one operation at a time (each on every core)")
    return True
