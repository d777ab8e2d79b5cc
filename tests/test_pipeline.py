"""The main job end to end, with tiny settings, on the real data committed in data/."""

import json
import time

import pytest

from proteinbert.cli import run_pipeline as cli
from proteinbert.errors import InputError
from proteinbert.pipeline import PipelineSettings, run_pipeline

from conftest import REPO, SHARED_DATA
from backbone_harness import tiny_sizes

TINY = dict(tiny_sizes(n_blocks=1), episodes=((64, 8), (128, 4)),
            steps_per_episode=2, steps_per_epoch=2, pretrain_epochs=2, holdout_records=60, finetune_epochs=1,
            membrane_train_records=80, signalp_train_records=60, signalp_test_records=40)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    benchmarks = SHARED_DATA / "protein_benchmarks"
    settings = PipelineSettings(output_dir=out, fasta=REPO / "data" / "sp2014_go.2k.fasta.gz",
                                go_tsv=REPO / "data" / "sp2014_go.2k.go.tsv.gz",
                                go_obo=REPO / "data" / "go-2019-01-27.obo.gz",
                                benchmarks_dir=benchmarks if benchmarks.is_dir() else None, **TINY)
    summary = run_pipeline(settings)
    return settings, summary


def test_every_output_is_written(finished):
    settings, summary = finished
    out = settings.output_dir
    assert (out / "dataset.h5").is_file() and (out / "pretrain" / "DONE.json").is_file()
    report = (out / "report.md").read_text()
    assert "| membrane |" in report and "held-out metric" in report
    assert "accuracy at corrupted positions" in report and "most frequent token: " in report
    assert "label frequencies: " in report and "any constant score: 0.5000" in report
    assert "docs/results/" in report and "token accuracy" not in report
    assert (out / "plots" / "pretraining_curves.png").stat().st_size > 5000
    assert (out / "plots" / "roc_membrane.png").stat().st_size > 5000
    membrane = json.loads((out / "membrane" / "DONE.json").read_text())
    for variant in ("pretrained", "scratch"):
        assert 0.0 <= membrane[variant]["auc"] <= 1.0
        assert (out / "membrane" / f"model_{variant}" / "model.keras").is_file()
    assert membrane["n_test"] > 20 and 0 < membrane["positives_test"] < membrane["n_test"]
    if settings.benchmarks_dir is not None:
        assert summary["tasks"]["signalp"] is not None and "| signalp |" in report


def test_membrane_labels_are_the_propagated_go_term(finished):
    import numpy as np

    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.pipeline import membrane_task

    settings, _ = finished
    task = membrane_task(settings)
    with PretrainingDataset(settings.dataset_path) as ds:
        batch = ds.read(0, len(ds))
        col = ds.annotations.index("GO:0016020")
        by_seq = {s: bool(m[col]) for s, m in zip(batch.seqs, batch.annotation_masks)}
        held_out = set(batch.seqs[len(ds) - settings.holdout_records:])
    assert all(by_seq[s] == bool(y) for s, y in zip(task.test_seqs, task.test_labels))
    assert set(task.test_seqs) <= held_out and not set(task.train_seqs) & held_out
    assert 0.05 < np.mean(task.train_labels) < 0.95


def test_rerun_skips_finished_steps(finished):
    settings, _ = finished
    stamp = (settings.output_dir / "dataset.h5").stat().st_mtime_ns
    start = time.perf_counter()
    run_pipeline(settings)
    assert time.perf_counter() - start < 60  # nothing is recomputed but the report
    assert (settings.output_dir / "dataset.h5").stat().st_mtime_ns == stamp


def test_dataset_without_its_summary_is_rebuilt(finished, tmp_path):
    """A run stopped between writing dataset.h5 and dataset.json must not fail on every re-run."""
    import dataclasses

    from proteinbert.data.h5dataset import PretrainingDataset
    from proteinbert.pipeline import step_dataset

    settings = dataclasses.replace(finished[0], output_dir=tmp_path)
    settings.dataset_path.write_bytes(b"stale")  # left by the stopped run; no dataset.json
    info = step_dataset(settings)
    assert json.loads((tmp_path / "dataset.json").read_text()) == json.loads(json.dumps(info, default=str))
    with PretrainingDataset(settings.dataset_path) as ds:
        assert len(ds) == info["n_records"] > 1000


def test_bad_settings_and_usage(tmp_path):
    with pytest.raises(InputError, match="redo names unknown steps"):
        PipelineSettings(redo=("nope",))
    assert cli.main(["--redo", "nope", "-o", str(tmp_path)]) == 2
    assert cli.main(["--fasta", "x.fasta", "-o", str(tmp_path)]) == 2
    rc = cli.main(["-o", str(tmp_path / "o"), "--data-dir", str(tmp_path), "-q"])
    assert rc == 1  # the bundled inputs are not in tmp_path


def _history(corrupted_acc, macro, micro):
    before = dict(epoch=0, step=0, samples=0, eval_seq_loss=3.3, eval_corrupted_accuracy=0.03,
                  eval_corrupted_unigram_baseline=0.09, eval_corrupted_positions=1234, eval_uncorrupted_accuracy=0.05,
                  eval_go_auc_macro=0.49, eval_go_auc_micro=0.6, eval_go_auc_micro_baseline=0.79,
                  eval_go_terms_scored=57)
    after = dict(before, epoch=2, step=40, samples=640, seq_loss=2.9, corrupted_accuracy=0.02,
                 uncorrupted_accuracy=0.95, eval_seq_loss=2.8, eval_corrupted_accuracy=corrupted_acc,
                 eval_uncorrupted_accuracy=0.952, eval_go_auc_macro=macro, eval_go_auc_micro=micro)
    return [before, after]


def test_report_gives_corrupted_accuracy_and_the_baselines(tmp_path):
    from proteinbert.pipeline import step_report

    settings = PipelineSettings(output_dir=tmp_path, holdout_records=60)
    pretraining = {"epochs": 2, "samples": 640, "seconds": 12.0, "history": _history(0.018, 0.527, 0.80)}
    report = step_report(settings, {"n_records": 2000, "n_annotations": 57}, pretraining, {"signalp": None}).read_text()
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if line.startswith("| ")}
    assert rows["| accuracy at corrupted positions (1234 positions)"].endswith(
        "| most frequent token: 0.0900 | 0.0300 | 0.0180 |")
    assert rows["| accuracy at uncorrupted positions"].endswith("| copying the input: 1.0000 | 0.0500 | 0.9520 |")
    assert rows["| GO AUC, macro over 57 GO terms"].endswith("| any constant score: 0.5000 | 0.4900 | 0.5270 |")
    assert rows["| GO AUC, micro"].endswith("| label frequencies: 0.7900 | 0.6000 | 0.8000 |")
    verdict = [line for line in report.splitlines() if "baselines" in line]
    assert len(verdict) == 1 and verdict[0].startswith("These few minutes of pretraining do not beat the baselines")
    assert "accuracy at corrupted positions 0.018 vs baseline 0.090" in verdict[0]
    assert "docs/results/" in verdict[0] and "token accuracy" not in report
    assert (tmp_path / "plots" / "pretraining_curves.png").stat().st_size > 5000


def test_verdict_says_so_when_the_baselines_are_beaten():
    from proteinbert.pipeline import pretraining_verdict

    assert pretraining_verdict(_history(0.2, 0.8, 0.9)[-1]).startswith("After pretraining, every held-out metric beats")
    # a noise-level lead does not count
    assert "GO AUC, macro 0.505 vs baseline 0.500" in pretraining_verdict(_history(0.2, 0.505, 0.9)[-1])
    assert "no held-out evaluation" in pretraining_verdict({})


def test_the_verdict_judges_residues_by_the_best_guess_other_than_the_input(tmp_path):
    from proteinbert.pipeline import pretraining_verdict, step_report

    history = _history(0.03, 0.8, 0.9)  # plain accuracy at corrupted positions below its baseline
    for record, recovered in zip(history, (0.08, 0.2)):
        record.update(eval_corrupted_recovery_accuracy=recovered, eval_corrupted_recovery_baseline=0.1)
    assert pretraining_verdict(history[-1]).startswith("After pretraining, every held-out metric beats")
    history[-1]["eval_corrupted_recovery_accuracy"] = 0.105
    assert "best guess other than the input token 0.105 vs baseline 0.100" in pretraining_verdict(history[-1])
    settings = PipelineSettings(output_dir=tmp_path, holdout_records=60)
    pretraining = {"epochs": 2, "samples": 640, "seconds": 12.0, "history": history}
    report = step_report(settings, {"n_records": 2000, "n_annotations": 57}, pretraining, {"signalp": None}).read_text()
    assert ("| at corrupted positions, best guess other than the input token | most frequent other token: 0.1000 "
            "| 0.0800 | 0.1050 |") in report
    assert "| accuracy at corrupted positions (1234 positions) |" in report  # still shown


def test_quiet_turns_the_pipeline_progress_bars_off(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("proteinbert.pipeline.run_pipeline", lambda settings: seen.append(settings) or {"report": "r.md"})
    data = ["--data-dir", str(REPO / "data")]
    assert cli.main(["-o", str(tmp_path / "a"), *data, "-q"]) == 0
    assert cli.main(["-o", str(tmp_path / "b"), *data]) == 0
    assert [s.progress for s in seen] == [False, True]
