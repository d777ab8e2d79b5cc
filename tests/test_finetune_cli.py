"""bin/finetune and bin/predict in process, on subsets of the real benchmark CSVs."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_shared
from proteinbert.cli.finetune import main as finetune_main
from proteinbert.cli.predict import main as predict_main
from proteinbert.training.finetuning import FinetunedModel
from backbone_harness import MICRO

TINY_ARCH = json.dumps(dict(MICRO, n_annotations=4))
QUICK_STAGES = ["--stage", "frozen:1e-2:1:frozen:64:16", "--stage", "unfrozen:1e-3:1:unfrozen:64:16"]


def subset(tmp_path, name, split, n, fname=None):
    frame = pd.read_csv(require_shared("data", "protein_benchmarks", f"{name}.{split}.csv"), dtype=str).iloc[:n]
    path = tmp_path / (fname or f"{name}.{split}.csv")
    frame.to_csv(path, index=False)
    return path, frame


def test_finetune_then_predict_signalp(tmp_path, capsys):
    train, _ = subset(tmp_path, "signalP_binary", "train", 48)
    test, test_frame = subset(tmp_path, "signalP_binary", "test", 20)
    out = tmp_path / "model"
    code = finetune_main(["--train", str(train), "--valid", str(test), "--test", str(test), "--from-scratch",
                          "--architecture", TINY_ARCH, "--out", str(out), "-q", *QUICK_STAGES])
    assert code == 0, capsys.readouterr().err
    metrics = pd.read_csv(out / "test_metrics.csv")
    # Evaluated as trained: fixed padding from the first stage's length (64), doubled to fit 72 tokens.
    assert metrics["Model seq len"].astype(str).tolist() == ["128", "All"]
    assert metrics["# records"].tolist() == [20, 20]
    assert 0 <= metrics["AUC"].iloc[-1] <= 1
    confusion = pd.read_csv(out / "test_confusion_matrix.csv")
    assert confusion[["0", "1"]].to_numpy().sum() == 20
    saved = pd.read_csv(out / "test_predictions.csv")
    assert len(saved) == 20 and set(saved.columns) >= {"label", "prob", "pred"}
    # Fixed padding (the default) has every pad: no virtual padding.
    assert json.loads((out / "finetuning.json").read_text())["backbone_architecture"]["virtual_pad_length"] is None

    # predict from a FASTA with the same sequences gives the same probabilities.
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(test_frame.seq)))
    pred_csv = tmp_path / "pred.csv"
    assert predict_main([str(out), str(fasta), "-o", str(pred_csv), "-q"]) == 0
    pred = pd.read_csv(pred_csv)
    assert pred["id"].tolist() == [f"p{i}" for i in range(20)]
    np.testing.assert_allclose(pred["prob"].to_numpy(), saved["prob"].to_numpy(), atol=1e-6)


def test_fasta_plus_labels_categorical_per_residue(tmp_path, capsys):
    _, frame = subset(tmp_path, "secondary_structure", "valid", 24)
    fasta = tmp_path / "train.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(frame.seq)))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": [f"s{i}" for i in range(len(frame))], "label": frame.label}).to_csv(labels, index=False)
    out = tmp_path / "ss"
    code = finetune_main(["--train", str(fasta), "--train-labels", str(labels), "--test", str(fasta),
                          "--test-labels", str(labels), "--level", "local", "--task", "categorical",
                          "--from-scratch", "--architecture", TINY_ARCH, "--hidden-layers", "last",
                          "--out", str(out), "-q", "--stage", "only:1e-2:1:unfrozen:64:16", "--run-eagerly",
                          "--virtual-pad-length", "0"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "finetuning.json").read_text())["backbone_architecture"]["virtual_pad_length"] is None
    model = FinetunedModel.load(out)
    assert model.spec.labels == ("0", "1", "2")
    assert (out / "labels.txt").read_text() == "0\n1\n2\n"
    preds = pd.read_csv(out / "test_predictions.csv", dtype=str)
    assert [len(p) for p in preds.pred] == [len(s) for s in frame.seq]


def test_from_released_format_weights(tmp_path, capsys):
    pkl = require_shared("fixtures", "small_lamb.pkl")
    train, _ = subset(tmp_path, "stability", "train", 32)
    out = tmp_path / "stab"
    code = finetune_main(["--train", str(train), "--task", "numeric", "--weights", str(pkl), "--test", str(train),
                          "--out", str(out), "-q", "--stage", "only:1e-3:1:frozen:64:16", "--run-eagerly"])
    assert code == 0, capsys.readouterr().err
    metrics = pd.read_csv(out / "test_metrics.csv")
    assert "Spearman's rank correlation" in metrics.columns
    assert json.loads((out / "finetuning.json").read_text())["backbone_architecture"]["n_annotations"] == 50


@pytest.mark.parametrize("bad_labels,message", [
    (["1", "x", "0"], "line 3: 'x' is not 0 or 1"),
    (["1", "", "0"], "line 3: missing label"),
])
def test_bad_labels_exit_1_and_write_nothing(tmp_path, capsys, bad_labels, message):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"seq": ["MKV", "MKL", "MAA"], "label": bad_labels}).to_csv(path, index=False)
    out = tmp_path / "never"
    code = finetune_main(["--train", str(path), "--from-scratch", "--architecture", TINY_ARCH, "--out", str(out)])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_unseen_test_category_fails_before_training(tmp_path, capsys):
    train = tmp_path / "train.csv"
    pd.DataFrame({"seq": ["MKV", "MKL", "MAA"], "label": ["a", "b", "a"]}).to_csv(train, index=False)
    test = tmp_path / "test.csv"
    pd.DataFrame({"seq": ["MKV", "MKL"], "label": ["a", "c"]}).to_csv(test, index=False)
    code = finetune_main(["--train", str(train), "--test", str(test), "--task", "categorical", "--from-scratch",
                          "--architecture", TINY_ARCH, "--out", str(tmp_path / "m")])
    assert code == 1
    assert "test.csv line 3: category 'c' was not seen in training" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch):
    assert finetune_main(["--train", "x.csv", "--weights", "w.pkl", "--from-scratch", "--out", "o"]) == 2
    # Neither --weights nor --from-scratch: the default weights, here absent (exit 1, saying where to get them).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PROTEINBERT_WEIGHTS", raising=False)
    assert finetune_main(["--train", "x.csv", "--out", str(tmp_path / "o")]) == 1
    assert "ftp://ftp.cs.huji.ac.il/users/nadavb/protein_bert/" in capsys.readouterr().err
    assert finetune_main(["--train", "x.csv", "--out", "o", "--from-scratch", "--stage", "bad"]) == 2
    assert finetune_main(["--train", "x.csv", "--out", "o", "--from-scratch", "--architecture", "[1]"]) == 2
    assert finetune_main(["--train", "x.csv", "--out", "o", "--from-scratch", "--virtual-pad-length", "-1"]) == 2
    assert "argument --virtual-pad-length: must be an integer >= 0. Received: '-1'" in capsys.readouterr().err


def test_empty_split_and_missing_file_exit_1(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("seq,label\n")
    assert finetune_main(["--train", str(empty), "--from-scratch", "--out", str(tmp_path / "m")]) == 1
    assert "empty" in capsys.readouterr().err
    assert finetune_main(["--train", str(tmp_path / "nope.csv"), "--from-scratch", "--out", str(tmp_path / "m")]) == 1
    assert predict_main([str(tmp_path), str(empty), "-o", str(tmp_path / "p.csv")]) == 1
    assert "not a fine-tuned model directory" in capsys.readouterr().err


def test_benchmark_suite_small(tmp_path, capsys):
    from proteinbert.cli.benchmark_suite import main as suite_main

    data = require_shared("data", "protein_benchmarks")
    out = tmp_path / "suite"
    code = suite_main(["--small", "--from-scratch", "--data-dir", str(data), "--benchmark", "stability",
                       "--benchmark", "major PTMs", "--max-train", "24", "--max-eval", "12", "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table.benchmark.tolist() == ["stability", "major PTMs"]
    stab = table.iloc[0]
    assert stab.status == "ok" and stab.n_train == 24 and stab.n_test == 12 and stab.paper == 0.762
    assert -1 <= stab.score <= 1
    assert table.iloc[1].status.startswith("not run: missing PhosphositePTM")
    md = out.with_suffix(".md").read_text()
    assert "\n| benchmark |" in md and "| stability | global numeric | Spearman |" in md
    assert suite_main(["--small", "--from-scratch", "--benchmark", "nope", "--data-dir", str(data),
                       "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x.csv").exists()


def test_load_backbone_from_a_pretraining_save_directory(tmp_path):
    import shutil

    from proteinbert.training.jobs import starting_backbone as load_backbone

    save = tmp_path / "epoch_10_sample_1280"
    save.mkdir()
    shutil.copy(require_shared("fixtures", "small_lamb.pkl"), save / "epoch_10_sample_1280.pkl")
    backbone = load_backbone(save)
    assert backbone.n_annotations == 50 and backbone.d_seq == 32
    with pytest.raises(Exception, match="without a .pkl"):
        load_backbone(tmp_path)  # a directory without a .pkl of its own
