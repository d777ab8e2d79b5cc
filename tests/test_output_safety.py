"""Outputs never destroy inputs, failed or interrupted runs leave nothing behind, one run owns an output.

Every command is called in process (``main(argv)``); inputs are tiny files in ``tmp_path``.
"""

import errno
import fcntl
import os
import signal

import h5py
import numpy as np
import pytest

from proteinbert.cli import benchmark_suite as suite_cli
from proteinbert.cli import convert_weights as convert_cli
from proteinbert.cli import create_dataset as create_cli
from proteinbert.cli import embed as embed_cli
from proteinbert.cli import finetune as finetune_cli
from proteinbert.cli import predict as predict_cli
from proteinbert.cli import pretrain as pretrain_cli
from proteinbert.cli import set_test_set as test_set_cli
from proteinbert.errors import OutputBusyError, UsageError
from proteinbert.io_utils import (atomic_write_path, check_output_path, claim_output, lock_path_for, output_lock)
from backbone_harness import MICRO

OBO = """format-version: 1.2
data-version: releases/2000-01-01

[Term]
id: GO:0000001
name: root
namespace: molecular_function

[Term]
id: GO:0000002
name: child
namespace: molecular_function
is_a: GO:0000001 ! root

[Term]
id: GO:0000003
name: other child
namespace: molecular_function
is_a: GO:0000001 ! root
"""
SEQS = {"P1": "MKVLAAGIVALLLAAGCSSA", "P2": "MSTNPKPQRKTKRNTNRRPQ", "P3": "MGSSHHHHHHSSGLVPRGSH",
        "P4": "MAEGEITTFTALTEKFNLPP", "P5": "MKKLLPTAAAGLLLLAAQPA", "P6": "MDLSALRVEEVQNVINAMQK"}


def snapshot(directory):
    """{relative path: bytes} of every file below ``directory`` (hidden ones included)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "x.fa").write_text("".join(f">{k}\n{v}\n" for k, v in SEQS.items()))
    (d / "x.tsv").write_text("accession\tgo\n" + "".join(
        f"{k}\t{'GO:0000002' if i % 2 else 'GO:0000003'}\n" for i, k in enumerate(SEQS)))
    (d / "go.obo").write_text(OBO)
    return d


def create_argv(d, out, *extra):
    return ["--fasta", str(d / "x.fa"), "--go-tsv", str(d / "x.tsv"), "--go-obo", str(d / "go.obo"),
            "-o", str(out), "--min-records", "1", "--no-progress", "--single-process", "-q", *extra]


@pytest.fixture
def dataset(inputs, tmp_path):
    out = tmp_path / "ds" / "d.h5"
    assert create_cli.main(create_argv(inputs, out)) == 0
    return out


# -- an output that is an input ----------------------------------------------------------------------
@pytest.mark.parametrize("role", ["x.fa", "x.tsv", "go.obo"])
@pytest.mark.parametrize("via_symlink", [False, True])
def test_create_dataset_refuses_an_input_as_output(inputs, tmp_path, capsys, role, via_symlink):
    before = snapshot(inputs)
    out = inputs / role
    if via_symlink:
        out = tmp_path / "link.h5"
        out.symlink_to(inputs / role)
    assert create_cli.main(create_argv(inputs, out)) == 2
    err = capsys.readouterr().err
    assert f"--output {out}" in err and "refusing to overwrite an input" in err and str(inputs / role) in err
    assert snapshot(inputs) == before


def test_create_dataset_refuses_a_hard_link_to_an_input(inputs, tmp_path, capsys):
    out = tmp_path / "hard.h5"
    os.link(inputs / "x.fa", out)
    before = snapshot(inputs)
    assert create_cli.main(create_argv(inputs, out)) == 2
    assert "--fasta" in capsys.readouterr().err
    assert snapshot(inputs) == before


def test_embed_refuses_its_input_even_with_overwrite(inputs, capsys):
    (inputs / "w.pkl").write_bytes(b"weights")
    before = snapshot(inputs)
    fasta = str(inputs / "x.fa")
    assert embed_cli.main(["--weights", str(inputs / "w.pkl"), "-i", fasta, "-o", fasta, "--overwrite"]) == 2
    assert f"--output {fasta} is --input {fasta}" in capsys.readouterr().err
    assert snapshot(inputs) == before


def test_predict_refuses_its_input_and_existing_outputs(inputs, tmp_path, capsys):
    csv = inputs / "t.csv"
    csv.write_text("seq\nMKV\n")
    before = snapshot(inputs)
    model = tmp_path / "model"
    model.mkdir()
    assert predict_cli.main([str(model), str(csv), "-o", str(csv)]) == 2
    assert "is INPUT" in capsys.readouterr().err
    existing = inputs / "old.csv"
    existing.write_text("keep me\n")
    assert predict_cli.main([str(model), str(csv), "-o", str(existing)]) == 2
    assert f"--output {existing} exists; pass --overwrite" in capsys.readouterr().err
    assert existing.read_text() == "keep me\n"
    del before  # (old.csv was added on purpose)


def test_convert_weights_refuses_its_source(tmp_path, capsys):
    src = tmp_path / "w.pkl"
    src.write_bytes(b"not really")
    link = tmp_path / "link.pkl"
    link.symlink_to(src)
    assert convert_cli.main([str(src), str(link), "--overwrite"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert src.read_bytes() == b"not really"


def test_finetune_refuses_an_output_directory_holding_an_input(tmp_path, capsys):
    train = tmp_path / "train.csv"
    train.write_text("seq,label\nMKV,1\nMKL,0\n")
    old = tmp_path / "old_model"
    old.mkdir()
    assert finetune_cli.main(["--train", str(train), "--from-scratch", "--out", str(old)]) == 2  # as in embed
    assert f"--out {old} exists; pass --overwrite" in capsys.readouterr().err
    out = tmp_path / "model"
    out.mkdir()
    inside = out / "train.csv"
    inside.write_text(train.read_text())
    assert finetune_cli.main(["--train", str(inside), "--from-scratch", "--out", str(out), "--overwrite"]) == 2
    assert "replacing it would delete an input" in capsys.readouterr().err
    assert inside.read_text() == "seq,label\nMKV,1\nMKL,0\n"


def test_benchmark_suite_appends_suffixes_and_refuses_an_input(tmp_path, capsys):
    from proteinbert.benchmark_suite import table_paths

    data = tmp_path / "bm"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"signalP_binary.{split}.csv").write_text("seq,label\nMKV,1\nMKL,0\n")
    before = snapshot(data)
    argv = ["--small", "--from-scratch", "--data-dir", str(data), "--benchmark", "signalP_binary"]
    assert suite_cli.main(argv + ["--out", str(data / "signalP_binary.train")]) == 2
    err = capsys.readouterr().err
    assert "signalP_binary.train.csv" in err and "refusing to overwrite an input" in err
    assert snapshot(data) == before
    assert [p.name for p in table_paths(tmp_path / "X.v2")] == ["X.v2.csv", "X.v2.md"]


def test_set_test_set_refuses_its_input_as_output(dataset, capsys):
    before = dataset.read_bytes()
    assert test_set_cli.main([str(dataset), "--test-probability", "0.5", "-o", str(dataset), "--overwrite"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert dataset.read_bytes() == before


def test_output_below_a_regular_file_is_named(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    with pytest.raises(UsageError, match=f"{blocker} is a file, not a directory"):
        check_output_path(blocker / "good.h5")


# -- set_test_set never damages the dataset ------------------------------------------------------------
def test_failed_in_place_set_test_set_leaves_the_file_byte_identical(dataset, monkeypatch, capsys):
    from proteinbert.data import dataset_builder

    before = dataset.read_bytes()
    names_before = sorted(os.listdir(dataset.parent))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_builder, "_test_mask", disk_full)
    assert test_set_cli.main([str(dataset), "--test-probability", "0.5", "--no-progress"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert dataset.read_bytes() == before
    assert sorted(os.listdir(dataset.parent)) == names_before  # no copy, no lock file left


def test_in_place_set_test_set_replaces_the_file_through_a_symlink(dataset, tmp_path):
    link = tmp_path / "link.h5"
    link.symlink_to(dataset)
    assert test_set_cli.main([str(link), "--test-probability", "1", "--no-progress", "-q"]) == 0
    assert link.is_symlink()
    with h5py.File(dataset) as h5:
        assert h5["test_set_mask"][:].all()


def test_set_test_set_output_needs_overwrite(dataset, tmp_path, capsys):
    out = tmp_path / "copy.h5"
    out.write_bytes(b"precious")
    argv = [str(dataset), "--test-probability", "1", "-o", str(out), "--no-progress", "-q"]
    assert test_set_cli.main(argv) == 2
    assert f"--output {out} exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert test_set_cli.main(argv + ["--overwrite"]) == 0
    with h5py.File(out) as h5:
        assert h5["test_set_mask"][:].all()


# -- scratch, signals and locks in create_dataset ------------------------------------------------------
def test_create_dataset_removes_stale_scratch_of_its_output(inputs, tmp_path):
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    stale_dir = out_dir / ".d.h5.tmp-abc123"
    stale_dir.mkdir()
    (stale_dir / "bucket-0000.tsv").write_text("x")
    (out_dir / ".d.h5.k3j4.partial.h5").write_bytes(b"half")
    other = out_dir / ".other.h5.tmp-zzz"  # another output's scratch is not ours to remove
    other.mkdir()
    assert create_cli.main(create_argv(inputs, out_dir / "d.h5")) == 0
    assert sorted(os.listdir(out_dir)) == [".other.h5.tmp-zzz", "d.h5"]


def test_sigterm_during_create_dataset_leaves_nothing(inputs, tmp_path, monkeypatch, capsys):
    from proteinbert.data import dataset_builder

    real = dataset_builder._write_h5

    def write_then_sigterm(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(dataset_builder, "_write_h5", write_then_sigterm)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(inputs, out)) == 143
    assert "terminated" in capsys.readouterr().err
    assert os.listdir(out.parent) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command


def hold_lock(output):
    """Take the lock of ``output`` as another process would (a separate open file description)."""
    lock = lock_path_for(os.path.abspath(output))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    return fd


def test_a_second_create_dataset_on_one_output_fails(inputs, tmp_path, capsys):
    out = tmp_path / "o" / "d.h5"
    fd = hold_lock(out)
    try:
        assert create_cli.main(create_argv(inputs, out)) == 1
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert f"--output {out} is being written by another run (pid 4242" in err
    assert not out.exists()


def test_a_second_pretrain_on_one_directory_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    dataset = tmp_path / "never_opened.h5"  # present (inputs are checked first), but the lock refuses before
    dataset.write_bytes(b"")
    fd = hold_lock(out)
    try:
        assert pretrain_cli.main([str(dataset), "-o", str(out), "--epochs", "1"]) == 1
    finally:
        os.close(fd)
    assert "is being written by another run" in capsys.readouterr().err


def test_output_lock_is_exclusive_reentrant_and_removed(tmp_path):
    out = tmp_path / "x.h5"
    with output_lock(out) as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with output_lock(out):  # the library call inside a CLI's lock
            pass
        assert lock.exists()
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert os.listdir(tmp_path) == []
    fd = hold_lock(out)
    try:
        with pytest.raises(OutputBusyError, match="pid 4242"):
            with claim_output(out):
                pass
    finally:
        os.close(fd)


# -- durability ----------------------------------------------------------------------------------------
def record_fsyncs(monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced files")
def test_atomic_writes_fsync_the_file_and_the_directory(tmp_path, monkeypatch):
    synced = record_fsyncs(monkeypatch)
    with atomic_write_path(tmp_path / "out.txt") as tmp:
        with open(tmp, "w") as f:
            f.write("done")
    assert any(".out.txt." in s and s.endswith(".partial.txt") for s in synced)  # the data, before the rename
    assert str(tmp_path) in synced  # the directory entry, after it


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced files")
def test_pretraining_saves_fsync_every_file_and_both_directories(tmp_path, monkeypatch):
    from proteinbert.training import checkpoints
    from proteinbert.weights import ReleasedWeights

    synced = record_fsyncs(monkeypatch)
    weights = ReleasedWeights(2, [np.zeros((2, 3), np.float32)], [])
    info = checkpoints.write_save(tmp_path, 1, 8, weights, {"step": 1}, {"step": np.array([1])})
    names = [os.path.basename(s) for s in synced]
    for expected in ("state.json", "stream.npz"):
        assert expected in names
    assert any(n.startswith(".epoch_1_sample_8.pkl.") for n in names)  # the .pkl before its own rename
    assert any(n.startswith(".partial-epoch_1_sample_8-") for n in names)  # the save directory
    assert str(tmp_path) in synced  # the output directory after the rename
    assert info.path.is_dir()


def test_resume_from_a_state_without_its_keys_is_a_weights_error(tmp_path):
    import json

    from proteinbert.errors import WeightsError
    from proteinbert.training import checkpoints
    from proteinbert.weights import ReleasedWeights

    weights = ReleasedWeights(2, [np.zeros((2, 3), np.float32)], [])
    info = checkpoints.write_save(tmp_path, 1, 8, weights, {"step": 1}, {"step": np.array([1])})
    with pytest.raises(WeightsError, match=r"state\.json: not a complete pretraining save state \(missing samples"):
        checkpoints.read_save(info)
    state = json.loads((info.path / "state.json").read_text())
    assert "annotations" not in state


def test_sigterm_stops_pretraining_with_a_final_save(tmp_path):
    import json

    from conftest import require_shared
    from pretraining_h5 import read_sp2014, write_pretraining_h5
    from proteinbert.data.pretraining_batches import PretrainingDataSettings
    from proteinbert.training import checkpoints
    from proteinbert.training.pretraining import PretrainingSettings, pretrain

    d = require_shared("data", "swissprot_go_2014")
    h5 = tmp_path / "sp.h5"
    write_pretraining_h5(h5, read_sp2014(d / "sp2014_go.2k.fasta.gz", d / "sp2014_go.2k.go.tsv.gz", n=80), min_records=3)
    out = tmp_path / "run"
    settings = PretrainingSettings(
        output_dir=str(out), data=PretrainingDataSettings(episodes=((32, 8),), steps_per_episode=3, chunk_size=64),
        steps_per_epoch=4, max_epochs=3, save_every_epochs=10, progress=False, eval_every_epochs=0, tensorboard=False)

    def sigterm_at_2(trainer, step, metrics):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    result = pretrain(h5, settings, architecture=dict(MICRO),
                      step_hook=sigterm_at_2)
    assert result.stopped == "interrupted" and result.step == 3
    save = checkpoints.latest_save(out)
    assert json.loads((save.path / "state.json").read_text())["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is before
