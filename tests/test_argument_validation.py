"""One rule for numeric and JSON arguments in every command: usage errors (exit 2) before any work."""

from pathlib import Path

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


# -- create-dataset keeps an existing output unless --overwrite -------------------------------------
_OBO = ("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: root\nnamespace: molecular_function\n\n"
        "[Term]\nid: GO:0000002\nname: child\nnamespace: molecular_function\nis_a: GO:0000001 ! root\n")


def _tree(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_create_dataset_refuses_an_existing_output_without_overwrite(tmp_path, capsys):
    from proteinbert.data.h5dataset import PretrainingDataset

    (tmp_path / "x.fa").write_text(">P1\nMKVLAAGIVA\n>P2\nMSTNPKPQRK\n>P3\nMGSSHHHHHH\n")
    (tmp_path / "x.tsv").write_text("P1\tGO:0000002\nP2\tGO:0000002\nP3\tGO:0000001\n")
    (tmp_path / "go.obo").write_text(_OBO)
    out = tmp_path / "d.h5"
    out.write_bytes(b"an earlier result")
    argv = ["--fasta", str(tmp_path / "x.fa"), "--go-tsv", str(tmp_path / "x.tsv"), "--go-obo", str(tmp_path / "go.obo"),
            "-o", str(out), "--min-records", "1", "--single-process", "-q"]
    before = _tree(tmp_path)
    assert create_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--output {out} exists; pass --overwrite to replace it" in err and "Traceback" not in err
    assert _tree(tmp_path) == before  # inputs and the old output untouched, no lock or scratch left
    assert create_cli.main(argv + ["--overwrite"]) == 0
    with PretrainingDataset(out) as ds:
        assert len(ds) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "go.obo", "x.fa", "x.tsv"]


# -- run-pipeline: where the bundled inputs are -----------------------------------------------------
def _pipeline_args(*argv):
    return pipeline_cli.build_parser().parse_args(list(argv))


def test_run_pipeline_data_folder_comes_from_the_option_the_variable_or_the_checkout(tmp_path, monkeypatch):
    from conftest import REPO

    names = ("sp2014_go.2k.fasta.gz", "sp2014_go.2k.go.tsv.gz", "go-2019-01-27.obo.gz")
    monkeypatch.delenv(pipeline_cli.DATA_ENV, raising=False)
    paths = pipeline_cli.input_paths(_pipeline_args())
    assert [paths[o] for o in ("--fasta", "--go-tsv", "--go-obo")] == [REPO / "data" / n for n in names]
    monkeypatch.setenv(pipeline_cli.DATA_ENV, str(tmp_path))
    assert pipeline_cli.input_paths(_pipeline_args())["--fasta"] == tmp_path / names[0]
    other = tmp_path / "other"
    other.mkdir()
    paths = pipeline_cli.input_paths(_pipeline_args("--data-dir", str(other), "--go-obo", "my.obo"))
    assert (paths["--go-tsv"], paths["--go-obo"]) == (other / names[1], Path("my.obo"))


def test_run_pipeline_without_a_data_folder_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(pipeline_cli.DATA_ENV, raising=False)
    monkeypatch.setattr(pipeline_cli, "_CHECKOUT", tmp_path / "site-packages")  # as after pip install
    monkeypatch.chdir(tmp_path)
    assert pipeline_cli.main(["-o", "out"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the usage, then a one-line error
    assert last.startswith("proteinbert run-pipeline: error: no data folder: pass --data-dir DIR or set "
                           "PROTEINBERT_DATA=DIR, a folder holding sp2014_go.2k.fasta.gz, sp2014_go.2k.go.tsv.gz, "
                           "go-2019-01-27.obo.gz")
    # Only the files still missing are asked for; with all three given no folder is needed.
    assert pipeline_cli.main(["-o", "out", "--fasta", "a.fa", "--go-tsv", "a.tsv"]) == 2
    assert "holding go-2019-01-27.obo.gz (or give --go-obo instead)" in capsys.readouterr().err
    paths = pipeline_cli.input_paths(_pipeline_args("--fasta", "a.fa", "--go-tsv", "a.tsv", "--go-obo", "g.obo"))
    assert paths == {"--fasta": Path("a.fa"), "--go-tsv": Path("a.tsv"), "--go-obo": Path("g.obo")}
    assert list(tmp_path.iterdir()) == []


def test_run_pipeline_data_variable_naming_a_missing_folder_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(pipeline_cli.DATA_ENV, str(tmp_path / "gone"))
    assert pipeline_cli.main(["-o", str(tmp_path / "out")]) == 1
    assert f"$PROTEINBERT_DATA {tmp_path / 'gone'} does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_no_default_path_points_into_the_test_data():
    from conftest import REPO

    offenders = [f"{p.relative_to(REPO)}:{i}" for p in sorted((REPO / "proteinbert").rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if "shared/" in line]
    assert offenders == []
