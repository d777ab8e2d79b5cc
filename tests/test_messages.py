"""Errors and warnings that name the real problem: the file, the line, the value."""

import logging
import os
import sqlite3

import numpy as np
import pytest

from proteinbert.cli import create_dataset as create_cli
from proteinbert.cli import finetune as finetune_cli
from proteinbert.data.labelled import read_labelled
from proteinbert.errors import FormatError, InputError
from proteinbert.tokenizer import non_residue_characters, warn_non_residues
from proteinbert.training.finetuning import OutputSpec, require_both_classes

OBO = ("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: root\n\n"
       "[Term]\nid: GO:0000002\nname: child\nis_a: GO:0000001 ! root\n")


def test_a_ragged_first_row_is_blamed_on_itself(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seq,label\nMKV,1,oops\n" + "MKL,0\n" * 10)
    with pytest.raises(FormatError, match=r"t\.csv at line 2: 3 fields, but the header has 2"):
        read_labelled(path)


def test_a_ragged_later_row_keeps_pandas_line_number(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seq,label\nMKV,1\nMKL,0,oops\n")
    with pytest.raises(FormatError, match=r"t\.csv.*line 3"):
        read_labelled(path)


def test_single_class_binary_training_set_is_refused(tmp_path, capsys):
    train = tmp_path / "one_class.csv"
    train.write_text("seq,label\nMKV,1\nMKL,1\nMAA,1\n")
    out = tmp_path / "m"
    assert finetune_cli.main(["--train", str(train), "--from-scratch", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"the training split ({train}) has only label '1' (3 records)" in err and "both 0 and 1" in err
    assert not out.exists()


def test_both_classes_pass_and_local_labels_are_checked():
    require_both_classes(OutputSpec("global", "binary"), ["1", "0", None])
    require_both_classes(OutputSpec("global", "numeric"), [1.0, 1.0])
    with pytest.raises(InputError, match="only label '0'"):
        require_both_classes(OutputSpec("local", "binary"), ["000", "00"])


def test_non_letters_read_as_other_are_counted_and_warned(caplog):
    assert non_residue_characters(["MKV", "BZXJ"])[0] == 0  # ambiguity letters are fine
    with caplog.at_level(logging.WARNING):
        assert warn_non_residues(["MK1V", "M K#*", "MKV"], "in.fa") == 4
    assert "in.fa: 4 character(s) in 2 sequence(s) are not amino-acid letters and are read as <OTHER>" in caplog.text


def test_a_byte_order_mark_in_the_go_tsv_is_not_an_id(tmp_path):
    from proteinbert.data.go_tsv import parse_go_tsv
    import io

    rows = list(parse_go_tsv(io.StringIO("\ufeffaccession\tgo\nP1\tGO:0000002\n"), "x.tsv"))
    assert [(r.accession, r.go_ids) for r in rows] == [("P1", ("GO:0000002",))]


def test_a_full_disk_under_the_scratch_table_is_one_line(tmp_path, monkeypatch, capsys):
    from proteinbert.data import dataset_builder

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(dataset_builder._AnnotationStore, "__init__", full)
    (tmp_path / "x.fa").write_text(">P1\nMKV\n")
    (tmp_path / "x.tsv").write_text("P1\tGO:0000002\n")
    (tmp_path / "go.obo").write_text(OBO)
    out = tmp_path / "o" / "d.h5"
    argv = ["--fasta", str(tmp_path / "x.fa"), "--go-tsv", str(tmp_path / "x.tsv"), "--go-obo", str(tmp_path / "go.obo"),
            "-o", str(out), "--min-records", "1", "--no-progress", "--single-process"]
    assert create_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"scratch database in {out.parent}: database or disk is full" in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_resume_from_a_state_without_keys_is_one_line(tmp_path, capsys):
    import json

    from proteinbert.cli import pretrain as pretrain_cli
    from proteinbert.training import checkpoints
    from proteinbert.weights import ReleasedWeights

    from pretraining_h5 import write_pretraining_h5

    h5 = tmp_path / "d.h5"
    write_pretraining_h5(h5, [(f"P{i}", "MKVLAAGIVA", ["GO:0000001"]) for i in range(8)], min_records=1)
    out = tmp_path / "run"
    save = checkpoints.write_save(out, 1, 8, ReleasedWeights(1, [np.zeros((1, 2), np.float32)], []),
                                  {"step": 1, "architecture": {}}, {"step": np.array([1])})
    assert json.loads((save.path / "state.json").read_text())["step"] == 1
    capsys.readouterr()  # (a log handler left by an earlier test's CLI call may have complained)
    assert pretrain_cli.main([str(h5), "-o", str(out), "--resume", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "state.json: not a complete pretraining save state (missing samples" in err and "annotations" in err
    assert "Traceback" not in err and "KeyError" not in err


def test_hdf5_lock_refusal_says_another_process_writes(tmp_path, monkeypatch):
    import h5py

    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.errors import DatasetSchemaError

    def locked(*args, **kwargs):
        raise OSError("Unable to synchronously open file (unable to lock file, errno = 11, error message = "
                      "'Resource temporarily unavailable')")

    monkeypatch.setattr(h5py, "File", locked)
    with pytest.raises(DatasetSchemaError, match=r"d\.h5: another process has this file open for writing"):
        PretrainingDataset(tmp_path / "d.h5")


def test_input_checks_name_the_option_the_path_and_the_problem(tmp_path):
    from proteinbert.cli._common import check_inputs

    (tmp_path / "a.fa").write_text(">p\nMKV\n")
    check_inputs(files={"--fasta": tmp_path / "a.fa", "--go-tsv": None}, dirs={"--data-dir": tmp_path})
    for files, dirs, message in (
            ({"--fasta": tmp_path / "b.fa"}, None, f"--fasta {tmp_path / 'b.fa'} does not exist"),
            ({"--fasta": tmp_path}, None, f"--fasta {tmp_path} is a directory, not a file"),
            (None, {"--data-dir": tmp_path / "a.fa"}, f"--data-dir {tmp_path / 'a.fa'} is not a directory")):
        with pytest.raises(InputError) as info:
            check_inputs(files=files, dirs=dirs)
        assert str(info.value) == message


def test_an_unreadable_input_is_named(tmp_path, monkeypatch, capsys):
    from proteinbert.cli import pretrain as pretrain_cli

    h5 = tmp_path / "d.h5"
    h5.write_bytes(b"x")
    h5.chmod(0)
    if os.geteuid() == 0:  # root may read anything: let the permission check see what a user would
        monkeypatch.setattr(os, "access", lambda path, mode: not (os.fspath(path) == str(h5) and mode & os.R_OK))
    assert pretrain_cli.main([str(h5), "-o", str(tmp_path / "run")]) == 1
    assert f"DATASET {h5} is not readable (permission denied)" in capsys.readouterr().err
