import h5py
import numpy as np
import pytest

from proteinbert.cli import embed as embed_cli
from proteinbert.embedding_store import read_embeddings
from proteinbert.embeddings import EmbeddingSettings, embed
from proteinbert.errors import InputError
from proteinbert.model import ProteinBertBackbone, hidden_representation_model
from proteinbert.tokenizer import encode_batch

TINY = dict(n_annotations=6, d_seq=8, d_global=16, n_blocks=2, n_heads=2, d_key=4)


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(5)
    return ProteinBertBackbone(**TINY)


@pytest.fixture(scope="module")
def real_records(shared_data):
    from proteinbert.data.fasta import read_fasta

    records = []
    for rec in read_fasta(shared_data / "swissprot_go_2014" / "sp2014_go.2k.fasta.gz"):
        records.append(rec)
        if len(records) == 40:
            break
    return records


def test_matches_hidden_model_at_the_bucket_length(model, real_records):
    seqs = [r.seq for r in real_records[:12]]
    result = embed(model, seqs, EmbeddingSettings(layers="all", per_residue=True, max_tokens=2048))
    hidden = hidden_representation_model(model, "all")
    from proteinbert.data.batching import bucket_length

    for i in (0, 5, 11):
        L = bucket_length(len(seqs[i]) + 2)
        local, glob = hidden.predict([encode_batch([seqs[i]], L), np.zeros((1, 6), "float32")], verbose=0)
        np.testing.assert_allclose(result.protein[i], glob[0], atol=1e-5)
        np.testing.assert_allclose(result.residue[i], local[0, 1 : len(seqs[i]) + 1], atol=1e-5)
    assert result.protein.shape == (12, 16 + 4 * 16 + 6) and result.residue[0].shape[1] == 4 * 8 + 26


def test_independent_of_batch_composition(model, real_records):
    seqs = [r.seq for r in real_records]
    together = embed(model, seqs, EmbeddingSettings(max_tokens=4096)).protein
    alone = np.stack([embed(model, [s], EmbeddingSettings()).protein[0] for s in seqs[:5]])
    np.testing.assert_allclose(together[:5], alone, atol=1e-5)


def test_min_length_reproduces_2021_fixed_padding(model):
    seqs = ["MKVLAGHHE", "ACDEF"]
    result = embed(model, seqs, EmbeddingSettings(min_length=64))
    _, glob = hidden_representation_model(model, "last").predict(
        [encode_batch(seqs, 64), np.zeros((2, 6), "float32")], verbose=0)
    np.testing.assert_allclose(result.protein, glob, atol=1e-5)


def test_virtual_padding_reproduces_2021_fixed_padding(model):
    seqs = ["MKVLAGHHE", "ACDEF"]
    fixed = embed(model, seqs, EmbeddingSettings(min_length=512)).protein
    # Padded to 128, the bucket holds every <PAD> within the convolutions' reach: exact.
    virtual = embed(model, seqs, EmbeddingSettings(min_length=128, virtual_pad_length=512)).protein
    np.testing.assert_allclose(virtual, fixed, atol=1e-5)
    # At the tight bucket (16) an approximation, far closer than the bucket alone.
    tight = np.abs(embed(model, seqs, EmbeddingSettings(virtual_pad_length=512)).protein - fixed).max()
    plain = np.abs(embed(model, seqs, EmbeddingSettings()).protein - fixed).max()
    assert tight < plain / 5


def test_virtual_padding_with_chunks(model, real_records):
    # 300 residues: chunked (beyond both lengths); ~100: between them, so it must run whole.
    seqs = [real_records[0].seq[:40], (real_records[1].seq * 3)[:100], (real_records[2].seq * 9)[:300]]
    settings = dict(per_residue=True, virtual_pad_length=128)
    chunked = embed(model, seqs, EmbeddingSettings(chunk_length=64, **settings))
    whole = embed(model, seqs, EmbeddingSettings(chunk_length=None, **settings))
    np.testing.assert_allclose(chunked.protein, whole.protein, atol=1e-5)
    for a, b in zip(chunked.residue, whole.residue):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(InputError, match="virtual_pad_length must be"):
        EmbeddingSettings(virtual_pad_length=0)


def test_bad_input(model):
    with pytest.raises(InputError, match=r"seqs\[1\] is empty"):
        embed(model, ["MK", ""])
    with pytest.raises(TypeError, match="not a single"):
        embed(model, "MKV")
    with pytest.raises(InputError, match="layers must be"):
        EmbeddingSettings(layers="first")


def test_cli_writes_hdf5_with_ids_in_order(tmp_path, fixtures_dir):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p1 first\nMKVLAGHHEEKK\n>p2\nAC\nDE\n>p3\n" + "M" * 300 + "\n")
    out = tmp_path / "out.h5"
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out),
                         "--per-residue", "-q"])
    assert rc == 0
    data = read_embeddings(out)
    assert data["ids"] == ["p1", "p2", "p3"] and data["lengths"].tolist() == [12, 4, 300]
    assert data["protein"].shape == (3, 64) and [r.shape for r in data["residue"]] == [(12, 32), (4, 32), (300, 32)]
    assert data["attrs"]["layers"] == "last" and data["attrs"]["virtual_pad_length"] == 0
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out),
                         "--layers", "all", "--overwrite", "-q"])
    assert rc == 0
    with h5py.File(out) as h5:
        assert h5["protein_embeddings"].shape == (3, 370) and "residue_embeddings" not in h5
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out),
                         "--virtual-pad-length", "512", "--overwrite", "-q"])
    assert rc == 0 and read_embeddings(out)["attrs"]["virtual_pad_length"] == 512


@pytest.mark.parametrize("content,match", [
    (">a\nMK\n>a\nMV\n", "duplicate id 'a'"),
    (">a\n\n>b\nMK\n", "record 'a' has an empty sequence"),
    ("MKVL\n>a\nMK\n", "line 1: expected '>'"),
    ("", "no FASTA records"),
])
def test_cli_bad_fasta_exits_1_and_writes_nothing(tmp_path, fixtures_dir, capsys, content, match):
    fasta = tmp_path / "bad.fasta"
    fasta.write_text(content)
    out = tmp_path / "out.h5"
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out), "-q"])
    assert rc == 1
    assert match in capsys.readouterr().err and "bad.fasta" in capsys.readouterr().err + str(fasta)
    assert list(tmp_path.iterdir()) == [fasta]


def test_cli_usage_errors_exit_2(tmp_path, fixtures_dir):
    assert embed_cli.main(["-i", "x.fasta"]) == 2  # --weights and --output missing
    existing = tmp_path / "out.h5"
    existing.write_text("keep me")
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", "x.fa", "-o", str(existing)])
    assert rc == 2 and existing.read_text() == "keep me"
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", "x.fa", "-o", str(tmp_path / "o.h5"),
                         "--virtual-pad-length", "-1"])
    assert rc == 2 and not (tmp_path / "o.h5").exists()


def test_cli_missing_weights_exit_1(tmp_path, capsys):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMK\n")
    rc = embed_cli.main(["--weights", str(tmp_path / "nope.pkl"), "-i", str(fasta), "-o", str(tmp_path / "o.h5")])
    assert rc == 1 and "nope.pkl" in capsys.readouterr().err


@pytest.mark.slow
def test_35000_residue_protein_embeds(model):
    seq = ("MKVLAGHHEEKKACDEFGHIKLMNPQRSTVWY" * 1100)[:35000]
    result = embed(model, [seq], EmbeddingSettings(per_residue=True))
    assert result.residue[0].shape == (35000, 8) and np.isfinite(result.protein).all()


def test_xla_matches_graph_mode(model):
    seqs = ["MKVLAGHHE", "ACDEF", "M" * 40]
    plain = embed(model, seqs, EmbeddingSettings(per_residue=True))
    xla = embed(model, seqs, EmbeddingSettings(per_residue=True, jit_compile=True, max_tokens=256))
    np.testing.assert_allclose(plain.protein, xla.protein, atol=1e-4)
    for a, b in zip(plain.residue, xla.residue):
        np.testing.assert_allclose(a, b, atol=1e-4)
