"""Fine-tuning's epoch log: a line per epoch of every stage, and on request a CSV and TensorBoard events,
numbered across stages; the refusals that keep two runs' logs apart; ``finetune --help``."""

import argparse
import csv
import json

import numpy as np
import pandas as pd
import pytest

from proteinbert.cli.finetune import build_parser
from proteinbert.cli.finetune import main as finetune_main
from backbone_harness import MICRO

TINY_ARCH = json.dumps(dict(MICRO, n_annotations=4))
# Three stages as in the 2021 schedule: frozen (head on cached features), unfrozen, final at a longer length.
STAGES = ["--stage", "frozen:1e-2:2:frozen:32:8", "--stage", "unfrozen:1e-3:2:unfrozen:32:8",
          "--stage", "final:1e-4:1:unfrozen:64:4"]
STAGE_LR = {"frozen": 1e-2, "unfrozen": 1e-3, "final": 1e-4}


def _splits(directory, n_train=24, n_valid=12):
    rng = np.random.default_rng(0)
    residues = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    paths = []
    for split, n in (("train", n_train), ("valid", n_valid)):
        seqs = ["".join(rng.choice(residues, size=int(rng.integers(10, 28)))) for _ in range(n)]
        path = directory / f"{split}.csv"
        pd.DataFrame({"seq": seqs, "label": [i % 2 for i in range(n)]}).to_csv(path, index=False)
        paths.append(str(path))
    return paths


def _events(directory):
    """``{tag: [(step, value, plugin)]}`` from every event file in ``directory``."""
    import tensorflow as tf

    found = {}
    for event_file in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                plugin = value.metadata.plugin_data.plugin_name
                found.setdefault(value.tag, []).append((event.step, tensor.item(), plugin))
    return found


def _args(train, valid, out, *extra):
    return ["--train", train, "--valid", valid, "--from-scratch", "--architecture", TINY_ARCH, "--out", str(out),
            "--run-eagerly", *STAGES, *extra]


def test_every_epoch_of_every_stage_in_one_run_log_csv_and_tensorboard(tmp_path, capsys):
    train, valid = _splits(tmp_path)
    csv_path, tb = tmp_path / "logs" / "epochs.csv", tmp_path / "tb" / "run1"
    code = finetune_main(_args(train, valid, tmp_path / "model", "--csv-log", str(csv_path), "--tensorboard", str(tb)))
    err = capsys.readouterr().err
    assert code == 0, err
    stages = json.loads((tmp_path / "model" / "finetuning.json").read_text())["stages"]
    n_epochs = sum(s["epochs"] for s in stages)
    assert [s["name"] for s in stages] == ["frozen", "unfrozen", "final"] and n_epochs >= 3

    # The CSV: one row per epoch, numbered across stages; the columns the brief names, in order.
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == ["stage", "epoch", "stage_epoch", "loss", "auc", "val_loss", "val_auc", "lr", "seconds"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, n_epochs + 1))
    expected_stages = [s["name"] for s in stages for _ in range(s["epochs"])]
    assert [r["stage"] for r in rows] == expected_stages
    assert [int(r["stage_epoch"]) for r in rows] == [i + 1 for s in stages for i in range(s["epochs"])]
    for row in rows:
        assert float(row["seconds"]) > 0 and 0 <= float(row["val_auc"]) <= 1
        if row["stage_epoch"] == "1":  # the stage's own learning rate (a plateau can lower later ones)
            assert float(row["lr"]) == pytest.approx(STAGE_LR[row["stage"]], rel=1e-6)
    # The same numbers as Keras's history of each stage.
    history_losses = [x for s in stages for x in s["history"]["val_loss"]]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], history_losses, rtol=1e-6)

    # One log line per epoch, naming the stage, the global epoch, loss, validation metrics, lr and seconds.
    lines = [line for line in err.splitlines() if " epoch " in line and "of the stage" in line]
    assert len(lines) == n_epochs
    for line, row in zip(lines, rows):
        assert f"stage {row['stage']} epoch {row['epoch']} ({row['stage_epoch']} of the stage): loss=" in line
        assert "val_loss=" in line and "val_auc=" in line and "lr=" in line and line.endswith(" s")

    # TensorBoard: one event file; every scalar at steps 1..N, continuous over the stages.
    assert len(list(tb.glob("events.out.tfevents.*"))) == 1
    events = _events(tb)
    for tag in ("loss", "auc", "val_loss", "val_auc", "lr", "seconds", "stage_index"):
        assert [step for step, _, _ in events[tag]] == list(range(1, n_epochs + 1)), tag
        assert {plugin for _, _, plugin in events[tag]} == {"scalars"}
    np.testing.assert_allclose([v for _, v, _ in events["val_loss"]], history_losses, rtol=1e-6)
    assert [v for _, v, _ in events["stage_index"]] == [{"frozen": 1, "unfrozen": 2, "final": 3}[s]
                                                        for s in expected_stages]
    assert [(step, v.decode(), plugin) for step, v, plugin in events["stage"]] == \
        [(i + 1, s, "text") for i, s in enumerate(expected_stages)]


def test_logs_of_an_earlier_run_are_refused_then_replaced_with_overwrite_and_quiet_is_silent(tmp_path, capsys):
    train, valid = _splits(tmp_path, 16, 8)
    csv_path, tb = tmp_path / "epochs.csv", tmp_path / "tb"
    one_stage = ["--stage", "only:1e-2:1:unfrozen:32:8"]
    common = ["--train", train, "--valid", valid, "--from-scratch", "--architecture", TINY_ARCH, "--run-eagerly",
              *one_stage, "-q"]
    csv_path.write_text("an earlier run's log\n")
    assert finetune_main(common + ["--out", str(tmp_path / "m1"), "--csv-log", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert f"the epoch log {csv_path} exists" in err and "--overwrite" in err
    assert csv_path.read_text() == "an earlier run's log\n" and not (tmp_path / "m1").exists()

    tb.mkdir()
    (tb / "events.out.tfevents.1.host.1.0.v2").write_bytes(b"")
    assert finetune_main(common + ["--out", str(tmp_path / "m1"), "--tensorboard", str(tb)]) == 2
    err = capsys.readouterr().err
    assert f"the TensorBoard directory {tb} already holds event files" in err and "--overwrite" in err

    # Inside the model directory, which is written in one go at the end: refused.
    assert finetune_main(common + ["--out", str(tmp_path / "m1"), "--csv-log", str(tmp_path / "m1" / "e.csv")]) == 2
    assert "lies inside --out" in capsys.readouterr().err
    # The log may not replace an input.
    assert finetune_main(common + ["--out", str(tmp_path / "m1"), "--csv-log", train, "--overwrite"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err

    # --overwrite replaces both; -q prints no epoch lines.
    code = finetune_main(common + ["--out", str(tmp_path / "m1"), "--csv-log", str(csv_path), "--tensorboard", str(tb),
                                   "--overwrite"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "of the stage" not in err
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("only", "1")]
    event_files = list(tb.glob("events.out.tfevents.*"))
    assert len(event_files) == 1 and event_files[0].stat().st_size > 0
    assert [step for step, _, _ in _events(tb)["loss"]] == [1]


def test_api_config_logs_a_per_residue_categorical_run(tmp_path):
    from proteinbert.model import ProteinBertBackbone
    from proteinbert.training.finetuning import FinetuneConfig, OutputSpec, Stage, finetune_from_backbone

    backbone = ProteinBertBackbone(n_annotations=3, **MICRO)
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACDEFGHIK"), size=int(rng.integers(8, 20)))) for _ in range(12)]
    labels = ["".join(rng.choice(list("abc"), size=len(s))) for s in seqs]
    config = FinetuneConfig(stages=(Stage("a", 1e-2, 1, True, 32, 8), Stage("b", 1e-3, 2, True, 32, 8)),
                            run_eagerly=True, csv_log=tmp_path / "e.csv", tensorboard_dir=tmp_path / "tb")
    model = finetune_from_backbone(backbone, OutputSpec("local", "categorical"), seqs, labels, seqs, labels,
                                   config=config)
    frame = pd.read_csv(tmp_path / "e.csv")
    assert list(frame.columns) == ["stage", "epoch", "stage_epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                   "lr", "seconds"]
    n = sum(s["epochs"] for s in model.metadata["stages"])
    assert frame["epoch"].tolist() == list(range(1, n + 1)) and frame["stage"].iloc[0] == "a"
    assert ((frame["val_accuracy"] >= 0) & (frame["val_accuracy"] <= 1)).all()
    # The settings are recorded with the model, as plain strings.
    assert model.metadata["config"]["csv_log"] == str(tmp_path / "e.csv")
    assert [s for s, _, _ in _events(tmp_path / "tb")["loss"]] == list(range(1, n + 1))


def test_finetune_help_describes_every_option_and_its_default():
    parser = build_parser()
    text = parser.format_help()
    for flag in ("--tensorboard DIR", "--csv-log FILE"):
        assert flag in text
    missing, no_default = [], []
    for action in parser._actions:
        if not action.option_strings or action.required or isinstance(action, (argparse._HelpAction,
                                                                                argparse._VersionAction)):
            continue
        name = action.option_strings[-1]
        if not action.help:
            missing.append(name)
        elif "default" not in action.help.lower() and name not in ("--quiet", "--verbose", "--debug", "--overwrite"):
            no_default.append(name)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not state the default: {no_default}"
    # Defaults are shown with their values.
    assert "(default: 512)" in text and "(default: 0.0001)" in text and "(default: seq)" in text
