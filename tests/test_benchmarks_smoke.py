"""The benchmark scripts still run: each one's ``--quick`` in a subprocess (slow), plus fast checks of
their shared helpers (benchmarks/_harness.py) and of what every script must offer.

``onednn_race.py --quick`` is run by tests/test_onednn_race.py.
"""

import doctest
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_shared

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
TESTED_ELSEWHERE = {"onednn_race"}  # tests/test_onednn_race.py


def _load_harness():
    spec = importlib.util.spec_from_file_location("benchmark_harness", BENCHMARKS / "_harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(argv, timeout=900, python=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([python or sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def _json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _check_machine_line(rows):
    machine = rows[0]
    assert machine["section"] == "machine" and machine["cores"] == os.cpu_count() and machine["quick"] is True
    assert machine["tensorflow"] and machine["cpu"]


def _numbers(line):
    return [float(x) for x in re.findall(r"\d+\.\d+|\d+", line)]


# -- what each --quick must print ------------------------------------------------------------------
def check_throughput(out, tmp_path):
    rows = _json_lines(out)
    _check_machine_line(rows)
    sections = [r["section"] for r in rows[1:]]
    assert sections == ["forward", "train", "batch1", "batch1", "gemm"]
    assert all(r["tokens_per_s"] > 0 for r in rows if r["section"] in ("forward", "train"))
    batch1 = [r for r in rows if r["section"] == "batch1"]
    assert [r["chunk_length"] for r in batch1] == [0, 128] and all(r["peak_rss_mb"] > 0 for r in batch1)
    assert rows[-1]["gflop_per_s"] > 0


def check_keras_backends(out, tmp_path):
    rows = _json_lines(out)
    assert rows[0]["section"] == "setup" and rows[0]["backend"] == "tensorflow"
    _check_machine_line(rows[1:])
    forward = [r for r in rows if r["section"] == "forward"]
    assert [r["virtual_pad_length"] for r in forward] == [None, None, 512]
    assert all(r["tokens_per_s"] > 0 for r in forward)
    assert [r["length"] for r in rows if r["section"] == "batch1"] == [128, 512]
    assert json.loads((tmp_path / "rows.json").read_text()) == rows


def check_conv_gradient(out, tmp_path):
    lines = [line for line in out.splitlines() if line.startswith("L ")]
    assert [line.split(":")[0] for line in lines] == ["L    16, dilation 1", "L    16, dilation 5"]
    for line in lines:
        diff = float(re.search(r"gradients differ by (\S+) \(relative\)", line).group(1))
        assert diff < 1e-4, line  # the two gradients are the same function


def _check_step_table(out, first_column, expected):
    assert out.startswith("# ") and f"{os.cpu_count()} cores" in out.splitlines()[0]
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "ms/step" in line) + 1
    rows = lines[start:]
    assert [first_column(line) for line in rows] == expected
    for line in rows:
        assert _numbers(line)[-1] > 0, line


def check_cpu_allocator(out, tmp_path):
    _check_step_table(out, lambda line: line[:18].strip(), ["glibc", "BFC, glibc pad", "BFC, 16 MiB pad"])


def check_cpu_threads(out, tmp_path):
    _check_step_table(out, lambda line: tuple(line.split()[:2]), [("16", "default"), ("16", "1:2")])


def check_pretrain(out, tmp_path):
    (line,) = [line for line in out.splitlines() if line.startswith("episode ")]
    assert line.startswith("episode (64, 4): data alone")
    ratio = float(re.search(r"pipeline/cached = ([\d.]+)\)", line).group(1))
    assert ratio > 0


def check_pretrain_curves(out, tmp_path):
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("epoch\t"))
    rows = [line.split("\t") for line in lines[header + 1:header + 5]]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]  # evaluated before training and after each epoch
    assert all(0 < float(row[3]) < 10 for row in rows)  # held-out token loss, nats
    assert all(0 <= float(row[4]) <= 1 for row in rows)  # held-out GO AUC
    assert f"wrote {png} (4 rows)" in out


def check_corrupted_positions(out, tmp_path):
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r[0].strip() for r in rows[1:]] == ["input cannot stand there", "input could stand there",
                                                "all corrupted positions"]
    n = [int(r[1]) for r in rows[1:]]
    assert n[0] + n[1] == n[2] > 20  # ~5 % of the held-out residues
    assert all(0 <= float(x) <= 1 for r in rows[1:] for x in r[2:])
    assert abs(float(rows[1][2]) + float(rows[2][2]) - 1) < 2e-3
    assert re.search(r"most frequent token 0\.\d+; most frequent other token 0\.\d+", out)


def check_finetune_speed(out, tmp_path):
    aucs = re.search(r"AUC bucket ([\d.]+) vs fixed ([\d.]+)", out)
    assert aucs and all(0 <= float(a) <= 1 for a in aucs.groups())
    assert "[bucket] total fine-tuning" in out and "[fixed] total fine-tuning" in out
    results = json.loads((tmp_path / "speed.json").read_text())
    assert sorted(results) == ["bucket", "fixed"]
    assert [s["name"] for s in results["fixed"]["stages"]] == ["frozen", "unfrozen", "final"]


def check_finetune_accuracy(out, tmp_path):
    assert "| default | 1 |" in out
    state = json.loads((tmp_path / "acc.json").read_text())
    (run,) = state["runs"]
    assert (run["mode"], run["seed"]) == ("default", 0) and 0 <= run["auc"] <= 1
    assert state["headers"][0]["cores"] == os.cpu_count()


def check_create_dataset(out, tmp_path):
    assert re.search(r"^build: total\s+\d", out, re.M)
    ratio = float(re.search(r"XML stage / floor .*: wall ([\d.]+)×", out).group(1))
    assert ratio > 0
    assert "500 records ×" in out


def check_embedding_padding(out, tmp_path):
    lines = out.splitlines()
    assert out.startswith("# ") and lines[1].startswith("| policy | tokens |")
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert len(rows) == 5 and rows[-1][0].strip() == "fixed 512"
    assert float(rows[-1][5]) == 0 and float(rows[-1][6]) == 1  # the reference against itself
    assert all(-1 <= float(row[6]) <= 1 for row in rows)  # cosine similarities


def check_baseline_keras2(out, tmp_path):
    rows = _json_lines(out)
    _check_machine_line(rows)
    assert rows[0]["keras"].startswith("2.")
    assert [r["section"] for r in rows[1:]] == ["forward", "train", "batch1", "batch1"]
    assert all(r["seconds"] > 0 for r in rows[1:])


def _keras2_python():
    python = os.environ.get("PROTEINBERT_KERAS2_PYTHON")
    if not python or not Path(python).is_file():
        pytest.skip("PROTEINBERT_KERAS2_PYTHON does not name an interpreter with TensorFlow 2.15 / Keras 2")
    return python


def _shared_benchmarks():
    return require_shared("data", "protein_benchmarks", "signalP_binary.train.csv").parent


# name -> (arguments after the script, given tmp_path; the check of its stdout)
CASES = {
    "throughput": (lambda tmp: ["--quick"], check_throughput),
    "keras_backends": (lambda tmp: ["--quick", "--json", tmp / "rows.json"], check_keras_backends),
    "conv_gradient": (lambda tmp: ["--quick"], check_conv_gradient),
    "cpu_allocator": (lambda tmp: ["--quick"], check_cpu_allocator),
    "cpu_threads": (lambda tmp: ["--quick"], check_cpu_threads),
    "pretrain": (lambda tmp: ["--quick"], check_pretrain),
    "pretrain_curves": (lambda tmp: ["--quick", tmp / "curves.png"], check_pretrain_curves),
    "corrupted_positions": (lambda tmp: ["--quick"], check_corrupted_positions),
    "finetune_speed": (lambda tmp: ["--quick", "--data-dir", _shared_benchmarks(), "--json", tmp / "speed.json"],
                       check_finetune_speed),
    "finetune_accuracy": (lambda tmp: ["--quick", "--seeds", "0", "--modes", "default", "--data-dir",
                                       _shared_benchmarks(), "--weights", require_shared("fixtures", "small_lamb.pkl"),
                                       "--out", tmp / "acc.json"], check_finetune_accuracy),
    "create_dataset": (lambda tmp: ["--quick",
                                    "--xml", require_shared("data", "uniref_like", "uniref90_like.sprot250.xml.gz"),
                                    "--fasta", require_shared("data", "uniref_like", "uniref90_like.sprot250.fasta")],
                       check_create_dataset),
    "baseline_keras2": (lambda tmp: ["--quick"], check_baseline_keras2),
    "embedding_padding": (lambda tmp: ["--quick"], check_embedding_padding),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_quick_run(name, tmp_path):
    arguments, check = CASES[name]
    python = _keras2_python() if name == "baseline_keras2" else None
    proc = _run([BENCHMARKS / f"{name}.py", *arguments(tmp_path)], python=python)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check(proc.stdout, tmp_path)


# -- fast checks ------------------------------------------------------------------------------------
def test_every_script_has_a_quick_run():
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(CASES) | TESTED_ELSEWHERE
    for name in scripts:  # documented in the script's docstring (the option may come from the harness)
        assert "--quick" in (BENCHMARKS / f"{name}.py").read_text().split('"""')[1], name


def test_no_script_reads_the_shared_folder_by_default():
    for path in BENCHMARKS.glob("*.py"):
        text = path.read_text()
        assert "../shared" not in text and "PROTEINBERT_SHARED" not in text and '"shared"' not in text, path.name


def test_scripts_share_helpers_only_through_the_harness():
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")}
    for path in BENCHMARKS.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (\w+)", path.read_text(), re.M)
        assert not set(imports) & scripts, (path.name, set(imports) & scripts)


def test_harness_doctests():
    result = doctest.testmod(_load_harness())
    assert result.attempted >= 8 and result.failed == 0


def test_machine_header_describes_this_process():
    import numpy as np
    import tensorflow as tf

    from proteinbert.hardware import cpu_flags, onednn_enabled

    header = _load_harness().machine_header(model="tiny")
    assert header["cores"] == os.cpu_count() and header["numpy"] == np.__version__
    assert header["tensorflow"] == tf.__version__ and header["keras_backend"] == "tensorflow"
    assert header["onednn"] == onednn_enabled()  # the same query as the package's
    assert set(header["cpu_flags"]) <= cpu_flags() and header["model"] == "tiny"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", header["date"])


@pytest.mark.slow
def test_baseline_keras2_refuses_keras3():
    proc = _run([BENCHMARKS / "baseline_keras2.py", "--quick"], timeout=300)
    assert proc.returncode == 2
    assert "needs TensorFlow <= 2.15 with Keras 2" in proc.stderr and "Keras 3." in proc.stderr


@pytest.mark.slow
def test_missing_inputs_are_usage_errors(tmp_path):
    """Named in the message, exit code 2, before any measurement."""
    env_free = {k: v for k, v in os.environ.items() if k not in ("PROTEINBERT_WEIGHTS", "PROTEINBERT_BENCHMARKS")}
    cases = [(["cpu_allocator.py"], "give --weights"),
             (["cpu_threads.py", "--weights", tmp_path / "none.pkl"], f"--weights {tmp_path / 'none.pkl'}: no such file"),
             (["finetune_speed.py", "--quick"], "give --data-dir"),
             (["finetune_speed.py", "--quick", "--data-dir", tmp_path], "no signalP_binary.train.csv"),
             (["create_dataset.py", "--quick"], "--xml is required"),
             (["pretrain.py"], "--dataset is required")]
    for argv, message in cases:
        proc = subprocess.run([sys.executable, BENCHMARKS / argv[0], *map(str, argv[1:])], capture_output=True,
                              text=True, cwd=REPO, env=env_free, timeout=300)
        assert proc.returncode == 2 and message in proc.stderr, (argv, proc.stderr[-2000:])
