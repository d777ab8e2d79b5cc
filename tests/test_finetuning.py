"""Fine-tuning: output specs, label checks, length buckets, the head, parity with 2021, save/load."""

import numpy as np
import pandas as pd
import pytest

from conftest import require_shared
from proteinbert.errors import InputError
from proteinbert.model import ProteinBertBackbone
from proteinbert.training.finetuning import (
    DEFAULT_STAGES, EncodedSet, FinetuneConfig, FinetunedModel, OutputSpec, Stage, _tf_dataset, bucket_length,
    build_finetuning_model, default_stages, encode_labels, finetune_from_backbone, length_batches, parse_stage,
)
from backbone_harness import MICRO

TINY = dict(MICRO)
# Eager mode: for a few tiny batches, graph tracing would cost more than the training itself.
QUICK = FinetuneConfig(stages=(Stage("frozen", 1e-2, 1, False, 64, 16), Stage("unfrozen", 1e-3, 1, True, 64, 16)),
                       run_eagerly=True)


def tiny_backbone(n_annotations=4, **kw):
    return ProteinBertBackbone(n_annotations=n_annotations, **{**TINY, **kw})


def read_benchmark(name, split, n=None):
    path = require_shared("data", "protein_benchmarks", f"{name}.{split}.csv")
    frame = pd.read_csv(path, dtype=str)
    return frame if n is None else frame.iloc[:n]


# ---- parity with the 2021 fine-tuned model ------------------------------------------------------

def test_parity_with_2021_finetuned_weights():
    from proteinbert.weights import backbone_from_released, released_variables

    expected = np.load(require_shared("fixtures", "small_finetune_expected.npz"))
    backbone = backbone_from_released(require_shared("fixtures", "small_lamb.pkl"))
    model = build_finetuning_model(backbone, OutputSpec("global", "binary"))
    import json

    layout = json.loads(str(expected["meta_json"]))["weight_layout"]
    # Pretrained weights in .pkl order minus output-seq (not on the global path), then the head.
    targets = [v for v in released_variables(backbone) if not v.path.startswith("output-seq/")]
    head = model.get_layer("head-dense")
    targets += [head.kernel, head.bias]
    assert len(targets) == len(layout) == 53
    for i, (var, (layer, name, shape)) in enumerate(zip(targets, layout)):
        assert tuple(var.shape) == tuple(shape), (i, name)
        var.assign(expected[f"weight_{i:03d}"])
    assert model.count_params() == 84773
    for suffix in ("", "_L2"):
        x = [expected["X_seq" + suffix], expected["X_annotations" + suffix]]
        pred = np.asarray(model(x, training=False))
        np.testing.assert_allclose(pred, expected["predictions" + suffix], atol=1e-5, rtol=0)


# ---- specs and labels ---------------------------------------------------------------------------

def test_spec_from_labels_sorts_numbers_numerically():
    spec = OutputSpec.from_labels("global", "categorical", ["10", "9", 2, "9"])
    assert spec.labels == ("2", "9", "10")
    assert OutputSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("level,task,labels", [("local", "multilabel", ("a",)), ("global", "bogus", ()),
                                               ("local", "categorical", ("ab", "c")),
                                               ("global", "binary", ("0", "1"))])
def test_bad_specs(level, task, labels):
    with pytest.raises(InputError):
        OutputSpec(level, task, labels)


def test_bad_labels_name_every_row():
    seqs = ["MKV", "MKVL", "MK", "MKV"]
    with pytest.raises(InputError, match=r"row 1: 'x'.*row 2: missing.*row 3: 2"):
        encode_labels(OutputSpec("global", "binary"), seqs, [1, "x", float("nan"), 2])
    with pytest.raises(InputError, match=r"line 5: per-residue label has 2 characters, the sequence 3"):
        encode_labels(OutputSpec("local", "binary"), ["MKV"], ["01"], row_ids=["line 5"])
    with pytest.raises(InputError, match=r"row 0: category 'z' was not seen in training"):
        encode_labels(OutputSpec("global", "categorical", ("a", "b")), ["MK"], ["z"])
    with pytest.raises(InputError, match=r"row 0: per-residue categories \['3'\]"):
        encode_labels(OutputSpec("local", "categorical", ("0", "1", "2")), ["MKV"], ["013"])
    with pytest.raises(InputError, match=r"row 1: 'inf' is not a finite number"):
        encode_labels(OutputSpec("global", "numeric"), ["MK", "MK"], ["0.5", "inf"])
    with pytest.raises(InputError, match=r"label\(s\) \['GO:3'\] not seen"):
        encode_labels(OutputSpec("global", "multilabel", ("GO:1", "GO:2")), ["MK"], ["GO:1;GO:3"])


def test_disorder_labels_keep_leading_zeros():
    frame = read_benchmark("disorder_secondary_structure", "valid", 50)
    spec = OutputSpec("local", "binary")
    encoded = encode_labels(spec, list(frame.seq), list(frame.label))
    assert all(len(y) == len(s) for y, s in zip(encoded, frame.seq))
    assert any(lab.startswith("0") for lab in frame.label)


def test_empty_split_is_an_error():
    with pytest.raises(InputError, match="empty"):
        EncodedSet.build(OutputSpec("global", "binary"), [], [], 4)
    with pytest.raises(InputError, match="training split is empty"):
        finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), [], [])


# ---- batching -----------------------------------------------------------------------------------

def test_bucket_lengths_and_batches_keep_every_record():
    lengths = (3, 16, 17, 64, 65, 72, 512, 513, 4000)
    assert [bucket_length(n) for n in lengths] == [16, 16, 32, 64, 80, 80, 512, 640, 4096]
    lengths = np.array([40, 70, 300, 600, 1100, 45, 2000])
    batches = length_batches(lengths, seq_len=512, batch_size=4, rng=np.random.default_rng(0))
    seen = np.sort(np.concatenate([b for b, _ in batches]))
    assert seen.tolist() == list(range(len(lengths)))
    for indices, padded in batches:
        assert all(lengths[indices] <= padded)
        # Longer than the stage length: the batch shrinks by the length ratio.
        assert len(indices) <= max(1, 4 * 512 // padded)
    fixed = length_batches(lengths, seq_len=512, batch_size=4, padding="fixed")
    assert sorted({L for _, L in fixed}) == [512, 1024, 2048]


def test_per_residue_batch_alignment_and_crop():
    spec = OutputSpec("local", "categorical", ("0", "1", "2"))
    data = EncodedSet.build(spec, ["MKVLA", "MK"], ["01201", "22"], 4, crop_len=3)
    assert [len(t) for t in data.tokens] == [3, 2]
    (x, a), y, w = data.batch(np.array([0, 1]), 8)
    assert x[0].tolist() == [23, 10, 8, 18, 24, 25, 25, 25]
    assert y[0, 1:4].tolist() == [0, 1, 2] and w[0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    assert w[1].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert a.shape == (2, 4)


def test_batch_pipeline_yields_each_batch_without_autotuning():
    data = EncodedSet.build(OutputSpec("global", "binary"), ["MKVLA", "MK", "M" * 40], ["1", "0", "1"], 4)
    batches = length_batches(data.n_tokens, seq_len=512, batch_size=2)
    dataset = _tf_dataset(data, batches)
    # With autotuning, deleting an iterator could wait seconds for its model thread.
    assert dataset.options().autotune.enabled is False
    got = list(dataset)
    assert [x.shape for (x, _), _, _ in got] == [(len(i), L) for i, L in batches]
    for ((x, _), y, _), (indices, L) in zip(got, batches):
        (x_ref, _), y_ref, _ = data.batch(indices, L)
        assert np.array_equal(x.numpy(), x_ref) and np.array_equal(y.numpy(), y_ref)


# ---- schedule -----------------------------------------------------------------------------------

def test_default_schedule_matches_2021():
    assert [(s.name, s.learning_rate, s.max_epochs, s.train_pretrained, s.seq_len, s.batch_size)
            for s in DEFAULT_STAGES] == [("frozen", 1e-2, 40, False, 512, 32), ("unfrozen", 1e-4, 40, True, 512, 32),
                                         ("final", 1e-5, 1, True, 1024, 16)]
    assert default_stages() == DEFAULT_STAGES
    assert parse_stage("a:1e-3:2:unfrozen").train_pretrained
    with pytest.raises(InputError):
        parse_stage("a:1e-3:two:frozen")
    with pytest.raises(InputError):
        Stage("x", 0.0, 1, True)


@pytest.mark.parametrize("virtual_pad_length", [None, 512])
def test_frozen_stage_leaves_backbone_untouched(virtual_pad_length):
    frame = read_benchmark("signalP_binary", "train", 48)
    backbone = tiny_backbone()
    before = {w.path: w.numpy().copy() for w in backbone.weights}
    config = FinetuneConfig(stages=(Stage("frozen", 1e-2, 1, False, 64, 16),), run_eagerly=True)
    fm = finetune_from_backbone(backbone, OutputSpec("global", "binary"), list(frame.seq), list(frame.label),
                                config=config, virtual_pad_length=virtual_pad_length)
    pretrained = fm.model.get_layer("pretrained").weights  # the backbone's, or a copy with virtual padding
    assert len(pretrained) > 10
    for w in pretrained:
        np.testing.assert_array_equal(w.numpy(), before[w.path])
    assert fm.metadata["stages"][0]["epochs"] == 1
    assert fm.metadata["backbone_architecture"]["virtual_pad_length"] == virtual_pad_length


def test_virtual_padding_bucket_predictions_follow_2021_padding():
    # A model fine-tuned with the default virtual padding (512) predicts on length buckets what it
    # predicts with every record padded to 512 as in 2021; without it the two drift apart.
    frame = read_benchmark("signalP_binary", "train", 64)
    seqs, labels = list(frame.seq), list(frame.label)
    gaps = {}
    for virtual in (512, None):
        fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), seqs[:48], labels[:48],
                                    config=QUICK, virtual_pad_length=virtual)
        bucket = np.concatenate(fm.predict(seqs[48:], padding="bucket"))
        fixed = np.concatenate(fm.predict(seqs[48:], padding="fixed", seq_len=512))
        gaps[virtual] = np.abs(bucket - fixed).max()
    assert gaps[512] < 2e-3 and gaps[512] < gaps[None] / 5, gaps


def test_virtual_padding_keeps_the_finetuning_weight_order():
    spec = OutputSpec("global", "binary")
    plain = build_finetuning_model(tiny_backbone(), spec)
    virtual = build_finetuning_model(tiny_backbone(), spec, virtual_pad_length=512)
    assert [w.path for w in virtual.weights] == [w.path for w in plain.weights]
    virtual.set_weights(plain.get_weights())  # e.g. the 2021 generator's model_weights
    x = [np.full((2, 512), 25, "int32"), np.zeros((2, 4), "float32")]
    x[0][:, :5] = [23, 10, 8, 17, 24]
    np.testing.assert_allclose(virtual(x, training=False), plain(x, training=False), atol=1e-6)


@pytest.mark.parametrize("level,task,dataset", [
    ("global", "binary", "signalP_binary"),
    pytest.param("global", "categorical", "scop", marks=pytest.mark.slow),
    pytest.param("global", "numeric", "stability", marks=pytest.mark.slow),
    ("local", "categorical", "secondary_structure"),
])
def test_finetune_save_load_identical(tmp_path, level, task, dataset):
    split = "valid" if level == "local" else "train"
    frame = read_benchmark(dataset, split, 40)
    seqs, labels = list(frame.seq), list(frame.label)
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec(level, task), seqs[:32], labels[:32],
                                seqs[32:], labels[32:], config=QUICK, hidden_layers="last")
    preds = fm.predict(seqs[32:])
    assert all(np.all(np.isfinite(p)) for p in preds)
    if level == "local":
        assert [p.shape for p in preds] == [(len(s), 3) for s in seqs[32:]]
    fm.save(tmp_path / "model")
    again = FinetunedModel.load(tmp_path / "model")
    assert again.spec == fm.spec
    for a, b in zip(preds, again.predict(seqs[32:])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="exists"):
        fm.save(tmp_path / "model")


def test_traced_inference_matches_eager(monkeypatch):
    import proteinbert.training.inference as inference_module
    from proteinbert.training.evaluation import evaluate_by_len

    frame = read_benchmark("signalP_binary", "train", 24)
    seqs, labels = list(frame.seq), list(frame.label)
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), seqs, labels, config=QUICK)
    # A token budget of 2 x 32 tokens holds one record of 42-72 tokens: 24 batches, traced (one
    # trace for every length); then the same through eager calls.
    traced = fm.predict(seqs, batch_size=2, seq_len=32)
    traced_eval = evaluate_by_len(fm, seqs, labels, start_batch_size=2)
    monkeypatch.setattr(inference_module, "_TRACE_FROM_BATCHES", 10**9)
    eager = fm.predict(seqs, batch_size=2, seq_len=32)
    eager_eval = evaluate_by_len(fm, seqs, labels, start_batch_size=2)
    np.testing.assert_allclose(np.stack(traced), np.stack(eager), rtol=0, atol=1e-6)
    np.testing.assert_allclose(traced_eval.predictions["prob"], eager_eval.predictions["prob"], rtol=0, atol=1e-6)
    assert np.ptp(np.stack(eager)) > 0  # not a constant output
    # 2 x 512 tokens hold 12 of these records (padded to 80) a batch: outputs do not depend on batch mates.
    n_tokens = EncodedSet.build(fm.spec, seqs, None, 4).n_tokens
    sizes = [len(b) for b, _ in length_batches(n_tokens, seq_len=512, batch_size=2, token_budget=True)]
    assert sum(sizes) == 24 and len(sizes) == 2 and min(sizes) >= 9
    np.testing.assert_allclose(np.stack(fm.predict(seqs, batch_size=2)), np.stack(eager), rtol=0, atol=1e-6)


def test_multilabel_and_local_numeric():
    seqs = ["MKVLAAG", "MKKW", "MAAAAAAAV", "MKV"]
    spec = OutputSpec.from_labels("global", "multilabel", ["GO:1;GO:2", "GO:2", "", "GO:1"])
    assert spec.labels == ("GO:1", "GO:2")
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "multilabel"), seqs,
                                ["GO:1;GO:2", "GO:2", "", "GO:1"], config=QUICK)
    assert fm.predict(seqs)[0].shape == (2,)
    numbers = [";".join(str(i * 0.1) for i in range(len(s))) for s in seqs]
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("local", "numeric"), seqs, numbers, config=QUICK)
    assert [p.shape for p in fm.predict(seqs)] == [(len(s), 1) for s in seqs]


def test_long_records_are_kept_not_dropped():
    # 700 residues is longer than the stage length (64): trained on, in a batch of its own size.
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=n)) for n in (20, 30, 700)]
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), seqs, [0, 1, 1], config=QUICK)
    assert len(fm.predict(seqs)) == 3


def test_cached_frozen_stage_matches_uncached():
    # The frozen stage on cached representations takes the same steps as the full model.
    frame = read_benchmark("signalP_binary", "train", 80)
    seqs, labels = list(frame.seq), list(frame.label)
    histories, heads = [], []
    first_weights = tiny_backbone().get_weights()
    for cache in (True, False):
        backbone = tiny_backbone()
        backbone.set_weights(first_weights)
        config = FinetuneConfig(stages=(Stage("frozen", 1e-2, 2, False, 64, 16),), cache_frozen_features=cache,
                                run_eagerly=True, seed=3)
        fm = finetune_from_backbone(backbone, OutputSpec("global", "binary"), seqs[:64], labels[:64], seqs[64:],
                                    labels[64:], config=config)
        histories.append(fm.metadata["stages"][0]["history"])
        heads.append(fm.model.get_layer("head-dense").get_weights())
    np.testing.assert_allclose(histories[0]["val_loss"], histories[1]["val_loss"], rtol=1e-5)
    for a, b in zip(*heads):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_epochs_are_exact_passes():
    # Each epoch takes every batch once (counted by the optimizer's steps), and validation sees
    # each record once (its loss equals the loss of the predictions), in both kinds of stage.
    import keras

    frame = read_benchmark("signalP_binary", "train", 100)
    seqs, labels = list(frame.seq), list(frame.label)
    train_batches = len(length_batches(EncodedSet.build(OutputSpec("global", "binary"), seqs[:70], labels[:70],
                                                        4).n_tokens, 64, 16, FinetuneConfig().padding))

    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(int(self.model.optimizer.iterations.numpy()))

    steps = Steps()
    stages = (Stage("frozen", 1e-2, 2, False, 64, 16, callbacks=False),
              Stage("unfrozen", 1e-3, 3, True, 64, 16, callbacks=False))
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), seqs[:70], labels[:70],
                                seqs[70:], labels[70:], config=FinetuneConfig(stages=stages), callbacks=[steps])
    # Frozen stage: the cached head's optimizer; unfrozen: a fresh one.
    assert steps.seen == [train_batches, 2 * train_batches, train_batches, 2 * train_batches, 3 * train_batches]
    p = np.clip(np.concatenate(fm.predict(seqs[70:])), 1e-7, 1 - 1e-7)
    y = np.array(labels[70:], dtype=float)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(fm.metadata["stages"][1]["history"]["val_loss"][-1], loss, rtol=1e-4)


# ---- defaults: fixed padding, predictions padded as in training ----------------------------------

def test_default_padding_is_fixed_and_predictions_follow_training():
    import inspect

    from proteinbert import finetuning as compat
    from proteinbert.training.finetuning import DEFAULT_VIRTUAL_PAD_LENGTH

    assert FinetuneConfig().padding == "fixed" and DEFAULT_VIRTUAL_PAD_LENGTH is None
    assert inspect.signature(compat.finetune).parameters["padding"].default == "fixed"
    assert inspect.signature(compat.FinetuningModelGenerator).parameters["virtual_pad_length"].default is None
    frame = read_benchmark("signalP_binary", "train", 64)
    seqs, labels = list(frame.seq), list(frame.label)
    fm = finetune_from_backbone(tiny_backbone(), OutputSpec("global", "binary"), seqs[:48], labels[:48], config=QUICK)
    assert fm.training_padding == ("fixed", 64)
    default = np.concatenate(fm.predict(seqs[48:]))
    np.testing.assert_array_equal(default, np.concatenate(fm.predict(seqs[48:], padding="fixed", seq_len=64)))
    assert np.abs(default - np.concatenate(fm.predict(seqs[48:], padding="bucket"))).max() > 1e-4
    assert FinetunedModel(fm.model, fm.spec).training_padding == ("fixed", 64)  # no metadata: the model's own
    import keras

    plain = keras.Model(fm.model.inputs, fm.model.outputs)  # a model saved by an earlier version
    assert FinetunedModel(plain, fm.spec).training_padding == ("fixed", 512)  # knows nothing: as 2021


@pytest.mark.slow
def test_finetune_accuracy_benchmark_quick(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    data = require_shared("data", "protein_benchmarks", "signalP_binary.train.csv").parent
    weights = require_shared("fixtures", "small_lamb.pkl")
    out = tmp_path / "acc.json"
    cmd = [sys.executable, str(repo / "benchmarks" / "finetune_accuracy.py"), "--quick", "--seeds", "0",
           "--modes", "default,bucket", "--data-dir", str(data), "--weights", str(weights), "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| default | 1 |" in run.stdout and "| bucket | 1 |" in run.stdout
    runs = json.loads(out.read_text())["runs"]
    assert [(r["mode"], r["seed"]) for r in runs] == [("default", 0), ("bucket", 0)]
    assert all(0 <= r["auc"] <= 1 for r in runs)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # resumes: nothing left to run
    assert again.returncode == 0 and '"mode"' not in again.stdout
