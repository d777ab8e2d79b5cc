"""Process-level tuning that TensorFlow on CPU needs to run at full speed.

glibc returns every freed block above its mmap threshold (32 MB at most by default) to the OS
and maps it again on the next allocation, so each large activation tensor pays for fresh page
faults: elementwise ops on (32, 512, 512) float32 ran 4-6x slower here (see
``benchmarks/throughput.py``). Raising the thresholds keeps large blocks in the heap for reuse.
Set ``PROTEINBERT_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; returns whether it applied."""
    global _done
    if _done:
        return True
    if os.environ.get("PROTEINBERT_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    _done = ok
    logger.debug("glibc malloc thresholds raised: %s", ok)
    return ok
