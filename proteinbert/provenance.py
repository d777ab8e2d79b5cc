"""Where and with what a result was computed: the machine and the package versions, for result tables.

>>> isinstance(cpu_model(), str) and package_versions()["python"].count(".") == 2
True
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def cpu_model(cpuinfo="/proc/cpuinfo") -> str:
    """The CPU's model name (from ``cpuinfo`` on Linux, else :mod:`platform`)."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform's answer below
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_names() -> list:
    """The names of the GPUs TensorFlow sees (starts TensorFlow)."""
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


def machine_summary() -> str:
    """``"<CPU model> (<n> cores)"``, plus the GPUs TensorFlow sees: where a row was computed."""
    gpus = gpu_names()
    return f"{cpu_model()} ({os.cpu_count()} cores)" + (f" + {', '.join(gpus)}" if gpus else "")


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


__all__ = ["cpu_model", "gpu_names", "machine_summary", "package_versions"]
