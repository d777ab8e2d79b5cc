import h5py
import numpy as np
import pytest

from proteinbert.cli import embed as embed_cli
from proteinbert.embedding_store import read_embeddings
from proteinbert.embeddings import EmbeddingSettings, embed
from proteinbert.errors import InputError
from proteinbert.model import ProteinBertBackbone, hidden_representation_model
from proteinbert.tokenizer import encode_batch

from backbone_harness import MICRO

TINY = dict(MICRO, n_annotations=6, n_blocks=2)


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
    result = embed(model, seqs, EmbeddingSettings(layers="all", per_residue=True, max_tokens=2048,
                                                  virtual_pad_length=None))
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
    result = embed(model, seqs, EmbeddingSettings(min_length=64, virtual_pad_length=None))
    _, glob = hidden_representation_model(model, "last").predict(
        [encode_batch(seqs, 64), np.zeros((2, 6), "float32")], verbose=0)
    np.testing.assert_allclose(result.protein, glob, atol=1e-5)


def test_virtual_padding_reproduces_2021_fixed_padding(model):
    seqs = ["MKVLAGHHE", "ACDEF"]
    fixed = embed(model, seqs, EmbeddingSettings(min_length=512, virtual_pad_length=None)).protein
    # The default: virtual padding to 512 with twice the convolutions' reach (2 x 40) of real pads gives
    # it to float rounding (~1e-5 here, whatever the margin beyond that).
    np.testing.assert_allclose(embed(model, seqs).protein, fixed, atol=2e-5)
    # Padded to 128 by min_length, the bucket holds those pads anyway.
    virtual = embed(model, seqs, EmbeddingSettings(min_length=128, pad_margin=0)).protein
    np.testing.assert_allclose(virtual, fixed, atol=2e-5)
    # At the tight bucket (16) an approximation, far closer than the bucket alone.
    tight = np.abs(embed(model, seqs, EmbeddingSettings(pad_margin=0)).protein - fixed).max()
    plain = np.abs(embed(model, seqs, EmbeddingSettings(virtual_pad_length=None)).protein - fixed).max()
    assert 1e-4 < tight < plain / 5


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
    assert data["attrs"]["layers"] == "last" and data["attrs"]["pool"] == "global"
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out),
                         "--layers", "all", "--overwrite", "-q"])
    assert rc == 0
    with h5py.File(out) as h5:
        assert h5["protein_embeddings"].shape == (3, 370) and "residue_embeddings" not in h5
    assert data["attrs"]["virtual_pad_length"] == 512 and data["attrs"]["pad_margin"] == 80  # the defaults
    rc = embed_cli.main(["--weights", str(fixtures_dir / "small_lamb.pkl"), "-i", str(fasta), "-o", str(out),
                         "--virtual-pad-length", "0", "--overwrite", "-q"])
    attrs = read_embeddings(out)["attrs"]
    assert rc == 0 and attrs["virtual_pad_length"] == 0 and attrs["pad_margin"] == 0


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


# -- the default padding policy -------------------------------------------------------------------
REPO_FASTA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "sp2014_go.2k.fasta.gz"


@pytest.fixture(scope="module")
def repo_seqs():
    from proteinbert.data.fasta import read_fasta

    seqs = [r.seq for _, r in zip(range(200), read_fasta(REPO_FASTA))]
    # Short ones (where padding matters most), some near and one beyond the 512 model length.
    picked = sorted(seqs, key=len)[:6] + [s for s in seqs if 380 < len(s) < 510][:2] + [s for s in seqs if len(s) > 600][:1]
    assert len(picked) == 9 and len(picked[-1]) > 600
    return picked


def test_default_gives_real_padding_to_512(model, repo_seqs):
    settings = dict(per_residue=True, pool="both")
    fixed = embed(model, repo_seqs, EmbeddingSettings(min_length=512, virtual_pad_length=None, **settings))
    default = embed(model, repo_seqs, EmbeddingSettings(**settings))
    np.testing.assert_allclose(default.protein, fixed.protein, atol=2e-5)
    np.testing.assert_allclose(default.mean_residue, fixed.mean_residue, atol=2e-5)
    for a, b in zip(default.residue, fixed.residue):
        np.testing.assert_allclose(a, b, atol=2e-5)
    # Without the margin the last residues see zeros where real padding has <PAD> states.
    no_margin = embed(model, repo_seqs, EmbeddingSettings(pad_margin=0, **settings))
    assert max(np.abs(a - b).max() for a, b in zip(no_margin.residue, fixed.residue)) > 1e-2


def test_padded_lengths_of_the_default_policy(model):
    from proteinbert.embeddings import Embedder, convolution_reach

    assert convolution_reach(model) == 2 * 20  # two blocks, wide convolution 9 wide at dilation 5
    embedder = Embedder(model)
    # A protein keeps 80 real pads (then its bucket), never beyond 512; beyond 510 residues its own bucket.
    assert embedder.padded_lengths([5, 100, 430, 510, 511, 700]) == [88, 184, 512, 512, 544, 704]
    assert Embedder(model, EmbeddingSettings(virtual_pad_length=None)).padded_lengths([5, 100]) == [8, 104]
    assert Embedder(model, EmbeddingSettings(pad_margin=0)).padded_lengths([5, 100]) == [8, 104]
    assert Embedder(model, EmbeddingSettings(virtual_pad_length=5)).padded_lengths([3]) == [8]  # no bucket fits 5


def test_default_matches_the_2021_code_at_its_length(fixtures_dir):
    """The 2021 reference outputs (small model, no annotations for the first sequence "M"), at model
    lengths 64 and 128: virtual padding to that length gives them, computing fewer positions at 128."""
    from proteinbert.weights import load_backbone

    expected = np.load(fixtures_dir / "small_expected.npz")
    assert expected["seqs"][0] == "M" and expected["X_annotations"][0].sum() == 0
    backbone = load_backbone(fixtures_dir / "small_lamb.pkl")
    for suffix, length in (("", 64), ("_L2", 128)):
        settings = EmbeddingSettings(layers="all", per_residue=True, virtual_pad_length=length)
        result = embed(backbone, ["M"], settings)
        np.testing.assert_allclose(result.protein[0], expected["hidden_global" + suffix][0], atol=1e-4)
        np.testing.assert_allclose(result.residue[0], expected["hidden_seq" + suffix][0, 1:2], atol=1e-4)
    from proteinbert.embeddings import Embedder

    assert Embedder(backbone, EmbeddingSettings(virtual_pad_length=128)).padded_lengths([1]) == [88]


# -- mean pooling ---------------------------------------------------------------------------------
def test_mean_pooling_is_the_mean_of_the_residue_vectors(model, repo_seqs):
    seqs = repo_seqs[:4] + ["MKV"]
    both = embed(model, seqs, EmbeddingSettings(per_residue=True, pool="both", layers="all"))
    manual = np.stack([r.astype(np.float64).mean(axis=0) for r in both.residue])
    np.testing.assert_allclose(both.mean_residue, manual, rtol=0, atol=1e-6)
    assert both.mean_residue.shape == (5, 4 * 8 + 26) and both.protein.shape == (5, 16 + 4 * 16 + 6)
    mean_only = embed(model, seqs, EmbeddingSettings(pool="mean", layers="all"))
    assert mean_only.protein is None and mean_only.residue is None
    np.testing.assert_allclose(mean_only.mean_residue, both.mean_residue, atol=1e-6)


def test_mean_pooling_leaves_out_start_end_and_pads(model):
    from proteinbert.data.batching import bucket_length

    seq = "MKVLAGHHEEKK"
    result = embed(model, [seq], EmbeddingSettings(pool="mean", virtual_pad_length=None))
    L = bucket_length(len(seq) + 2)
    local, _ = hidden_representation_model(model, "last").predict(
        [encode_batch([seq], L), np.zeros((1, 6), "float32")], verbose=0)
    np.testing.assert_allclose(result.mean_residue[0], local[0, 1 : len(seq) + 1].mean(axis=0), atol=1e-6)
    with_specials = local[0, : len(seq) + 2].mean(axis=0)
    assert np.abs(result.mean_residue[0] - with_specials).max() > 1e-3  # the test can tell them apart


def test_mean_pooling_through_chunks(model, real_records):
    seq = (real_records[2].seq * 9)[:300]
    settings = dict(pool="both", per_residue=True, virtual_pad_length=None)
    chunked = embed(model, [seq], EmbeddingSettings(chunk_length=64, **settings))
    np.testing.assert_allclose(chunked.mean_residue[0], chunked.residue[0].astype(np.float64).mean(axis=0), atol=1e-6)
    whole = embed(model, [seq], EmbeddingSettings(chunk_length=None, **settings))
    np.testing.assert_allclose(chunked.mean_residue, whole.mean_residue, atol=1e-5)


def test_settings_refuse_bad_pool_and_margin():
    with pytest.raises(InputError, match=r"pool must be one of 'global', 'mean', 'both'. Received: pool='max'"):
        EmbeddingSettings(pool="max")
    with pytest.raises(InputError, match=r"pad_margin must be an int >= 0 or None. Received: pad_margin=-1"):
        EmbeddingSettings(pad_margin=-1)
    assert EmbeddingSettings(pool="mean", per_residue=True).vectors == ("mean_residue", "residue")
    assert EmbeddingSettings().vectors == ("protein",)


def test_embed_help_shows_every_default():
    parser = embed_cli.build_parser()
    shared = {"help", "version", "quiet", "verbose", "debug", "no_progress"}
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.dest in shared or action.required:
            continue
        text = parser._get_formatter()._expand_help(action)
        assert "default" in text.lower(), action.dest
        if action.default not in (None, False) and action.dest != "threads":
            assert f"default: {action.default}" in text, (action.dest, text)
        checked += 1
    assert checked >= 14
    margin = next(a for a in parser._actions if a.dest == "pad_margin")
    assert "(default: auto = twice the convolutions' reach" in margin.help
