"""Damaged weights and model files are refused by name; embed fails cleanly on a full disk or SIGTERM."""

import errno
import fcntl
import os
import signal
import time

import h5py
import numpy as np
import pytest

from proteinbert.cli import embed as embed_cli
from proteinbert.cli import predict as predict_cli
from proteinbert.errors import WeightsError
from proteinbert.io_utils import lock_path_for
from proteinbert.weights import ReleasedWeights, read_pkl, write_pkl
from backbone_harness import MICRO

TINY = dict(MICRO, n_annotations=6)
WQ = 3 + 14  # index of the first block's Wq in the released order


@pytest.fixture(scope="module")
def tiny_pkl(tmp_path_factory):
    from proteinbert.model import ProteinBertBackbone
    from proteinbert.weights import export_released_weights

    path = tmp_path_factory.mktemp("w") / "tiny.pkl"
    write_pkl(path, export_released_weights(ProteinBertBackbone(**TINY)))
    return path


def damaged(tmp_path, tiny_pkl, name="bad.pkl", n_annotations=None, **arrays):
    w = read_pkl(tiny_pkl)
    weights = list(w.model_weights)
    for index, value in arrays.items():
        weights[int(index.lstrip("a"))] = value
    path = tmp_path / name
    write_pkl(path, ReleasedWeights(n_annotations or w.n_annotations, weights, []))
    return path


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text(">a\nMKVLAAGIVALL\n>b\nMSTNPKPQ\n>c\nMGSSHHHHHHSSGLVPRGSH\n")
    return path


# -- weights -------------------------------------------------------------------------------------------
def test_one_dimensional_wq_is_a_layout_error_naming_the_file(tmp_path, tiny_pkl):
    from proteinbert.weights import load_backbone

    path = damaged(tmp_path, tiny_pkl, **{f"a{WQ}": np.zeros(16, np.float32)})
    with pytest.raises(WeightsError, match=r"bad\.pkl: array #17 global-attention-block1/Wq has shape \(16,\); "
                                           r"the layout needs 3 dimensions"):
        load_backbone(path)


def test_absurd_n_annotations_is_refused_before_building_the_model(tmp_path, tiny_pkl):
    from proteinbert.weights import load_backbone

    path = damaged(tmp_path, tiny_pkl, n_annotations=10 ** 10)
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"bad\.pkl: arrays do not fit one ProteinBERT layout \(n_annotations="
                                           r"10000000000.*output-annotations/kernel"):
        load_backbone(path)
    assert time.perf_counter() - start < 10  # no 2.5 TB model was asked for


def test_inconsistent_shapes_name_the_file_and_the_array(tmp_path, tiny_pkl):
    from proteinbert.weights import load_backbone

    path = damaged(tmp_path, tiny_pkl, a3=np.zeros((3, 8), np.float32))  # global-to-seq kernel: d_global 16 -> 3
    with pytest.raises(WeightsError, match=r"bad\.pkl: .*#3 global-to-seq-dense-block1/kernel: shape \(3, 8\), "
                                           r"expected \(16, 8\)"):
        load_backbone(path)


def test_nan_weights_are_refused_on_load(tmp_path, tiny_pkl, fasta, capsys):
    w = read_pkl(tiny_pkl)
    wq = w.model_weights[WQ].copy()
    wq[0, 0, 0] = np.nan
    path = damaged(tmp_path, tiny_pkl, **{f"a{WQ}": wq})
    out = tmp_path / "e.h5"
    assert embed_cli.main(["--weights", str(path), "-i", str(fasta), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: weight array global-attention-block1/Wq (2, 16, 4) holds 1 non-finite value(s)" in err
    assert not out.exists()


def test_nan_in_a_keras_file_is_refused(tmp_path, tiny_pkl):
    from proteinbert.weights import load_backbone, save_backbone

    model = load_backbone(tiny_pkl)
    model.weights[0].assign(np.full(model.weights[0].shape, np.inf, np.float32))
    path = tmp_path / "inf.keras"
    save_backbone(model, path)
    with pytest.raises(WeightsError, match=r"inf\.keras: weight array .* non-finite"):
        load_backbone(path)


def test_a_garbage_keras_file_is_not_file_not_found(tmp_path):
    from proteinbert.weights import load_backbone

    path = tmp_path / "garbage.keras"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match=r"garbage\.keras: not a \.keras file \(those are zip archives"):
        load_backbone(path)


@pytest.mark.parametrize("spec,keras_bytes,message", [
    ('{"level": "global", "task": "binary"}', b"PK\x03\x04truncated", "model.keras: not a .keras file"),
    ('{"level": "glob', b"", "output_spec.json: not a valid output spec"),
    ('{"level": "sideways", "task": "binary"}', b"", "output_spec.json: not a valid output spec"),
])
def test_predict_with_a_damaged_model_directory_is_one_line(tmp_path, capsys, spec, keras_bytes, message):
    model = tmp_path / "model"
    model.mkdir()
    (model / "output_spec.json").write_text(spec)
    (model / "model.keras").write_bytes(keras_bytes)
    csv = tmp_path / "in.csv"
    csv.write_text("seq\nMKV\n")
    out = tmp_path / "p.csv"
    assert predict_cli.main([str(model), str(csv), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# -- embed on a full disk, on SIGTERM, and twice at once ------------------------------------------------
def test_embed_on_a_full_disk_reports_the_first_error_once(tmp_path, tiny_pkl, fasta, monkeypatch, capsys):
    from proteinbert import embedding_store

    def disk_full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_close = h5py.File.close
    calls = {"n": 0}

    def failing_close(self):
        calls["n"] += 1
        if calls["n"] == 1:  # the final flush into the same full disk
            raise RuntimeError("Can't decrement id ref count (unable to flush file's cached information)")
        return real_close(self)

    monkeypatch.setattr(embedding_store.EmbeddingWriter, "write", disk_full)
    monkeypatch.setattr(h5py.File, "close", failing_close)
    out = tmp_path / "out" / "e.h5"
    code = embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err and "decrement" not in err and "Traceback" not in err
    assert os.listdir(out.parent) == []  # no partial file, no lock file


def test_sigterm_during_embed_leaves_no_partial_file(tmp_path, tiny_pkl, fasta, monkeypatch, capsys):
    from proteinbert import embedding_store

    real = embedding_store.EmbeddingWriter.write

    def write_then_sigterm(self, *args):
        real(self, *args)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(embedding_store.EmbeddingWriter, "write", write_then_sigterm)
    out = tmp_path / "out" / "e.h5"
    assert embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q"]) == 143
    assert "terminated" in capsys.readouterr().err
    assert os.listdir(out.parent) == []


def test_a_second_embed_into_one_output_fails(tmp_path, tiny_pkl, fasta, capsys):
    out = tmp_path / "e.h5"
    lock = lock_path_for(os.path.abspath(out))
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"777\n")
        assert embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q"]) == 1
    finally:
        os.close(fd)
    assert f"--output {out} is being written by another run (pid 777" in capsys.readouterr().err
    assert not out.exists()
    assert embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["e.h5", "in.fa"]  # the lock file goes with its last holder


_FULL_DISK_SCRIPT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes fail with EFBIG like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))
from proteinbert.cli.embed import main
sys.exit(main(sys.argv[1:]))
"""


def test_embed_that_cannot_fit_is_refused_before_hdf5_starts(tmp_path, tiny_pkl):
    """In a child with a file-size limit (RLIMIT_FSIZE, like a nearly full disk): HDF5 used to meet the
    failing write half-way and crash the process at exit (exit 139); now nothing is started."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    fasta = tmp_path / "many.fa"
    fasta.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 50))}\n" for i in range(3000)))
    out = tmp_path / "out" / "e.h5"
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK_SCRIPT, "--weights", str(tiny_pkl), "-i", str(fasta),
                           "-o", str(out), "--per-residue", "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"proteinbert embed: error: [Errno 27] output {out} needs about 6.3 MB but files are "
                           "limited to 0.1 MB (ulimit -f)"), last
    assert "Traceback" not in proc.stderr
    assert os.listdir(out.parent) == []


def test_estimated_size_bounds_the_real_file(tmp_path, tiny_pkl, fasta):
    from proteinbert.data.fasta import read_fasta
    from proteinbert.embedding_store import estimated_size

    out = tmp_path / "e.h5"
    assert embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q", "--per-residue"]) == 0
    records = list(read_fasta(fasta))
    assert os.path.getsize(out) <= estimated_size([r.id for r in records], [len(r.seq) for r in records], 16, 8)
