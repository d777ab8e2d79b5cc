"""``--unknown-residues warn|error`` means the same in every command that reads sequences."""

import json

import pytest

from proteinbert.cli import embed, finetune
from proteinbert.cli.main import COMMANDS
from backbone_harness import MICRO

BAD_FASTA = ">P1\nMKVLAAGIVG\n>P2\nMK1VL*AG\n"
TINY = json.dumps(dict(MICRO, n_annotations=4))


@pytest.mark.parametrize("command", ["create-dataset", "embed", "finetune", "predict", "predict-go"])
def test_every_sequence_command_has_the_option(command, capsys):
    import importlib

    module = importlib.import_module(f"proteinbert.cli.{COMMANDS[command][0]}")
    assert module.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--unknown-residues {warn,error}" in text and "(default: warn)" in text.split("--unknown-residues")[-1][:400]


def test_embed_refuses_or_warns(tmp_path, fixtures_dir, capsys):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(BAD_FASTA)
    out = tmp_path / "e.h5"
    argv = ["-i", str(fasta), "--weights", str(fixtures_dir / "small_lamb.pkl"), "-o", str(out)]
    assert embed.main(argv + ["--unknown-residues", "error"]) == 1
    err = capsys.readouterr().err
    assert str(fasta) in err and "'P2'" in err and "'1'" in err and "'*'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]  # no output, no lock, no partial file
    assert embed.main(argv) == 0  # the default: a warning with the count, the rest read as <OTHER>
    assert out.is_file() and "2 character(s) in 1 sequence(s)" in capsys.readouterr().err


def test_finetune_refuses_before_training(tmp_path, capsys):
    csv = tmp_path / "train.csv"
    csv.write_text("seq,label\n" + "\n".join(f"{'MKVLA' * 3}{'1' if i == 5 else ''},{i % 2}" for i in range(12)) + "\n")
    argv = ["-i", str(csv), "--from-scratch", "--architecture", TINY, "-o", str(tmp_path / "ft"),
            "--unknown-residues", "error"]
    assert finetune.main(argv) == 1
    err = capsys.readouterr().err
    assert str(csv) in err and "'1'" in err
    assert not (tmp_path / "ft").exists()
