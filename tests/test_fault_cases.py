"""Fault cases without a test elsewhere: full disks in create_dataset, set_test_set and pretraining saves,
residues outside the alphabet, the output lock of multi-worker pretraining, killed runs, and one-line
errors through the commands. docs/results/fault_cases.md maps every case to its test.

A full disk is made two ways: in a child process with a file-size limit (``ulimit -f``: writes past it
fail with EFBIG, as on a full disk, and HDF5 really meets them), or by making ``shutil.disk_usage``
report a nearly full disk.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from proteinbert.cli import create_dataset as create_cli
from proteinbert.cli import embed as embed_cli
from proteinbert.cli import finetune as finetune_cli
from proteinbert.cli import pretrain as pretrain_cli
from proteinbert.cli import set_test_set as test_set_cli
from proteinbert.errors import FormatError, InputError, OutOfSpaceError, OutputBusyError
from backbone_harness import MICRO
from conftest import free_ports
from test_output_safety import OBO, create_argv, hold_lock, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMINO = list("ACDEFGHIKLMNPQRSTVWY")


def write_inputs(directory, n, length=50, seqs=None):
    """``n`` random records (or ``seqs``: {id: sequence}) as x.fa + x.tsv, and a 3-term go.obo."""
    directory.mkdir(parents=True, exist_ok=True)
    if seqs is None:
        rng = np.random.default_rng(0)
        seqs = {f"P{i}": "".join(rng.choice(AMINO, length)) for i in range(n)}
    (directory / "x.fa").write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    (directory / "x.tsv").write_text("".join(f"{k}\tGO:000000{2 + i % 2}\n" for i, k in enumerate(seqs)))
    (directory / "go.obo").write_text(OBO)
    return directory


@pytest.fixture
def big_inputs(tmp_path):
    return write_inputs(tmp_path / "in", 3000)  # HDF5 file ~0.53 MB, scratch bucket ~0.24 MB


# -- create_dataset on a full disk -----------------------------------------------------------------------
_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes fail with EFBIG like on a full disk
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from proteinbert.data import dataset_builder, dataset_writer
if "no-precheck" in sys.argv[2]:  # as if the size estimate had been too small
    dataset_builder.require_space = lambda *args, **kwargs: None
if "no-reserve" in sys.argv[2]:  # as on a file system that cannot reserve space
    dataset_writer.reserve_h5 = lambda *args, **kwargs: False
from proteinbert.cli.create_dataset import main
sys.exit(main(sys.argv[3:]))
"""


def run_limited(limit, mode, argv):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), mode, *argv], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize("limit,mode,expected", [
    # Refused before HDF5 starts: the estimate does not fit.
    (300_000, "checks", r"\[Errno 27\] the dataset {out} needs about 0\.\d MB but files are limited to 0\.3 MB "
                        r"\(ulimit -f\)"),
    # The estimate let it through (a reservation does not count against ``ulimit -f``): HDF5's own
    # writes fail. This used to print a traceback and crash the process at exit (code 139).
    (300_000, "no-precheck", r"\[Errno 27\] cannot write {out}: File too large"),
    (250_000, "no-precheck,no-reserve", r"\[Errno 27\] cannot write {out}: File too large"),
    # The scratch files do not fit.
    (180_000, "checks", r"\[Errno 27\] cannot write scratch files in {parent}/\.d\.h5\.tmp-\w+: File too large"),
])
def test_create_dataset_on_a_full_disk_is_one_line_and_leaves_nothing(big_inputs, tmp_path, limit, mode, expected):
    before = snapshot(big_inputs)
    out = tmp_path / "o" / "d.h5"
    proc = run_limited(limit, mode, create_argv(big_inputs, out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    pattern = expected.format(out=re.escape(str(out)), parent=re.escape(str(out.parent)))
    assert re.fullmatch("proteinbert create-dataset: error: " + pattern, last), last
    assert "Traceback" not in proc.stderr
    assert os.listdir(out.parent) == []  # no output, no partial file, no scratch, no lock file
    assert snapshot(big_inputs) == before


def test_create_dataset_within_the_limit_still_works(big_inputs, tmp_path):
    out = tmp_path / "o" / "d.h5"
    proc = run_limited(2_000_000, "checks", create_argv(big_inputs, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(out.parent) == ["d.h5"]
    with h5py.File(out) as h5:
        assert len(h5["seqs"]) == 3000
    # The space reserved ahead was given back: the file is no larger than HDF5 made it.
    assert os.stat(out).st_blocks * 512 < os.path.getsize(out) + (64 << 10)


def nearly_full_disk(monkeypatch, free=1000):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=free))


def test_create_dataset_refuses_a_disk_without_room(tmp_path, monkeypatch, capsys):
    d = write_inputs(tmp_path / "in", 50)
    before = snapshot(d)
    nearly_full_disk(monkeypatch)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 1
    err = capsys.readouterr().err
    assert re.search(rf"error: \[Errno 28\] the dataset {re.escape(str(out))} needs about 0\.\d MB but only "
                     rf"0\.0 MB are free in {re.escape(str(out.parent))}$", err.strip()), err
    assert os.listdir(out.parent) == [] and snapshot(d) == before


def test_a_disk_that_cannot_hold_the_reservation_fails_before_hdf5_writes(tmp_path, monkeypatch, capsys):
    import ctypes

    from proteinbert import io_utils
    from proteinbert.data import dataset_builder

    def no_room(fd, mode, offset, length):  # what libc's fallocate does on a full disk
        ctypes.set_errno(errno.ENOSPC)
        return -1

    monkeypatch.setattr(dataset_builder, "require_space", lambda *args, **kwargs: None)  # the estimate was fooled
    monkeypatch.setattr(io_utils, "_FALLOCATE", [no_room])
    d = write_inputs(tmp_path / "in", 50)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 1
    err = capsys.readouterr().err
    assert re.search(rf"error: \[Errno 28\] cannot reserve 0\.\d MB for {re.escape(str(out))}: No space left on "
                     "device$", err.strip()), err
    assert os.listdir(out.parent) == []


def test_scratch_on_a_full_disk_is_named(tmp_path, monkeypatch, capsys):
    from proteinbert.data import dataset_builder

    def disk_full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")  # as Python's file writes raise it: no file named

    monkeypatch.setattr(dataset_builder._BucketSpool, "add", disk_full)
    d = write_inputs(tmp_path / "in", 20)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 1
    err = capsys.readouterr().err
    assert f"error: [Errno 28] cannot write scratch files in {out.parent}/.d.h5.tmp-" in err
    assert "No space left on device" in err and "Traceback" not in err
    assert os.listdir(out.parent) == []


def test_in_place_set_test_set_on_a_disk_without_room_leaves_the_file(tmp_path, monkeypatch, capsys):
    d = write_inputs(tmp_path / "in", 50)
    out = tmp_path / "ds" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 0
    before = out.read_bytes()
    nearly_full_disk(monkeypatch)
    assert test_set_cli.main([str(out), "--test-probability", "0.5", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"[Errno 28] the rewritten dataset {out} needs about" in err and "Traceback" not in err
    assert out.read_bytes() == before and os.listdir(out.parent) == ["d.h5"]


def test_the_size_estimate_is_close_to_the_real_file(tmp_path):
    """The estimate decides what is refused: within a few per cent above the real size, never below."""
    from proteinbert.data.dataset_builder import _estimated_h5_bytes

    d = write_inputs(tmp_path / "in", 3000)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 0
    with h5py.File(out) as h5:
        text = sum(len(s) for name in ("seqs", "uniprot_ids", "uniprot_accessions") for s in h5[name].asstr()[:])
        masks = h5["annotation_masks"][:]
    estimate = _estimated_h5_bytes(len(masks), text, masks.shape[1], int(masks.sum()))
    real = os.path.getsize(out)
    assert real <= estimate <= 1.1 * real + (256 << 10), (real, estimate)


# -- pretraining saves on a full disk ---------------------------------------------------------------------
def tiny_weights():
    from proteinbert.weights import ReleasedWeights

    return ReleasedWeights(2, [np.zeros((2, 3), np.float32)], [])


def test_a_save_on_a_full_disk_names_itself_and_keeps_the_earlier_saves(tmp_path, monkeypatch):
    from proteinbert.training import checkpoints

    first = checkpoints.write_save(tmp_path, 1, 8, tiny_weights(), {"step": 1}, {"step": np.array([1])})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.np, "savez", disk_full)
    final = tmp_path / "epoch_2_sample_16"
    with pytest.raises(OutOfSpaceError, match=rf"^\[Errno 28\] cannot write the save {re.escape(str(final))}: No space "
                                              r"left on device \(the earlier saves are as they were\)$"):
        checkpoints.write_save(tmp_path, 2, 16, tiny_weights(), {"step": 2}, {"step": np.array([2])})
    assert os.listdir(tmp_path) == [first.path.name]  # no .partial- directory left
    assert [s.path for s in checkpoints.list_saves(tmp_path)] == [first.path]


def test_a_save_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    from proteinbert.training import checkpoints

    nearly_full_disk(monkeypatch)
    with pytest.raises(OutOfSpaceError, match=r"the save .*epoch_1_sample_8 needs about 1\.0 MB but only 0\.0 MB"):
        checkpoints.write_save(tmp_path / "run", 1, 8, tiny_weights(), {"step": 1}, {"step": np.array([1])})
    assert os.listdir(tmp_path / "run") == []


ARCH = dict(MICRO)


@pytest.fixture
def tiny_h5(tmp_path):
    from pretraining_h5 import write_pretraining_h5

    path = tmp_path / "data" / "d.h5"
    path.parent.mkdir()
    write_pretraining_h5(path, [(f"P{i}", "MKVLAAGIVALLKE", ["GO:0000001"]) for i in range(16)], min_records=1)
    return path


def tiny_settings(out, **kw):
    from proteinbert.data.pretraining_batches import PretrainingDataSettings
    from proteinbert.training.pretraining import PretrainingSettings

    base = dict(output_dir=str(out), data=PretrainingDataSettings(episodes=((16, 4),), steps_per_episode=2,
                                                                 chunk_size=8),
                steps_per_epoch=2, max_epochs=1, save_every_epochs=1, progress=False, eval_every_epochs=0,
                tensorboard=False)
    return PretrainingSettings(**{**base, **kw})


def test_pretrain_that_could_not_save_is_refused_before_training(tiny_h5, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    nearly_full_disk(monkeypatch)
    argv = [str(tiny_h5), "-o", str(out), "--epochs", "1", "--steps-per-epoch", "2", "--episodes", "16:4",
            "--d-seq", "8", "--d-global", "16", "--n-blocks", "1", "--n-heads", "2", "--d-key", "4",
            "--no-tensorboard", "--no-progress", "-q"]
    assert pretrain_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"[Errno 28] the save {out / 'epoch_0_sample_0'} needs about" in err and "Traceback" not in err
    assert os.listdir(out) == [] and sorted(os.listdir(tmp_path)) == ["data", "run"]  # no lock file left


# -- multi-worker pretraining and the output lock ----------------------------------------------------------
def test_the_library_takes_the_output_lock_before_reading_anything(tiny_h5, tmp_path):
    from proteinbert.training.pretraining import Pretrainer

    out = tmp_path / "run"
    fd = hold_lock(out)
    try:
        with pytest.raises(OutputBusyError, match=rf"output directory {re.escape(str(out))} is being written by "
                                                  r"another run \(pid 4242"):
            Pretrainer(tmp_path / "missing.h5", tiny_settings(out))  # busy, not "missing.h5 not found"
    finally:
        os.close(fd)


def test_the_chief_cleans_and_saves_and_the_other_workers_never_write(tiny_h5, tmp_path, monkeypatch):
    from proteinbert.training import pretraining

    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".partial-epoch_1_sample_4-abc123"
    stale.mkdir()
    result = pretraining.pretrain(tiny_h5, tiny_settings(out), architecture=ARCH)
    assert result.step == 2 and sorted(os.listdir(out)) == ["epoch_1_sample_8", "history.tsv"]  # stale save gone
    assert sorted(os.listdir(tmp_path)) == ["data", "run"]  # the lock file went with the run

    # A worker that is not the chief: even with the directory locked by another run it trains, and
    # writes nothing anywhere (no directory, no save, no lock file of its own).
    monkeypatch.setattr(pretraining, "_is_chief", lambda strategy: False)
    other = tmp_path / "other"
    fd = hold_lock(other)
    try:
        result = pretraining.pretrain(tiny_h5, tiny_settings(other), architecture=ARCH)
    finally:
        os.close(fd)
    assert result.step == 2 and result.last_save is None
    assert not other.exists() and sorted(os.listdir(tmp_path)) == [".other.lock", "data", "run"]


@pytest.mark.slow
def test_two_workers_into_a_directory_another_run_writes_both_stop(tiny_h5, tmp_path):
    """A real two-process MultiWorkerMirroredStrategy run: the chief finds the lock held, says so, and
    the other worker stops with it (instead of waiting forever for the chief)."""
    out = tmp_path / "run"
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    fd = hold_lock(out)
    try:
        procs = []
        for i in range(2):
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "proteinbert.cli.pretrain", str(tiny_h5), "-o", str(out), "--epochs", "1",
                 "--steps-per-epoch", "2", "--episodes", "16:4", "--d-seq", "8", "--d-global", "16", "--n-blocks", "1",
                 "--n-heads", "2", "--d-key", "4", "--no-tensorboard", "--no-progress", "-q",
                 "--strategy", "multi-worker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                cwd=REPO))
        results = [p.communicate(timeout=400) for p in procs]
    finally:
        os.close(fd)
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = [p.returncode for p in procs]
    assert codes == [1, 1], [r[1][-2000:] for r in results]
    assert f"{out} is being written by another run (pid 4242" in results[0][1]
    assert "the chief of this multi-worker run found it being written by another run" in results[1][1]
    assert not out.exists()


# -- residues outside the alphabet ---------------------------------------------------------------------------
ODD = {"P1": "MKVLAAGIVA", "P2": "MK1VL*AGIV", "P3": "MGSS#HHHHH", "P4": "MSTNPKPQRK"}


def test_create_dataset_warns_with_the_count_by_default(tmp_path, capsys):
    d = write_inputs(tmp_path / "in", 0, seqs=ODD)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 0
    err = capsys.readouterr().err
    assert (f"{d / 'x.fa'}: 3 character(s) in 2 sequence(s) are not amino-acid letters and are read as <OTHER> "
            "(e.g. '1', '*', '#')") in err
    with h5py.File(out) as h5:
        skips = json.loads(h5.attrs["join_skips"])
        assert skips["non_residue_characters"] == 3 and skips["records_with_non_residues"] == 2
        assert sorted(h5["seqs"].asstr()[:]) == sorted(ODD.values())  # stored as given; <OTHER> when tokenized


def test_create_dataset_can_refuse_them_naming_file_line_record_and_characters(tmp_path, capsys):
    d = write_inputs(tmp_path / "in", 0, seqs=ODD)
    before = snapshot(d)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out, "--unknown-residues", "error")) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"error: Error in file {d / 'x.fa'} at line 3: record 'P2' holds 2 character(s) that are not "
                        "amino-acid letters ('1', '*'; the first at residue 3); refused (unknown residues: 'error'; "
                        "'warn' reads them as <OTHER>)"), err
    assert "Traceback" not in err and err.count("error:") == 1
    assert os.listdir(out.parent) == [] and snapshot(d) == before


def test_unknown_residue_policy_is_checked(tmp_path, capsys):
    from proteinbert.data.dataset_builder import DatasetSettings
    from proteinbert.tokenizer import ResidueCheck, check_residues

    with pytest.raises(InputError, match=r"unknown_residues must be one of warn, error\. Received: "
                                         r"unknown_residues='ignore'"):
        DatasetSettings(output="o.h5", go_obo="g.obo", input_kind="uniprot", xml="x.xml", unknown_residues="ignore")
    with pytest.raises(InputError, match="Received: 'skip'"):
        ResidueCheck("in.fa", "skip")
    d = write_inputs(tmp_path / "in", 0, seqs=ODD)
    assert create_cli.main(create_argv(d, tmp_path / "o.h5", "--unknown-residues", "ignore")) == 2
    assert "argument --unknown-residues: invalid choice: 'ignore'" in capsys.readouterr().err
    # The library call the other commands can pass the policy to:
    assert check_residues(["MKV", "M1K"], "in.fa") == 1
    with pytest.raises(FormatError, match=r"in\.fa: record 'b' holds 1 character\(s\) .*\('1'; the first at residue 2\)"):
        check_residues(["MKV", "M1K"], "in.fa", "error", ids=["a", "b"])


# -- killed runs, and messages through the commands ----------------------------------------------------------
def test_a_sigkilled_create_dataset_leaves_scratch_that_the_next_run_removes(tmp_path):
    d = write_inputs(tmp_path / "in", 20000)
    out = tmp_path / "o" / "d.h5"
    argv = create_argv(d, out)
    proc = subprocess.Popen([sys.executable, "-m", "proteinbert.cli.create_dataset", *argv], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".d.h5.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed while working, not finished
    left = os.listdir(out.parent)
    assert any(n.startswith(".d.h5.tmp-") for n in left) and "d.h5" not in left
    assert create_cli.main(argv) == 0
    assert os.listdir(out.parent) == ["d.h5"]


def test_create_dataset_on_a_self_loop_exits_1_naming_the_term(tmp_path, capsys):
    d = write_inputs(tmp_path / "in", 0, seqs={"P1": "MKV", "P2": "MKL", "P3": "MAA"})
    (d / "go.obo").write_text(OBO + "is_a: GO:0000003 ! itself\n")
    before = snapshot(d)
    out = tmp_path / "o" / "d.h5"
    assert create_cli.main(create_argv(d, out)) == 1
    err = capsys.readouterr().err
    assert "go.obo" in err and "GO:0000003 is its own parent" in err and "Traceback" not in err
    assert os.listdir(out.parent) == [] and snapshot(d) == before


def test_an_output_below_a_regular_file_is_named_by_the_command(tmp_path, capsys):
    d = write_inputs(tmp_path / "in", 0, seqs={"P1": "MKV", "P2": "MKL"})
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    assert create_cli.main(create_argv(d, blocker / "d.h5")) == 2
    assert f"cannot write --output {blocker / 'd.h5'}: {blocker} is a file, not a directory" in capsys.readouterr().err
    assert blocker.read_text() == "a file"


def test_an_existing_output_directory_is_exit_2_in_embed_and_finetune(tmp_path, capsys):
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("keep")
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nMKV\n")
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"not read")
    train = tmp_path / "train.csv"
    train.write_text("seq,label\nMKV,1\nMKL,0\n")
    assert embed_cli.main(["--weights", str(weights), "-i", str(fasta), "-o", str(existing), "-q"]) == 2
    embed_err = capsys.readouterr().err
    assert finetune_cli.main(["--train", str(train), "--from-scratch", "--out", str(existing), "-q"]) == 2
    finetune_err = capsys.readouterr().err
    assert str(existing) in embed_err and str(existing) in finetune_err
    assert os.listdir(existing) == ["keep.txt"]


@pytest.fixture(scope="module")
def tiny_pkl(tmp_path_factory):
    from proteinbert.model import ProteinBertBackbone
    from proteinbert.weights import export_released_weights, write_pkl

    path = tmp_path_factory.mktemp("w") / "tiny.pkl"
    write_pkl(path, export_released_weights(ProteinBertBackbone(n_annotations=6, **ARCH)))
    return path


@pytest.mark.parametrize("damage,message", [
    ("1-D Wq", "array #17 global-attention-block1/Wq has shape (16,); the layout needs 3 dimensions"),
    ("n_annotations=10**10", "arrays do not fit one ProteinBERT layout (n_annotations=10000000000"),
])
def test_embed_with_a_malformed_pkl_is_one_line_naming_the_file(tmp_path, tiny_pkl, capsys, damage, message):
    from proteinbert.weights import ReleasedWeights, read_pkl, write_pkl

    w = read_pkl(tiny_pkl)
    arrays = list(w.model_weights)
    n_annotations = w.n_annotations
    if damage == "1-D Wq":
        arrays[17] = np.zeros(16, np.float32)
    else:
        n_annotations = 10 ** 10
    bad = tmp_path / "bad.pkl"
    write_pkl(bad, ReleasedWeights(n_annotations, arrays, []))
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nMKVLAAGIVA\n")
    out = tmp_path / "e.h5"
    assert embed_cli.main(["--weights", str(bad), "-i", str(fasta), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{bad}: {message}" in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_dataset_open_for_writing_in_another_process_is_named(tiny_h5):
    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.errors import DatasetSchemaError

    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r+'); "
                               "print('open', flush=True); time.sleep(120)", str(tiny_h5)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DatasetSchemaError, match=rf"{re.escape(str(tiny_h5))}: another process has this file "
                                                     "open for writing"):
            PretrainingDataset(tiny_h5)
    finally:
        holder.kill()
        holder.wait()
