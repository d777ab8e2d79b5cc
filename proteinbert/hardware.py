"""What the machine can do fast: warnings before a setting that would be slow here, and CPU thread pools."""

from __future__ import annotations

import logging
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
