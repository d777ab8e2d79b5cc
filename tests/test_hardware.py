import logging
import os
import subprocess
import sys

import pytest

from proteinbert.hardware import cpu_flags, has_native_bfloat16, warn_if_bfloat16_is_slow

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_cpu_flags_parsing(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(AVX2)
    assert cpu_flags(info) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert cpu_flags(tmp_path / "absent") == set()


def test_bfloat16_detection_and_warning(tmp_path, caplog):
    # The tests hide GPUs (conftest), so only the CPU flags decide.
    plain, bf16 = tmp_path / "plain", tmp_path / "bf16"
    plain.write_text(AVX2)
    bf16.write_text(AVX2.replace("fma", "fma avx512f avx512_bf16"))
    assert not has_native_bfloat16(plain) and has_native_bfloat16(bf16)
    with caplog.at_level(logging.WARNING, logger="proteinbert.hardware"):
        assert warn_if_bfloat16_is_slow(plain)
        assert not warn_if_bfloat16_is_slow(bf16)
    assert len(caplog.records) == 1 and "avx512_bf16" in caplog.records[0].getMessage()


@pytest.mark.parametrize("preset, expected", [(None, "true"), ("false", "false")])
def test_import_selects_the_pooling_cpu_allocator_unless_told_otherwise(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if preset is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = preset
    code = "import os, proteinbert; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected


_HEAP_CYCLE = r"""
import ctypes, resource, proteinbert
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def cycle():  # 8 MiB in 64 KiB blocks: below the mmap threshold, so from the heap's top
    blocks = [libc.malloc(64 << 10) for _ in range(128)]
    for b in blocks:
        ctypes.memset(b, 1, 64 << 10)
    for b in reversed(blocks):
        libc.free(b)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("preset", [None, "0"])
def test_import_keeps_freed_heap_pages_unless_told_otherwise(preset):
    # Freed memory at the top of the heap stays mapped, so reusing it takes no page faults;
    # MALLOC_TOP_PAD_=0 in the environment (glibc's own setting) gives it back at once.
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
    if preset is not None:
        env["MALLOC_TOP_PAD_"] = preset
    done = subprocess.run([sys.executable, "-c", _HEAP_CYCLE], env=env, capture_output=True, text=True, check=True)
    faults = int(done.stdout.strip())
    if preset is None:
        assert faults < 200
    else:
        assert faults > 1500  # 2,048 pages of 4 KiB
