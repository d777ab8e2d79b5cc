"""Pretraining: losses, saves (atomic, keep policy, 2021 .pkl), exact resume, faults, CLI, replicas."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from proteinbert.data.pretraining_batches import PretrainingDataSettings
from proteinbert.errors import InputError
from proteinbert.training import checkpoints
from proteinbert.training.pretraining import (
    Pretrainer, PretrainingSettings, TrainingDivergedError, column_auc, load_pretrained, pretrain, predict_go_terms,
)
from proteinbert.weights import read_pkl, released_weight_names, write_pkl

from conftest import REPO, free_ports, require_shared
from pretraining_h5 import read_sp2014, write_pretraining_h5
from backbone_harness import tiny_sizes

ARCH = tiny_sizes(n_blocks=1)
DATA = PretrainingDataSettings(episodes=((32, 8), (64, 4)), steps_per_episode=3, chunk_size=64,
                               holdout_records=40, seed=3)


def settings(out, **kw):
    base = dict(output_dir=str(out), data=DATA, steps_per_epoch=4, max_epochs=4, save_every_epochs=1,
                keep_every_saves=2, progress=False, learning_rate=1e-3, eval_every_epochs=0, tensorboard=False)
    base.update(kw)
    return PretrainingSettings(**base)


@pytest.fixture(scope="module")
def h5_path(tmp_path_factory):
    d = require_shared("data", "swissprot_go_2014")
    records = read_sp2014(d / "sp2014_go.2k.fasta.gz", d / "sp2014_go.2k.go.tsv.gz", n=300)
    path = tmp_path_factory.mktemp("pt") / "sp300.h5"
    write_pretraining_h5(path, records, min_records=3, test_fraction=0.1)
    return path


@pytest.fixture(scope="module")
def reference(h5_path, tmp_path_factory):
    """An uninterrupted 4-epoch run (16 steps) that the other runs must reproduce."""
    out = tmp_path_factory.mktemp("ref")
    return out, pretrain(h5_path, settings(out, eval_every_epochs=1, eval_max_records=40, tensorboard=True),
                         architecture=ARCH)


def _losses(result):
    return np.array([l[1:] for l in result.step_losses])


def test_run_saves_history_and_2021_pkl(reference, h5_path):
    out, result = reference
    assert result.stopped == "max_epochs" and result.step == 16 and result.epoch == 4
    assert result.samples == 8 * 3 + 4 * 3 + 8 * 3 + 4 * 3 + 8 * 3 + 4  # episode rotation every 3 steps
    losses = _losses(result)
    assert np.isfinite(losses).all() and losses[:, 0].mean() > 1.0
    # keep policy: saves 1..4, keep every 2nd and the newest
    assert [s.epoch for s in checkpoints.list_saves(out)] == [2, 4]
    last = checkpoints.latest_save(out)
    assert last.path.name == f"epoch_4_sample_{result.samples}"
    w = read_pkl(last.pkl_path)
    n = len(released_weight_names(ARCH["n_blocks"]))
    assert len(w.model_weights) == n and len(w.optimizer_weights) == 1 + 2 * n
    assert isinstance(w.optimizer_weights[0], np.integer) and int(w.optimizer_weights[0]) == 16
    for arr, m, v in zip(w.model_weights, w.optimizer_weights[1:n + 1], w.optimizer_weights[n + 1:]):
        assert arr.shape == m.shape == v.shape
    assert (np.concatenate([v.ravel() for v in w.optimizer_weights[n + 1:]]) >= 0).all()  # second moments
    state = json.loads((last.path / "state.json").read_text())
    assert state["annotations"][:2] == sorted(state["annotations"])[:2] and len(state["annotations"]) == w.n_annotations
    assert state["step"] == 16 and state["architecture"]["d_seq"] == 16
    history = (out / "history.tsv").read_text().splitlines()
    assert len(history) == 1 + 5 and "eval_go_auc_macro" in history[0]
    last = result.history[-1]
    assert 0 <= last["corrupted_accuracy"] <= 1 and 0 <= last["uncorrupted_accuracy"] <= 1
    assert "token_accuracy" not in last and "eval_token_accuracy" not in last  # no headline copying reaches
    # ~5 % of the clean tokens are corrupted: a few hundred positions; the most frequent residue
    # (L) covers about a tenth of them
    assert 0.03 < last["eval_corrupted_unigram_baseline"] < 0.3 and last["eval_corrupted_positions"] > 20
    assert 1 <= last["eval_go_terms_scored"] <= w.n_annotations
    assert 0.5 <= last["eval_go_auc_micro_baseline"] <= 1
    import tensorflow as tf

    tags = set()
    for event_file in (out / "tensorboard").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.add(value.tag)
                assert value.metadata.plugin_data.plugin_name == "scalars"
    assert {"loss", "seq_loss", "annot_loss", "corrupted_accuracy", "uncorrupted_accuracy", "learning_rate",
            "samples_per_s", "tokens_per_s", "eval_seq_loss", "eval_corrupted_accuracy",
            "eval_corrupted_unigram_baseline", "eval_uncorrupted_accuracy", "eval_go_auc_macro",
            "eval_go_auc_micro", "eval_go_auc_micro_baseline", "eval_go_terms_scored"} <= tags
    assert not list(out.glob(".partial-*"))


def test_column_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random((60, 5)) < 0.3
    scores = np.round(rng.random((60, 5)), 1)  # ties
    keep = rng.random((60, 5)) < 0.7
    y[:, 4] = False  # no positives: NaN
    got = column_auc(y, scores, keep)
    want = [roc_auc_score(y[keep[:, j], j], scores[keep[:, j], j]) for j in range(4)]
    np.testing.assert_allclose(got[:4], want, rtol=1e-12)
    assert np.isnan(got[4])


def _hand_made_batch():
    """Two proteins, four corrupted positions whose clean tokens are A, L, K, L (most frequent: L,
    2 of 4), and four annotated proteins over two GO terms."""
    from proteinbert.data.pretraining_batches import PretrainingBatch
    from proteinbert.tokenizer import END_ID, PAD_ID, START_ID, TOKEN_TO_ID as T

    enc = lambda s: [T[c] for c in s]  # noqa: E731
    targets = np.array([[START_ID, *enc("AAL"), END_ID, PAD_ID], [START_ID, *enc("AKLL"), END_ID],
                        [START_ID, *enc("MM"), END_ID, PAD_ID, PAD_ID], [START_ID, *enc("M"), END_ID] + [PAD_ID] * 3],
                       np.int32)
    tokens = targets.copy()
    for (i, j), new in {(0, 1): "W", (0, 3): "Y", (1, 2): "W", (1, 4): "C"}.items():
        tokens[i, j] = T[new]
    y = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float32)
    return PretrainingBatch(-1, 0, tokens, np.zeros_like(y), targets, y, (targets != PAD_ID).astype(np.float32),
                            np.ones(4, np.float32), np.arange(4)), T


def test_metrics_and_baselines_on_a_hand_made_batch():
    from proteinbert.tokenizer import VOCAB_SIZE
    from proteinbert.training.pretraining import MACRO_AUC_BASELINE, describe_heldout, evaluate_batch

    batch, T = _hand_made_batch()
    freqs = np.array([0.6, 0.2])
    onehot = lambda ids: np.eye(VOCAB_SIZE, dtype=np.float32)[ids]  # noqa: E731
    go = lambda t: np.tile(freqs, (len(t), 1))  # noqa: E731 -- scores = training label frequencies

    copy = evaluate_batch(lambda t, a: (onehot(t), go(t)), batch, batch_size=3, label_frequencies=freqs)
    assert copy["eval_corrupted_accuracy"] == 0.0 and copy["eval_uncorrupted_accuracy"] == 1.0
    assert copy["eval_corrupted_unigram_baseline"] == 0.5 and copy["eval_corrupted_positions"] == 4
    # the label-frequency model: 3 positives at 0.6, 1 at 0.2; 1 negative at 0.6, 3 at 0.2:
    # (3·3 wins + (3·1 + 1·3) / 2 ties) / 16 pairs = 0.75, and every term's AUC is a tie
    assert copy["eval_go_auc_micro"] == copy["eval_go_auc_micro_baseline"] == 0.75
    assert copy["eval_go_auc_macro"] == MACRO_AUC_BASELINE and copy["eval_go_terms_scored"] == 2

    always_l = evaluate_batch(lambda t, a: (onehot(np.full_like(t, T["L"])), go(t)), batch)
    assert always_l["eval_corrupted_accuracy"] == always_l["eval_corrupted_unigram_baseline"] == 0.5
    oracle = evaluate_batch(lambda t, a: (onehot(batch.token_targets[:len(t)]), batch.annotation_targets[:len(t)]),
                            batch, label_frequencies=freqs)
    assert oracle["eval_corrupted_accuracy"] == 1.0 and oracle["eval_go_auc_micro"] == 1.0
    assert oracle["eval_go_auc_macro"] == 1.0 and oracle["eval_go_auc_micro_baseline"] == 0.75
    assert "eval_go_auc_micro_baseline" not in evaluate_batch(lambda t, a: (onehot(t), go(t)), batch)
    # the best guess other than the input token: the baseline guesses L (2 of the 4 clean tokens)
    assert copy["eval_corrupted_recovery_baseline"] == 0.5
    second = lambda ids: (0.6 * onehot(batch.tokens[:len(ids)]) + 0.4 * onehot(ids)).astype(np.float32)  # noqa: E731
    knows = evaluate_batch(lambda t, a: (second(batch.token_targets[:len(t)]), go(t)), batch)
    assert knows["eval_corrupted_accuracy"] == 0.0 and knows["eval_corrupted_recovery_accuracy"] == 1.0
    guesses_l = evaluate_batch(lambda t, a: (second(np.full_like(t, T["L"])), go(t)), batch)
    assert guesses_l["eval_corrupted_recovery_accuracy"] == guesses_l["eval_corrupted_recovery_baseline"] == 0.5
    text = describe_heldout(copy)
    assert "accuracy at corrupted positions 0.0000 (most-frequent-token baseline 0.5000, 4 positions)" in text
    assert "best guess other than the input token" in describe_heldout(knows)
    assert "macro 0.5000 over 2 terms" in text and "label-frequency baseline 0.7500" in text


def test_accuracy_counts_are_the_same_in_numpy_and_in_the_training_step():
    import keras
    import tensorflow as tf

    from proteinbert.training.pretraining import accuracies, accuracy_counts

    batch, T = _hand_made_batch()
    pred = batch.token_targets.copy()
    pred[0, 3] = T["A"]  # one corrupted position wrong
    pred[2, 1] = T["A"]  # one uncorrupted position wrong
    want = accuracy_counts(pred, batch.tokens, batch.token_targets, batch.token_weights)
    np.testing.assert_array_equal(want, [4, 3, 14, 13])
    graph = tf.function(lambda *a: accuracy_counts(*a, xp=keras.ops))
    got = graph(*(tf.constant(v) for v in (pred, batch.tokens, batch.token_targets, batch.token_weights)))
    np.testing.assert_array_equal(got.numpy(), want)
    assert accuracies(want, "eval_") == {"eval_corrupted_accuracy": 0.75, "eval_uncorrupted_accuracy": 13 / 14}


def test_label_frequencies_come_from_the_training_records(h5_path):
    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.training.pretraining import training_label_frequencies

    with PretrainingDataset(h5_path) as ds:
        got = training_label_frequencies(ds, DATA, chunk=7)
        recs = ds.read(0, len(ds) - DATA.holdout_records)
        keep = recs.annotation_masks.any(axis=1) & ~recs.test_set_mask
        np.testing.assert_allclose(got, recs.annotation_masks[keep].mean(axis=0))
        assert training_label_frequencies(ds, DATA, max_records=0) is None


def test_resume_continues_exactly(reference, h5_path, tmp_path):
    _, ref = reference
    first = pretrain(h5_path, settings(tmp_path, max_epochs=2), architecture=ARCH)
    with pytest.raises(InputError, match="already holds saves"):
        Pretrainer(h5_path, settings(tmp_path), architecture=ARCH)
    second = pretrain(h5_path, settings(tmp_path), resume=True)
    resumed = np.concatenate([_losses(first), _losses(second)])
    np.testing.assert_allclose(resumed, _losses(ref), rtol=1e-5, atol=1e-6)
    assert second.samples == ref.samples
    a = read_pkl(checkpoints.latest_save(tmp_path).pkl_path)
    b = read_pkl(checkpoints.latest_save(reference[0]).pkl_path)
    for x, y in zip(a.model_weights + a.optimizer_weights[1:], b.model_weights + b.optimizer_weights[1:]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_ctrl_c_stops_cleanly_and_resumes(reference, h5_path, tmp_path):
    _, ref = reference

    def interrupt_at_6(trainer, step, metrics):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = pretrain(h5_path, settings(tmp_path), architecture=ARCH, step_hook=interrupt_at_6)
    assert stopped.stopped == "interrupted" and stopped.step == 7
    save = checkpoints.latest_save(tmp_path)
    assert json.loads((save.path / "state.json").read_text())["step"] == 7
    rest = pretrain(h5_path, settings(tmp_path), resume=True)
    np.testing.assert_allclose(np.concatenate([_losses(stopped), _losses(rest)]), _losses(ref),
                               rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_with_last_good_save(h5_path, tmp_path):
    def poison(trainer, step, metrics):
        if step == 5:  # after the epoch-1 save
            v = trainer.model.get_layer("output-seq").kernel
            v.assign(np.full(v.shape, np.nan, np.float32))

    with pytest.raises(TrainingDivergedError, match=r"step 6.*Last good save: .*epoch_1_sample_"):
        pretrain(h5_path, settings(tmp_path), architecture=ARCH, step_hook=poison)
    save = checkpoints.latest_save(tmp_path)
    assert save.epoch == 1
    weights, state, _ = checkpoints.read_save(save)
    assert all(np.isfinite(w).all() for w in weights.model_weights) and state["step"] == 4


def test_failed_save_leaves_the_previous_one(h5_path, tmp_path, monkeypatch):
    real = checkpoints.write_pkl
    calls = []

    def disk_full(path, weights):
        calls.append(path)
        if len(calls) == 2:
            real(path, weights)  # a partial file in the temporary directory...
            raise OSError(errno.ENOSPC, "No space left on device", str(path))  # ...then the disk is full
        return real(path, weights)

    monkeypatch.setattr(checkpoints, "write_pkl", disk_full)
    with pytest.raises(OSError, match="No space left"):
        pretrain(h5_path, settings(tmp_path), architecture=ARCH)
    saves = checkpoints.list_saves(tmp_path)
    assert [s.epoch for s in saves] == [1]
    assert not list(tmp_path.glob(".partial-*"))
    weights, state, stream = checkpoints.read_save(saves[0])
    assert state["step"] == 4 and int(stream["step"]) == 4
    monkeypatch.setattr(checkpoints, "write_pkl", real)
    resumed = pretrain(h5_path, settings(tmp_path, max_epochs=2), resume=True)
    assert resumed.step == 8


def test_start_from_a_2021_pkl_with_optimizer_state(reference, h5_path, tmp_path):
    src = checkpoints.latest_save(reference[0]).pkl_path
    copied = tmp_path / "epoch_4_sample_x.pkl"
    write_pkl(copied, read_pkl(src))
    trainer = Pretrainer(h5_path, settings(tmp_path / "run"), init_weights=copied, architecture=ARCH)
    try:
        again = checkpoints.export_lamb_state(trainer.model, trainer.optimizer)
        original = read_pkl(src)
        assert int(again[0]) == 16
        for x, y in zip(again[1:], original.optimizer_weights[1:]):
            np.testing.assert_array_equal(x, y)
        names = released_weight_names(1)
        by_path = {v.path: v for v in trainer.model.weights}
        for name, arr in zip(names, original.model_weights):
            np.testing.assert_array_equal(by_path[name].numpy(), arr)
        # GO predictions are named by GO id, from the mapping kept in the save
        model, terms = load_pretrained(checkpoints.latest_save(reference[0]).path)
        assert terms == trainer.dataset.annotations
        for a, b in zip(model.get_weights(), trainer.model.get_weights()):
            np.testing.assert_array_equal(a, b)
        preds = predict_go_terms(model, terms, ["MKVLAAGIVALLLAAGCSS"], top_k=3, seq_len=64)
        assert len(preds[0]) == 3 and all(t.startswith("GO:") and 0 < p < 1 for t, p in preds[0])
    finally:
        trainer.dataset.close()


def test_start_from_the_2021_fixture_imports_lamb_state_in_2021_order(tmp_path):
    """small_lamb.pkl was written by the 2021 code (TF-Addons LAMB): its optimizer state must
    land on the right Keras variables and come back out in the same order."""
    fixture = require_shared("fixtures", "small_lamb.pkl")
    d = require_shared("data", "swissprot_go_2014")
    records = read_sp2014(d / "sp2014_go.2k.fasta.gz", d / "sp2014_go.2k.go.tsv.gz", n=200)
    h5 = tmp_path / "fifty.h5"
    write_pretraining_h5(h5, records, min_records=1, n_terms=50)
    arch = dict(d_seq=32, d_global=64, n_blocks=2, n_heads=4, d_key=16)
    trainer = Pretrainer(h5, settings(tmp_path / "run"), init_weights=fixture, architecture=arch)
    try:
        original = read_pkl(fixture)
        again = checkpoints.export_lamb_state(trainer.model, trainer.optimizer)
        assert int(trainer.optimizer.iterations.numpy()) == int(original.optimizer_weights[0]) > 0
        assert len(again) == len(original.optimizer_weights) == 1 + 2 * 53
        for x, y in zip(again[1:], original.optimizer_weights[1:]):
            np.testing.assert_array_equal(x, y)
        # the second moment of the Wq of block 1 sits on that variable in Keras
        idx = released_weight_names(2).index("global-attention-block1/Wq")
        var = {v.path: v for v in trainer.model.weights}["global-attention-block1/Wq"]
        v = trainer.optimizer._velocities[trainer.optimizer._get_variable_index(var)]
        np.testing.assert_array_equal(v.numpy(), original.optimizer_weights[1 + 53 + idx])
    finally:
        trainer.dataset.close()


def test_mixed_precision_runs(h5_path, tmp_path):
    result = pretrain(h5_path, settings(tmp_path, max_epochs=1, dtype="mixed_bfloat16"), architecture=ARCH)
    assert np.isfinite(_losses(result)).all()


def test_cli(h5_path, tmp_path, capsys):
    from proteinbert.cli.pretrain import main

    out = tmp_path / "cli"
    args = [str(h5_path), "-o", str(out), "--epochs", "1", "--steps-per-epoch", "3", "--episodes", "32:8,64:4",
            "--holdout", "20", "--d-seq", "16", "--d-global", "32", "--n-blocks", "1", "--n-heads", "2",
            "--d-key", "8", "--no-progress", "-q"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and summary["last_save"].endswith("epoch_1_sample_24")
    assert main(args[:3] + ["--epochs", "2"] + args[5:] + ["--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 6
    assert main(args) == 1  # saves exist and no --resume
    assert "already holds saves" in capsys.readouterr().err
    assert main([str(h5_path), "-o", str(tmp_path / "x"), "--episodes", "32"]) == 2
    assert main([str(tmp_path / "missing.h5"), "-o", str(tmp_path / "y"), "--epochs", "1"]) == 1
    assert f"DATASET {tmp_path / 'missing.h5'} does not exist" in capsys.readouterr().err


_REPLICA_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    mode, h5, out, init = sys.argv[1:5]
    if mode == "two-devices":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "multi-worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    sys.path.insert(0, os.path.join(sys.argv[5], "tests"))
    from backbone_harness import tiny_sizes
    from proteinbert.data.pretraining_batches import PretrainingDataSettings
    from proteinbert.training.pretraining import PretrainingSettings, pretrain
    data = PretrainingDataSettings(episodes=((32, 8), (64, 4)), steps_per_episode=3, chunk_size=64,
                                   holdout_records=0, seed=5)
    s = PretrainingSettings(output_dir=out, data=data, steps_per_epoch=3, max_epochs=2, save_every_epochs=1,
                            progress=False, tensorboard=False, learning_rate=1e-3)
    r = pretrain(h5, s, init_weights=init, strategy=strategy,
                 architecture=tiny_sizes(n_blocks=1))
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": r.step_losses}))
""")


def _run_replica_script(tmp_path, mode, out, init, h5_path, env=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "replicas.py"
    script.write_text(_REPLICA_SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, str(script), mode, str(h5_path), str(out), str(init), str(REPO)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _result(proc, timeout=400):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def init_pkl(reference, tmp_path_factory):
    w = read_pkl(checkpoints.latest_save(reference[0]).pkl_path)
    from proteinbert.weights import ReleasedWeights

    path = tmp_path_factory.mktemp("init") / "init.pkl"
    write_pkl(path, ReleasedWeights(w.n_annotations, w.model_weights, []))
    return path


@pytest.fixture(scope="module")
def single_device(init_pkl, h5_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    return _result(_run_replica_script(d, "single", d / "out", init_pkl, h5_path))


def test_two_logical_devices_match_one_device(single_device, init_pkl, h5_path, tmp_path):
    two = _result(_run_replica_script(tmp_path, "two-devices", tmp_path / "out", init_pkl, h5_path))
    assert two["replicas"] == 2
    np.testing.assert_allclose(np.array(two["losses"]), np.array(single_device["losses"]), rtol=2e-5, atol=2e-6)


@pytest.mark.slow
def test_two_process_multi_worker_matches_one_device(single_device, init_pkl, h5_path, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(_run_replica_script(tmp_path / f"w{i}", "multi-worker", tmp_path / "out", init_pkl, h5_path,
                                         env={"TF_CONFIG": tf_config}))
    results = [_result(p) for p in procs]
    for r in results:
        assert r["replicas"] == 2
        np.testing.assert_allclose(np.array(r["losses"]), np.array(single_device["losses"]), rtol=2e-5, atol=2e-6)
    assert checkpoints.latest_save(tmp_path / "out").epoch == 2  # the chief saved


def test_pretrains_on_a_file_written_by_create_dataset(tmp_path):
    """End to end on the real pipeline: sp2014 FASTA + GO TSV + GO (the small real excerpt of the 2019
    release, so parsing stays fast; terms outside it are skipped) -> create_dataset -> pretrain."""
    from proteinbert.cli.create_dataset import main as create_dataset

    d = require_shared("data", "swissprot_go_2014")
    obo = require_shared("data", "go", "go-2019-01-27.excerpt-sprot250.obo")
    h5 = tmp_path / "sp2k.h5"
    assert create_dataset(["--fasta", str(d / "sp2014_go.2k.fasta.gz"), "--go-tsv", str(d / "sp2014_go.2k.go.tsv.gz"),
                           "--go-obo", str(obo), "--output", str(h5), "--min-records", "20",
                           "--test-probability", "0.1", "--no-progress", "-q"]) == 0
    result = pretrain(h5, settings(tmp_path / "run", max_epochs=1, steps_per_epoch=3, eval_every_epochs=1,
                                   eval_max_records=40), architecture=ARCH)
    assert result.step == 3 and np.isfinite(_losses(result)).all()
    state = json.loads((result.last_save.path / "state.json").read_text())
    assert len(state["annotations"]) > 50 and all(t.startswith("GO:") for t in state["annotations"])
    assert "eval_go_auc_macro" in result.history[-1]
