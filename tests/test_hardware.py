import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from proteinbert.cli import embed as embed_cli
from proteinbert.cli import finetune as finetune_cli
from proteinbert.embedding_store import read_embeddings
from proteinbert.errors import InputError
from proteinbert.hardware import cpu_flags, has_native_bfloat16, set_cpu_threads, warn_if_bfloat16_is_slow

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
def test_tuning_selects_the_pooling_cpu_allocator_unless_told_otherwise(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if preset is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = preset
    code = ("import os, proteinbert, proteinbert.tokenizer; before = os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'); "
            "from proteinbert.hardware import tune_cpu_allocator; tune_cpu_allocator(); "
            "print(before, os.environ['TF_CPU_ALLOCATOR_USE_BFC'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(preset), expected]  # the import alone changes nothing


def test_the_command_entry_point_tunes_the_allocator():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "MALLOC_TOP_PAD_")}
    code = ("import os, sys; from proteinbert.cli import main; "
            "main.COMMANDS['probe'] = ('_probe', ''); sys.modules['proteinbert.cli._probe'] = type(sys)('p'); "
            "sys.modules['proteinbert.cli._probe'].main = lambda argv: print(os.environ['TF_CPU_ALLOCATOR_USE_BFC']) or 0; "
            "sys.exit(main.main(['probe']))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "true"


_HEAP_CYCLE = r"""
import ctypes, resource, sys, proteinbert.hardware
if sys.argv[1] == "tune":
    proteinbert.hardware.tune_cpu_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def cycle():  # 8 MiB in 64 KiB blocks: below the mmap threshold, so from the heap's top
    blocks = [0] * 128  # the list first, so that none of its own memory lands above the blocks
    for i in range(128):
        blocks[i] = libc.malloc(64 << 10)
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
@pytest.mark.parametrize("preset, tune", [(None, True), ("0", True), (None, False)])
def test_tuning_keeps_freed_heap_pages_unless_told_otherwise(preset, tune):
    # After tune_cpu_allocator(), freed memory at the top of the heap stays mapped, so reusing it
    # takes no page faults; MALLOC_TOP_PAD_=0 in the environment (glibc's own setting) gives it
    # back at once, and so does glibc when nothing was tuned (importing proteinbert tunes nothing).
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
    if preset is not None:
        env["MALLOC_TOP_PAD_"] = preset
    done = subprocess.run([sys.executable, "-c", _HEAP_CYCLE, "tune" if tune else "no"], env=env,
                          capture_output=True, text=True, check=True)
    faults = int(done.stdout.strip())
    if preset is None and tune:
        assert faults < 200
    else:
        assert faults > 1500  # 2,048 pages of 4 KiB


_EMBED_THEN_REPORT_THREADS = r"""
import sys
from proteinbert.cli import embed
rc = embed.main(sys.argv[1:])
import tensorflow as tf
print(rc, tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
"""


def _embed_argv(fixtures_dir, fasta, out):
    return ["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out)]


def test_threads_option_sizes_the_pools_before_tensorflow_starts(tmp_path, fixtures_dir):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p1\nMKVLAGHHEEKK\n>p2\n" + "ACDEFGHIKLMNPQRSTVWY" * 5 + "\n")
    threaded, default = tmp_path / "threaded.h5", tmp_path / "default.h5"
    argv = _embed_argv(fixtures_dir, fasta, threaded) + ["--threads", "1,2"]
    done = subprocess.run([sys.executable, "-c", _EMBED_THEN_REPORT_THREADS, *argv], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 1 2"  # exit code, intra, inter
    assert "TensorFlow CPU threads: 1 within an operation, 2 operations at once" in done.stderr
    # Thread counts change the speed, not the numbers (beyond float summation order).
    assert embed_cli.main(_embed_argv(fixtures_dir, fasta, default) + ["-q"]) == 0
    np.testing.assert_allclose(read_embeddings(threaded)["protein"], read_embeddings(default)["protein"],
                               rtol=1e-5, atol=1e-6)


def test_threads_after_tensorflow_started_is_a_clear_error(tmp_path, fixtures_dir, capsys):
    import tensorflow as tf

    _ = tf.constant(1.0) + 1.0  # TensorFlow runs now, with this process's pools
    threading = tf.config.threading
    before = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    assert before != (1, 2)
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p1\nMKVL\n")
    out = tmp_path / "out.h5"
    assert embed_cli.main(_embed_argv(fixtures_dir, fasta, out) + ["--threads", "1,2"]) == 1
    err = capsys.readouterr().err
    assert "intra_op=1, inter_op=2 requested after TensorFlow started" in err
    assert f"intra_op={before[0]}, inter_op={before[1]}" in err
    assert not out.exists()
    assert (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == before


@pytest.mark.parametrize("value", ["1", "1,2,3", "0,2", "1,-1", "a,b", ""])
def test_threads_option_usage_errors_exit_2(value, capsys):
    assert finetune_cli.main(["--train", "t.csv", "--out", "m", "--from-scratch", "--threads", value]) == 2
    assert f"expected two integers >= 1 as INTRA,INTER (e.g. 1,2). Received: {value!r}" in capsys.readouterr().err


@pytest.mark.parametrize("intra, inter, name", [(0, 1, "intra_op"), (1, 0, "inter_op"), (1.5, 1, "intra_op"),
                                                (True, 1, "intra_op")])
def test_set_cpu_threads_rejects_bad_counts(intra, inter, name):
    with pytest.raises(InputError, match=f"{name} must be an integer >= 1. Received: {(intra if name == 'intra_op' else inter)!r}"):
        set_cpu_threads(intra, inter)
