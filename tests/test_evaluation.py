"""evaluate_by_len: buckets, metrics per type, confusion matrices, CSV export; the 2021 compat API."""

import numpy as np
import pandas as pd
import pytest

from conftest import require_shared
from proteinbert.errors import InputError
from proteinbert.model import ProteinBertBackbone
from proteinbert.training.evaluation import (
    confusion_matrix, evaluate_by_len, model_length_bucket, predictions_frame, score,
)
from proteinbert.training.finetuning import FinetunedModel, OutputSpec, build_finetuning_model
from backbone_harness import MICRO

TINY = dict(MICRO, n_annotations=4)


def untrained(spec, hidden_layers="last"):
    return FinetunedModel(build_finetuning_model(ProteinBertBackbone(**TINY), spec, hidden_layers), spec)


def benchmark(name, split, n=None):
    frame = pd.read_csv(require_shared("data", "protein_benchmarks", f"{name}.{split}.csv"), dtype=str)
    return frame if n is None else frame.iloc[:n]


def fixture_model():
    from proteinbert.weights import backbone_from_released, released_variables

    expected = np.load(require_shared("fixtures", "small_finetune_expected.npz"))
    backbone = backbone_from_released(require_shared("fixtures", "small_lamb.pkl"))
    spec = OutputSpec("global", "binary")
    model = build_finetuning_model(backbone, spec)
    targets = [v for v in released_variables(backbone) if not v.path.startswith("output-seq/")]
    targets += [model.get_layer("head-dense").kernel, model.get_layer("head-dense").bias]
    for i, var in enumerate(targets):
        var.assign(expected[f"weight_{i:03d}"])
    return FinetunedModel(model, spec), expected


def test_model_len_padding_reproduces_2021_predictions():
    model, expected = fixture_model()
    seqs = [str(s) for s in expected["seqs"]]
    labels = [0, 1, 0, 1, 1]
    for start, key in ((64, "predictions"), (128, "predictions_L2")):
        ev = evaluate_by_len(model, seqs, labels, start_seq_len=start, padding="model_len")
        np.testing.assert_allclose(ev.predictions["prob"], expected[key][:, 0], atol=1e-5)
        assert ev.results["Model seq len"].tolist() == [str(start), "All"]
        from sklearn.metrics import roc_auc_score

        assert ev.overall == pytest.approx(roc_auc_score(labels, expected[key][:, 0]))


def test_buckets_cover_long_records_without_dropping():
    frame = benchmark("ProFET_NP_SP_Cleaved", "train")
    lengths = frame.seq.str.len()
    picks = pd.concat([frame[lengths < 200].iloc[:6], frame[(lengths > 600) & (lengths < 1000)].iloc[:3],
                       frame[(lengths > 1100) & (lengths < 2000)].iloc[:2]])
    model = untrained(OutputSpec("global", "binary"))
    ev = evaluate_by_len(model, list(picks.seq), list(picks.label), start_seq_len=512, start_batch_size=4)
    table = ev.results.set_index("Model seq len")
    assert table["# records"].to_dict() == {"512": 6, "1024": 3, "2048": 2, "All": 11}
    probs = ev.predictions["prob"].to_numpy()
    assert np.all((probs > 0) & (probs < 1))
    assert ev.overall == pytest.approx(score(model.spec, [float(x) for x in picks.label], probs[:, None]))
    assert ev.confusion_matrix.to_numpy().sum() == 11
    # A record's prediction does not depend on its batch mates (padding depends on itself only).
    alone = evaluate_by_len(model, list(picks.seq[:1]), list(picks.label[:1]))
    assert alone.predictions["prob"].iloc[0] == pytest.approx(probs[0], abs=1e-6)


def test_categorical_numeric_and_local_metrics(tmp_path):
    scop = benchmark("scop", "test", 30)
    spec = OutputSpec.from_labels("global", "categorical", scop.label)
    ev = evaluate_by_len(untrained(spec), list(scop.seq), list(scop.label))
    assert list(ev.confusion_matrix.index) == list(spec.labels)
    assert ev.confusion_matrix.to_numpy().sum() == 30
    assert ev.overall == pytest.approx(np.trace(ev.confusion_matrix.to_numpy()) / 30)
    assert set(ev.predictions.columns) >= {"pred", *(f"prob_{x}" for x in spec.labels)}

    stab = benchmark("stability", "valid", 30)
    ev = evaluate_by_len(untrained(OutputSpec("global", "numeric")), list(stab.seq), list(stab.label))
    assert "Spearman's rank correlation" in ev.results.columns and ev.confusion_matrix is None
    assert -1 <= ev.overall <= 1

    dis = benchmark("disorder_secondary_structure", "test", 10)
    ev = evaluate_by_len(untrained(OutputSpec("local", "binary")), list(dis.seq), list(dis.label))
    assert ev.confusion_matrix.to_numpy().sum() == dis.seq.str.len().sum()  # every residue, no padding
    assert [len(p) for p in ev.predictions.pred] == list(dis.seq.str.len())
    path = ev.write_predictions(tmp_path / "pred.csv")
    back = pd.read_csv(path, dtype=str)
    assert back.label.tolist() == dis.label.tolist()  # leading zeros kept
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]


def test_scores_and_confusion_directly():
    spec = OutputSpec("global", "categorical", ("a", "b", "c"))
    truth = [0, 1, 2, 2]
    probs = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]
    assert score(spec, truth, probs) == 0.75
    assert confusion_matrix(spec, truth, probs).to_numpy().tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert np.isnan(score(OutputSpec("global", "binary"), [1.0, 1.0], [[0.2], [0.3]]))
    multi = OutputSpec("global", "multilabel", ("x", "y"))
    assert score(multi, [np.array([1, 0]), np.array([0, 1])], [[0.9, 0.2], [0.1, 0.7]]) == 1.0
    frame = predictions_frame(multi, [np.array([0.9, 0.6]), np.array([0.1, 0.2])], ids=["p", "q"])
    assert frame.pred.tolist() == ["x;y", ""]
    assert model_length_bucket(3000) == 4096 and model_length_bucket(10, 8, 3) == 24


def test_bad_evaluation_input():
    model = untrained(OutputSpec("global", "categorical", ("a", "b")))
    with pytest.raises(InputError, match="empty"):
        evaluate_by_len(model, [], [])
    with pytest.raises(InputError, match="row 1: category 'c' was not seen"):
        evaluate_by_len(model, ["MKV", "MKL"], ["a", "c"])
    with pytest.raises(InputError, match="padding"):
        evaluate_by_len(model, ["MKV"], ["a"], padding="tight")


# ---- the 2021 compatibility layer ---------------------------------------------------------------

def test_compat_finetune_and_evaluate_by_len():
    from proteinbert.existing_model_loading import load_pretrained_model_from_dump
    from proteinbert.finetuning import (
        FinetuningModelGenerator, OutputSpec as OldSpec, OutputType, evaluate_by_len as old_evaluate, finetune,
    )
    from proteinbert.conv_and_global_attention_model import get_model_with_hidden_layers_as_outputs

    generator, encoder = load_pretrained_model_from_dump(require_shared("fixtures", "small_lamb.pkl"))
    spec = OldSpec(OutputType(False, "binary"), [0, 1])
    model_generator = FinetuningModelGenerator(
        generator, spec, pretraining_model_manipulation_function=get_model_with_hidden_layers_as_outputs,
        dropout_rate=0.5)
    assert model_generator.create_model(512).count_params() == 84773  # as the 2021 fine-tuned model
    train = benchmark("signalP_binary", "train", 40)
    test = benchmark("signalP_binary", "test", 24)
    results = finetune(model_generator, encoder, spec, train.seq, train.label, test.seq, test.label,
                       seq_len=64, batch_size=16, max_epochs_per_stage=1, lr=1e-4,
                       begin_with_frozen_pretrained_layers=True, lr_with_frozen_pretrained_layers=1e-2,
                       n_final_epochs=1, final_seq_len=128, final_lr=1e-5, callbacks=[], run_eagerly=True)
    assert [r.name for r in results] == ["frozen", "unfrozen", "final"]
    table, confusion = old_evaluate(model_generator, encoder, spec, test.seq, test.label, start_seq_len=64,
                                    start_batch_size=16)
    assert table.index.tolist() == ["64", "128", "All"] or table.index.tolist() == ["128", "All"]
    assert table.loc["All", "# records"] == 24
    assert 0 <= table.loc["All", "AUC"] <= 1
    assert confusion.to_numpy().sum() == 24

    categorical = OldSpec(OutputType(True, "categorical"), ["0", "1", "2"])
    assert categorical.modern() == OutputSpec("local", "categorical", ("0", "1", "2"))
    with pytest.raises(InputError):
        FinetuningModelGenerator(generator, spec, pretraining_model_manipulation_function=len)
    with pytest.raises(InputError):
        OutputType(False, "ordinal")


def test_default_evaluation_padding_follows_training():
    model, expected = fixture_model()  # no training metadata: fixed padding, as 2021
    seqs = [str(s) for s in expected["seqs"]]
    ev = evaluate_by_len(model, seqs, [0, 1, 0, 1, 1], start_seq_len=64)
    np.testing.assert_allclose(ev.predictions["prob"], expected["predictions"][:, 0], atol=1e-5)
    bucketed = FinetunedModel(model.model, model.spec, {"config": {"padding": "bucket"}})
    ev = evaluate_by_len(bucketed, seqs, [0, 1, 0, 1, 1], start_seq_len=64)
    assert np.abs(ev.predictions["prob"] - expected["predictions"][:, 0]).max() > 1e-4


def test_bucket_with_one_class_is_logged_as_undefined(caplog):
    # The AUC of a bucket whose records share one label does not exist: NaN in the table (as 2021),
    # said in words in the log.
    seqs = ["MKVL" * 5, "MKLA" * 6, "M" * 100]
    with caplog.at_level("INFO", logger="proteinbert.training.evaluation"):
        ev = evaluate_by_len(untrained(OutputSpec("global", "binary")), seqs, [0, 1, 1], start_seq_len=64)
    table = ev.results.set_index("Model seq len")
    assert np.isfinite(table.loc["64", "AUC"]) and np.isnan(table.loc["128", "AUC"])
    assert "bucket 64: 2 records, AUC " in caplog.text and "nan" not in caplog.text
    assert "bucket 128: 1 records, AUC undefined (all labels alike)" in caplog.text
