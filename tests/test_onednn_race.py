"""The memory-corruption loop of benchmarks/onednn_race.py, as a slow smoke test."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_onednn_race_quick_runs_pass(tmp_path):
    out = tmp_path / "race.jsonl"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "onednn_race.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["workload"], row["mode"], row["runs"], row["failed"]) == ("lengths", "guarded", 2, 0)
