"""Fine-tuning saved after every epoch and continued: a run stopped anywhere and continued ends with
the model of a run never stopped; a finished run is not trained again; another run's checkpoint or a
damaged one is refused."""

import json

import numpy as np
import pytest

from backbone_harness import MICRO, tiny_backbone
from proteinbert.errors import FormatError, InputError
from proteinbert.training.finetuning import FinetuneConfig, OutputSpec, Stage, finetune_from_backbone

# The 2021 schedule in miniature: frozen (head on cached features), unfrozen, final at a longer length.
STAGES = (Stage("frozen", 1e-2, 2, False, 32, 8), Stage("unfrozen", 1e-3, 4, True, 32, 8),
          Stage("final", 1e-4, 2, True, 64, 4))
SPEC = OutputSpec("global", "binary")


def _records(n, seed):
    rng = np.random.default_rng(seed)
    residues = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    seqs = ["".join(rng.choice(residues, size=int(rng.integers(8, 40)))) for _ in range(n)]
    return seqs, [i % 2 for i in range(n)]


TRAIN, VALID = _records(24, 0), _records(12, 1)


class Stop(Exception):
    pass


def _stopper(after_epochs):
    """A callback that stops the process (an exception) after this many epochs, all stages counted."""
    import keras

    class _Stop(keras.callbacks.Callback):
        seen = 0

        def on_epoch_end(self, epoch, logs=None):
            type(self).seen += 1
            if type(self).seen == after_epochs:
                raise Stop(f"stopped after {after_epochs} epochs")

    return _Stop()


def _finetune(config, callbacks=(), train=TRAIN):
    import keras

    keras.utils.set_random_seed(0)  # the same starting weights in every run
    return finetune_from_backbone(tiny_backbone(n_annotations=4), SPEC, *train, *VALID, config=config,
                                  callbacks=callbacks, virtual_pad_length=None)


def _config(**kw):
    return FinetuneConfig(stages=STAGES, run_eagerly=True, seed=3, **kw)


@pytest.fixture(scope="module")
def uninterrupted():
    return _finetune(_config())


def _assert_same_run(got, want):
    for a, b in zip(got.model.get_weights(), want.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    got_stages, want_stages = got.metadata["stages"], want.metadata["stages"]
    assert [(s["name"], s["epochs"]) for s in got_stages] == [(s["name"], s["epochs"]) for s in want_stages]
    for g, w in zip(got_stages, want_stages):
        np.testing.assert_allclose(g["history"]["val_loss"], w["history"]["val_loss"], rtol=1e-5)


@pytest.mark.parametrize("stop_after", [1, 3, 4, 7])  # frozen stage, first/second unfrozen epoch, final stage
def test_a_stopped_run_continues_to_the_same_model(tmp_path, uninterrupted, stop_after):
    total = sum(s["epochs"] for s in uninterrupted.metadata["stages"])
    if stop_after >= total:
        pytest.skip("the uninterrupted run stopped early, before this epoch")
    # replace_logs: a run stopped before its first save starts over, logs included
    config = _config(checkpoint_dir=str(tmp_path / "ckpt"), csv_log=str(tmp_path / "epochs.csv"), replace_logs=True)
    with pytest.raises(Stop):
        _finetune(config, callbacks=[_stopper(stop_after)])
    # What was saved: the stop interrupts the epoch it ends (before its save), and a stage on
    # cached features is saved at its end only.
    state_path = tmp_path / "ckpt" / "state.json"
    frozen, unfrozen, _ = (s["epochs"] for s in uninterrupted.metadata["stages"])
    if stop_after <= frozen:
        assert not state_path.exists()
    else:
        state = json.loads(state_path.read_text())
        stage = 1 if stop_after <= frozen + unfrozen else 2
        assert (state["next_stage"], state["next_epoch"]) == (stage, stop_after - 1 - frozen - (stage - 1) * unfrozen)
    continued = _finetune(config)
    _assert_same_run(continued, uninterrupted)
    # the epoch log covers the whole run, the part before the stop included
    lines = (tmp_path / "epochs.csv").read_text().splitlines()
    assert len(lines) == 1 + total
    assert [line.split(",")[1] for line in lines[1:]] == [str(i) for i in range(1, total + 1)]
    # one step folder at a time: the one the state names
    final = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert (final["next_stage"], final["next_epoch"]) == (len(STAGES), 0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted([final["step"], "state.json"])


def test_a_finished_run_is_not_trained_again(tmp_path, uninterrupted):
    config = _config(checkpoint_dir=str(tmp_path / "ckpt"))
    first = _finetune(config)
    _assert_same_run(first, uninterrupted)
    counter = _stopper(10**6)
    again = _finetune(config, callbacks=[counter])
    assert type(counter).seen == 0  # no epoch ran
    _assert_same_run(again, uninterrupted)


def test_another_runs_checkpoint_or_a_damaged_one_is_refused(tmp_path):
    config = _config(checkpoint_dir=str(tmp_path / "ckpt"))
    with pytest.raises(Stop):
        _finetune(config, callbacks=[_stopper(3)])
    other_data = (TRAIN[0][:-1] + ["MKV"], TRAIN[1])
    with pytest.raises(InputError, match="holds the checkpoint of another fine-tuning run"):
        _finetune(config, train=other_data)
    with pytest.raises(InputError, match="another fine-tuning run"):
        _finetune(FinetuneConfig(stages=STAGES, run_eagerly=True, seed=4, checkpoint_dir=config.checkpoint_dir))
    state = tmp_path / "ckpt" / "state.json"
    state.write_text(state.read_text()[:20])
    with pytest.raises(FormatError, match="state.json"):
        _finetune(config)


def test_the_finetune_command_continues_a_stopped_run_and_then_deletes_its_checkpoint(tmp_path, monkeypatch,
                                                                                     capsys):
    import pandas as pd

    from proteinbert.cli.finetune import main
    from proteinbert.training import finetuned_model

    paths = []
    for name, (seqs, labels) in (("train", TRAIN), ("valid", VALID)):
        paths.append(tmp_path / f"{name}.csv")
        pd.DataFrame({"seq": seqs, "label": labels}).to_csv(paths[-1], index=False)
    ckpt, out, log = tmp_path / "ckpt", tmp_path / "model", tmp_path / "epochs.csv"
    args = ["--train", str(paths[0]), "--valid", str(paths[1]), "--from-scratch", "--architecture",
            json.dumps(dict(MICRO, n_annotations=4)),
            "--run-eagerly", "--stage", "frozen:1e-2:1:frozen:32:8", "--stage", "unfrozen:1e-3:2:unfrozen:32:8",
            "--checkpoint-dir", str(ckpt), "--csv-log", str(log), "--out", str(out)]

    def stop(*a, **kw):
        raise Stop("stopped before the model was written")
    with monkeypatch.context() as patch:
        patch.setattr(finetuned_model.FinetunedModel, "save", stop)
        try:
            code = main(args)
        except Stop:
            code = None
    assert code != 0 and not out.exists() and (ckpt / "state.json").is_file()
    logged = log.read_text()
    capsys.readouterr()
    assert main(args) == 0  # the CSV log is continued, not refused as another run's
    err = capsys.readouterr().err
    assert "continuing the fine-tuning saved in" in err and "of the stage" not in err  # no epoch trained again
    assert (out / "model.keras").is_file() and log.read_text() == logged
    assert not ckpt.exists()
    inside = args[:-1] + [str(tmp_path / "model2")]
    inside[inside.index("--checkpoint-dir") + 1] = str(tmp_path / "model2" / "ckpt")
    inside[inside.index("--csv-log") + 1] = str(tmp_path / "epochs2.csv")
    assert main(inside) == 2 and "lies inside --out" in capsys.readouterr().err
