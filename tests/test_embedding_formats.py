"""Embeddings outputs: h5, npz and npy-dir hold the same numbers, are written whole or not at all,
and the embed command refuses what would overwrite or misname an output."""

import json
import os
import zipfile

import numpy as np
import pytest

from proteinbert import embedding_store
from proteinbert.cli import embed as embed_cli
from proteinbert.embedding_store import file_stems, read_embeddings, writing_embeddings
from proteinbert.errors import FormatError
from proteinbert.weights import export_released_weights, write_pkl
from backbone_harness import MICRO

TINY = dict(MICRO, n_annotations=6)
IDS = ["sp|P1|A", "a/b", ".hidden", "x", "X", "x.mean"]  # unsafe characters, a case clash, a suffix clash
OUTPUT_NAMES = {"h5": "e.h5", "npz": "e.npz", "npy-dir": "e_dir"}


@pytest.fixture(scope="module")
def tiny_pkl(tmp_path_factory):
    import keras

    from proteinbert.model import ProteinBertBackbone

    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("w") / "tiny.pkl"
    write_pkl(path, export_released_weights(ProteinBertBackbone(**TINY)))
    return path


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text("".join(f">{rid} description\n{seq}\n" for rid, seq in zip(
        IDS, ["MKVLAAGIVALL", "MSTNPKPQ", "MGSSHHHHHHSSGLVPRGSH", "MK", "ACDEFGHIKLMNPQRSTVWY" * 3, "M"])))
    return path


def synthetic(n_ids=len(IDS), seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, n_ids)
    vectors = {"protein": rng.normal(size=(n_ids, 5)).astype(np.float32),
               "mean_residue": rng.normal(size=(n_ids, 3)).astype(np.float32),
               "residue": [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths]}
    return lengths, vectors


def write(path, format, ids, lengths, vectors, batches=((4, 1, 0), (5, 3, 2))):
    widths = {k: (v.shape[1] if k != "residue" else v[0].shape[1]) for k, v in vectors.items()}
    with writing_embeddings(path, format, ids, lengths, widths, {"layers": "last", "pool": "both", "n": 3}) as w:
        for idx in batches:  # out of order, as the embedder's length-sorted batches come
            idx = np.array(idx)
            w.write(idx, {k: ([v[i] for i in idx] if k == "residue" else v[idx]) for k, v in vectors.items()})


@pytest.mark.parametrize("format", ["h5", "npz", "npy-dir"])
def test_each_format_reads_back_what_was_written(tmp_path, format):
    lengths, vectors = synthetic()
    out = tmp_path / OUTPUT_NAMES[format]
    write(out, format, IDS, lengths, vectors)
    data = read_embeddings(out)
    assert data["format"] == format and data["ids"] == IDS and data["lengths"].tolist() == lengths.tolist()
    np.testing.assert_array_equal(data["protein"], vectors["protein"])
    np.testing.assert_array_equal(data["mean_residue"], vectors["mean_residue"])
    assert len(data["residue"]) == len(IDS)
    for got, want in zip(data["residue"], vectors["residue"]):
        np.testing.assert_array_equal(got, want)
    assert data["attrs"]["layers"] == "last" and data["attrs"]["n"] == 3
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no scratch files, no partial output


def test_npz_is_plain_numpy_without_pickle(tmp_path):
    lengths, vectors = synthetic()
    write(tmp_path / "e.npz", "npz", IDS, lengths, vectors)
    with np.load(tmp_path / "e.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["attrs", "ids", "lengths", "mean_residue", "protein", "residue", "residue_offsets"]
        assert z["ids"].tolist() == IDS and z["residue"].shape == (lengths.sum(), 3)
        offsets = z["residue_offsets"]
        np.testing.assert_array_equal(z["residue"][offsets[2]:offsets[3]], vectors["residue"][2])
        assert json.loads(str(z["attrs"]))["pool"] == "both"


def test_npy_dir_files_and_index(tmp_path):
    lengths, vectors = synthetic()
    write(tmp_path / "d", "npy-dir", IDS, lengths, vectors)
    lines = (tmp_path / "d" / "index.tsv").read_text().splitlines()
    assert lines[0] == "id\tlength\tprotein\tmean_residue\tresidue"
    rows = {r.split("\t")[0]: r.split("\t") for r in lines[1:]}
    assert rows["sp|P1|A"][2:] == ["sp_P1_A.npy", "sp_P1_A.mean.npy", "sp_P1_A.residues.npy"]
    assert rows["a/b"][2] == "a_b.npy" and rows[".hidden"][2] == "_hidden.npy"
    assert rows["X"][2] == "X~2.npy" and rows["x.mean"][2] == "x.mean~2.npy"  # not x's own files
    for i, rid in enumerate(IDS):
        np.testing.assert_array_equal(np.load(tmp_path / "d" / rows[rid][2]), vectors["protein"][i])
        np.testing.assert_array_equal(np.load(tmp_path / "d" / rows[rid][4]), vectors["residue"][i])
    names = os.listdir(tmp_path / "d")
    assert len(names) == 3 * len(IDS) + 2 and len({n.lower() for n in names}) == len(names)


def test_file_stems_of_long_ids_stay_unique():
    long_a, long_b = "A" * 300 + "1", "A" * 300 + "2"
    stems = file_stems([long_a, long_b])
    assert stems[0] != stems[1] and all(len(s) <= 200 for s in stems)


@pytest.mark.parametrize("format", ["h5", "npz", "npy-dir"])
def test_only_the_vectors_asked_for(tmp_path, format):
    lengths, vectors = synthetic()
    out = tmp_path / OUTPUT_NAMES[format]
    write(out, format, IDS, lengths, {"mean_residue": vectors["mean_residue"]})
    data = read_embeddings(out)
    assert "protein" not in data and "residue" not in data
    np.testing.assert_array_equal(data["mean_residue"], vectors["mean_residue"])


@pytest.mark.parametrize("format", ["npz", "npy-dir"])
def test_an_interrupt_while_writing_leaves_nothing(tmp_path, format):
    lengths, vectors = synthetic()
    out = tmp_path / OUTPUT_NAMES[format]
    with pytest.raises(KeyboardInterrupt):
        with writing_embeddings(out, format, IDS, lengths, {"protein": 5}, {}) as w:
            w.write(np.array([0, 1]), {"protein": vectors["protein"][:2]})
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_read_refuses_what_is_not_embeddings(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(FormatError, match=r"x\.txt: not an embeddings file"):
        read_embeddings(tmp_path / "x.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(FormatError, match=r"d: not an embeddings directory: index.tsv is missing"):
        read_embeddings(tmp_path / "d")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("something.npy", b"")
    with pytest.raises(FormatError, match=r"other\.npz: not a complete npz embeddings output: .*ids"):
        read_embeddings(tmp_path / "other.npz")


# -- the command ----------------------------------------------------------------------------------
def run(tiny_pkl, fasta, out, *extra):
    return embed_cli.main(["--weights", str(tiny_pkl), "-i", str(fasta), "-o", str(out), "-q", *extra])


def test_the_three_formats_hold_the_numbers_of_the_h5_output(tmp_path, tiny_pkl, fasta):
    results = {}
    for format, name in OUTPUT_NAMES.items():
        assert run(tiny_pkl, fasta, tmp_path / name, "--format", format, "--per-residue", "--pool", "both") == 0
        results[format] = read_embeddings(tmp_path / name)
    h5 = results["h5"]
    assert h5["ids"] == IDS and h5["protein"].shape == (6, 16) and h5["mean_residue"].shape == (6, 8)
    assert [r.shape for r in h5["residue"]] == [(12, 8), (8, 8), (20, 8), (2, 8), (60, 8), (1, 8)]
    for format in ("npz", "npy-dir"):
        other = results[format]
        assert other["ids"] == h5["ids"] and other["lengths"].tolist() == h5["lengths"].tolist()
        for name in ("protein", "mean_residue"):
            np.testing.assert_allclose(other[name], h5[name], rtol=0, atol=1e-6)
        for a, b in zip(other["residue"], h5["residue"]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert {k: str(v) for k, v in other["attrs"].items()} == {k: str(v) for k, v in h5["attrs"].items()}
    assert sorted(os.listdir(tmp_path)) == sorted(["in.fa", *OUTPUT_NAMES.values()])


def test_pool_mean_writes_the_mean_vectors_only(tmp_path, tiny_pkl, fasta):
    import h5py

    assert run(tiny_pkl, fasta, tmp_path / "m.h5", "--pool", "mean") == 0
    with h5py.File(tmp_path / "m.h5") as h5:
        assert "protein_embeddings" not in h5 and h5["mean_residue_embeddings"].shape == (6, 8)
        assert h5.attrs["pool"] == "mean"


@pytest.mark.parametrize("format", ["h5", "npz", "npy-dir"])
def test_bad_fasta_exits_1_and_leaves_nothing(tmp_path, tiny_pkl, format, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nMK\n>a\nMV\n")
    assert run(tiny_pkl, bad, tmp_path / OUTPUT_NAMES[format], "--format", format) == 1
    assert "duplicate id 'a'" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["bad.fa"]


@pytest.mark.parametrize("format", ["npz", "npy-dir"])
def test_a_failed_write_exits_1_and_leaves_nothing(tmp_path, tiny_pkl, fasta, format, monkeypatch, capsys):
    import errno

    writer = embedding_store.NpzWriter if format == "npz" else embedding_store.NpyDirWriter

    def disk_full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "write", disk_full)
    assert run(tiny_pkl, fasta, tmp_path / OUTPUT_NAMES[format], "--format", format) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["in.fa"]


def test_an_interrupted_embed_exits_130_and_leaves_nothing(tmp_path, tiny_pkl, fasta, monkeypatch):
    real = embedding_store.NpyDirWriter.write

    def write_then_interrupt(self, *args):
        real(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(embedding_store.NpyDirWriter, "write", write_then_interrupt)
    assert run(tiny_pkl, fasta, tmp_path / "d", "--format", "npy-dir") == 130
    assert os.listdir(tmp_path) == ["in.fa"]


def test_overwrite_replaces_a_directory_and_a_failure_keeps_the_old_one(tmp_path, tiny_pkl, fasta, monkeypatch):
    out = tmp_path / "d"
    assert run(tiny_pkl, fasta, out, "--format", "npy-dir", "--per-residue") == 0
    assert run(tiny_pkl, fasta, out, "--format", "npy-dir") == 2  # exists, no --overwrite
    assert (out / "x.residues.npy").exists()
    before = sorted(os.listdir(out))

    def fail(self, *args):
        raise OSError("injected failure")

    with monkeypatch.context() as m:
        m.setattr(embedding_store.NpyDirWriter, "write", fail)
        assert run(tiny_pkl, fasta, out, "--format", "npy-dir", "--overwrite") == 1
    assert sorted(os.listdir(out)) == before and sorted(os.listdir(tmp_path)) == ["d", "in.fa"]
    assert run(tiny_pkl, fasta, out, "--format", "npy-dir", "--overwrite") == 0
    assert not (out / "x.residues.npy").exists() and (out / "x.npy").exists()  # replaced whole
    assert sorted(os.listdir(tmp_path)) == ["d", "in.fa"]


def test_usage_errors_exit_2_and_touch_nothing(tmp_path, tiny_pkl, fasta, capsys):
    assert run(tiny_pkl, fasta, tmp_path / "e.h5", "--format", "parquet") == 2
    assert run(tiny_pkl, fasta, tmp_path / "e.h5", "--pool", "max") == 2
    assert run(tiny_pkl, fasta, tmp_path / "e.h5", "--pad-margin", "-3") == 2
    capsys.readouterr()
    assert run(tiny_pkl, fasta, tmp_path / "e.npz") == 2  # named npz, written as the default h5
    assert "--output" in capsys.readouterr().err
    assert run(tiny_pkl, fasta, fasta, "--format", "npz") == 2  # the output is the input
    assert fasta.read_text().startswith(">sp|P1|A")
    assert run(tiny_pkl, fasta, tmp_path, "--format", "npy-dir", "--overwrite") == 2  # holds the input
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("keep me")
    assert run(tiny_pkl, fasta, keep, "--format", "npy-dir", "--overwrite") == 2  # not an embeddings directory
    assert "holds no index.tsv" in capsys.readouterr().err
    existing = tmp_path / "e.npz"
    existing.write_bytes(b"old")
    assert run(tiny_pkl, fasta, existing, "--format", "npz") == 2
    assert existing.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["e.npz", "in.fa", "mine"] and os.listdir(keep) == ["notes.txt"]
