"""guard_onednn_concurrency: one TensorFlow operation at a time where oneDNN is on (memory-corruption workaround).

Each case runs in a fresh process: TensorFlow's thread pools are fixed once its runtime starts.
"""

import os
import subprocess
import sys

import pytest

CHILD = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
import tensorflow as tf
from proteinbert.hardware import guard_onednn_concurrency
{before}
changed = guard_onednn_concurrency()
again = guard_onednn_concurrency()
print("RESULT", changed, again, tf.config.threading.get_inter_op_parallelism_threads())
"""


def run_child(onednn: str, before: str = "") -> str:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(before=before)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_onednn_on_runs_one_operation_at_a_time():
    assert "RESULT True False 1" in run_child("1")


def test_onednn_off_leaves_the_pools_alone():
    assert "RESULT False False 0" in run_child("0")


@pytest.mark.parametrize("before, expected", [
    ("tf.config.threading.set_inter_op_parallelism_threads(2)", "RESULT False False 2"),  # explicit: obeyed
    ("tf.constant(1.0) + 1.0", "RESULT False False 0"),  # the runtime already started: too late
])
def test_warns_once_when_it_cannot_apply(before, expected):
    out = run_child("1", before)
    assert expected in out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING") and "memory at random" in line]
    assert len(warnings) == 1, out
