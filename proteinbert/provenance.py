"""Where and with what a result was computed: the machine and the package versions, for result tables.

>>> isinstance(cpu_model(), str) and package_versions()["python"].count(".") == 2
True
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


# The vector units that decide training speed on a CPU, widest last. A model name alone does not
# say them: "AMD EPYC" covers both Zen 1 (AVX2) and Zen 4 (AVX-512, BF16), 2-3x apart in training speed.
_VECTOR_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))


def _cpuinfo_field(cpuinfo, key: str) -> str | None:
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() == key:
                return value.strip()
    except OSError:
        pass  # not Linux
    return None


def cpu_model(cpuinfo="/proc/cpuinfo") -> str:
    """The CPU's model name (from ``cpuinfo`` on Linux, else :mod:`platform`)."""
    return _cpuinfo_field(cpuinfo, "model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_vector_units(cpuinfo="/proc/cpuinfo") -> list:
    """The x86 vector extensions the CPU has, of AVX2, AVX-512, AVX512-BF16 and AMX ([] if unknown).

    >>> import pathlib, tempfile
    >>> info = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    >>> _ = info.write_text("model name : AMD EPYC\\nflags : fpu avx2 avx512f avx512_bf16\\n")
    >>> cpu_vector_units(info)
    ['AVX2', 'AVX-512', 'AVX512-BF16']
    """
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    return [label for flag, label in _VECTOR_FLAGS if flag in flags]


def gpu_names() -> list:
    """The names of the GPUs TensorFlow sees (starts TensorFlow)."""
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


def machine_summary() -> str:
    """``"<CPU model> (<n> cores, <vector units>)"``, plus the GPUs TensorFlow sees: where a row was
    computed, e.g. ``"AMD EPYC (2 cores, AVX2)"``."""
    gpus = gpu_names()
    cpu = ", ".join([f"{os.cpu_count()} cores", *cpu_vector_units()])
    return f"{cpu_model()} ({cpu})" + (f" + {', '.join(gpus)}" if gpus else "")


def package_versions() -> dict:
    """Python's and the main packages' versions, and the checkout's commit (``-dirty`` with uncommitted
    changes; None outside a git checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("proteinbert", "tensorflow", "keras", "numpy", "pandas", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        out["git_commit"] = rev.stdout.strip() if rev.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


__all__ = ["cpu_model", "cpu_vector_units", "gpu_names", "machine_summary", "package_versions"]
