"""Where the weights are found: explicit path, then $PROTEINBERT_WEIGHTS, then ~/proteinbert_models/."""

import shutil
import subprocess
import sys

import pytest

from proteinbert.errors import WeightsError
from proteinbert.weights.locate import RELEASED_WEIGHTS_FILE, resolve_weights


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home directory and no $PROTEINBERT_WEIGHTS."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PROTEINBERT_WEIGHTS", raising=False)
    return home


def put(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_explicit_path_then_environment_then_home(home, tmp_path, monkeypatch):
    default = put(home / "proteinbert_models" / RELEASED_WEIGHTS_FILE)
    assert resolve_weights() == default
    named = put(tmp_path / "env.pkl")
    monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(named))
    assert resolve_weights(None) == named
    explicit = put(tmp_path / "explicit.pkl")
    assert resolve_weights(explicit) == explicit
    assert resolve_weights(str(explicit)) == explicit
    save_dir = tmp_path / "epoch_1_sample_2"  # a pretraining save directory counts as weights
    save_dir.mkdir()
    assert resolve_weights(save_dir) == save_dir


def test_a_preset_name_finds_its_published_weights(home, tmp_path, monkeypatch):
    named = put(tmp_path / "env.pkl")
    monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(named))  # a preset name is explicit: the variable does not apply
    with pytest.raises(WeightsError, match=r"the preset 'released'.*Download the released file"):
        resolve_weights("released")
    released = put(home / "proteinbert_models" / RELEASED_WEIGHTS_FILE)
    assert resolve_weights("released") == released
    with pytest.raises(WeightsError, match=r"the preset 'tiny' has no published weights.*preset\('tiny'\)"):
        resolve_weights("tiny")
    monkeypatch.chdir(tmp_path)
    local = put(tmp_path / "tiny")  # a file of that name is a path, not the preset
    assert resolve_weights("tiny").resolve() == local


@pytest.mark.parametrize("where", ["explicit", "env", "home"])
def test_one_clear_error_saying_where_to_download(home, tmp_path, monkeypatch, where):
    put(home / "proteinbert_models" / RELEASED_WEIGHTS_FILE)  # a default that must not be used instead
    missing = tmp_path / "missing.pkl"
    if where == "env":
        monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(missing))
    if where == "home":
        (home / "proteinbert_models" / RELEASED_WEIGHTS_FILE).unlink()
        missing = home / "proteinbert_models" / RELEASED_WEIGHTS_FILE
    with pytest.raises(WeightsError) as info:
        resolve_weights(missing if where == "explicit" else None)
    msg = str(info.value)
    assert str(missing) in msg
    assert "ftp://ftp.cs.huji.ac.il/users/nadavb/protein_bert/" in msg and RELEASED_WEIGHTS_FILE in msg
    assert "PROTEINBERT_WEIGHTS" in msg and "~/proteinbert_models/" in msg


def test_load_backbone_and_the_2021_loader_find_the_default_file(home, fixtures_dir, monkeypatch):
    from proteinbert import load_pretrained_model
    from proteinbert.weights import load_backbone

    target = home / "proteinbert_models" / RELEASED_WEIGHTS_FILE
    target.parent.mkdir()
    shutil.copy(fixtures_dir / "small_lamb.pkl", target)
    assert load_backbone().n_annotations == 50
    assert load_backbone("released").n_annotations == 50
    generator, encoder = load_pretrained_model()
    assert generator.n_annotations == 50 == encoder.n_annotations
    monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(home / "absent.pkl"))
    with pytest.raises(WeightsError, match="absent.pkl"):
        load_backbone()
    # The 2021 arguments are explicit: they win over the variable.
    assert load_pretrained_model(local_model_dump_dir=str(target.parent))[1].n_annotations == 50


def test_commands_without_weights_fail_before_tensorflow_starts(home, tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p\nMKV\n")
    csv = tmp_path / "train.csv"
    csv.write_text("seq,label\nMKV,1\n")
    code = ("import sys; from proteinbert.cli import embed, finetune; "
            f"a = embed.main(['-i', {str(fasta)!r}, '-o', {str(tmp_path / 'e.h5')!r}]); "
            f"b = finetune.main(['--train', {str(csv)!r}, '-o', {str(tmp_path / 'm')!r}]); "
            "print(a, b, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "1", "False"], done.stderr
    assert done.stderr.count("ftp://ftp.cs.huji.ac.il/users/nadavb/protein_bert/") == 2
    assert not (tmp_path / "e.h5").exists() and not (tmp_path / "m").exists()
