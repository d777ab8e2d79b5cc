"""One rule for numeric and JSON arguments in every command: usage errors (exit 2) before any work."""

import pytest

from proteinbert.cli import benchmark_suite as suite_cli
from proteinbert.cli import convert_weights as convert_cli
from proteinbert.cli import create_dataset as create_cli
from proteinbert.cli import embed as embed_cli
from proteinbert.cli import finetune as finetune_cli
from proteinbert.cli import predict as predict_cli
from proteinbert.cli import pretrain as pretrain_cli
from proteinbert.cli import run_pipeline as pipeline_cli
from proteinbert.cli import set_test_set as test_set_cli

# Inputs need not exist: the arguments are refused before anything is opened.
PRETRAIN = ["missing.h5", "-o", "never"]
FINETUNE = ["--train", "missing.csv", "--from-scratch", "--out", "never"]
EMBED = ["-i", "missing.fa", "-o", "never.h5"]
CREATE = ["--fasta", "a.fa", "--go-tsv", "a.tsv", "--go-obo", "go.obo", "-o", "never.h5"]
SUITE = ["--from-scratch", "--data-dir", "bm", "--out", "never"]


@pytest.mark.parametrize("main,argv,option,value", [
    (pretrain_cli.main, PRETRAIN, "--epochs", "-1"),
    (pretrain_cli.main, PRETRAIN, "--lr", "nan"),
    (pretrain_cli.main, PRETRAIN, "--lr", "0"),
    (pretrain_cli.main, PRETRAIN, "--d-seq", "0"),
    (pretrain_cli.main, PRETRAIN, "--keep-every", "-1"),
    (pretrain_cli.main, PRETRAIN, "--time-budget", "-1"),
    (pretrain_cli.main, PRETRAIN, "--time-budget", "inf"),
    (pretrain_cli.main, PRETRAIN, "--holdout", "-2"),
    (pretrain_cli.main, PRETRAIN, "--episodes", "0:8"),
    (pretrain_cli.main, PRETRAIN, "--seed", "-1"),
    (finetune_cli.main, FINETUNE, "--dropout", "2"),
    (finetune_cli.main, FINETUNE, "--dropout", "1"),
    (finetune_cli.main, FINETUNE, "--crop-len", "0"),
    (finetune_cli.main, FINETUNE, "--max-records", "-3"),
    (finetune_cli.main, FINETUNE, "--batch-size", "0"),
    (finetune_cli.main, FINETUNE, "--lr", "-1e-4"),
    (finetune_cli.main, FINETUNE, "--virtual-pad-length", "-1"),
    (embed_cli.main, EMBED, "--min-length", "-5"),
    (embed_cli.main, EMBED, "--max-tokens", "0"),
    (create_cli.main, CREATE, "--min-records", "0"),
    (create_cli.main, CREATE, "--test-probability", "1.5"),
    (create_cli.main, CREATE, "--test-probability", "nan"),
    (test_set_cli.main, ["x.h5"], "--test-probability", "-0.1"),
    (predict_cli.main, ["model", "in.csv", "-o", "out.csv"], "--crop-len", "0"),
    (suite_cli.main, SUITE, "--max-train", "-5"),
    (suite_cli.main, SUITE, "--max-eval", "0"),
    (pipeline_cli.main, [], "--pretrain-epochs", "0"),
])
def test_bad_numbers_are_usage_errors_naming_option_and_value(main, argv, option, value, capsys, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + [f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and repr(value) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("main,argv", [
    (convert_cli.main, ["a.pkl", "b.keras"]),
    (suite_cli.main, SUITE),
    (finetune_cli.main, FINETUNE),
])
@pytest.mark.parametrize("architecture,message", [
    ("[1, 2]", "must be a JSON object"),
    ("[1]", "must be a JSON object"),
    ('{"d_sek": 8}', "unknown key(s) 'd_sek'"),
    ('{"d_seq": 0}', "d_seq must be an integer >= 1. Received: 0"),
    ('{"d_seq": 8.5}', "d_seq must be an integer >= 1. Received: 8.5"),
    ("{oops", "is not valid JSON"),
])
def test_architecture_json_is_checked_in_every_command(main, argv, architecture, message, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--architecture", architecture]) == 2
    err = capsys.readouterr().err
    assert "--architecture" in err and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_benchmark_suite_without_its_data_fails(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert suite_cli.main(["--small", "--from-scratch", "--data-dir", str(missing), "--out", str(tmp_path / "t")]) == 1
    assert f"{missing} does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert suite_cli.main(["--small", "--from-scratch", "--data-dir", str(empty), "--out", str(tmp_path / "t")]) == 1
    assert "nothing to run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no table of "not run" rows
