"""The benchmark suite on tiny hand-made benchmark CSVs: the table's columns, resuming per
benchmark, --redo, refusing rows of other settings, and the data folder from the environment."""

import json

import numpy as np
import pandas as pd
import pytest

from proteinbert.benchmark_suite import BENCHMARKS, COLUMNS
from proteinbert import provenance
from proteinbert.provenance import cpu_model
from proteinbert.cli.benchmark_suite import DATA_ENV, main

SMALL = ["--small", "--from-scratch", "--max-train", "24", "--max-eval", "12"]


@pytest.fixture
def data_dir(tmp_path):
    """signalP_binary (train, test) and stability (train, valid, test) with random sequences."""
    rng = np.random.default_rng(0)
    aas = list("ACDEFGHIKLMNPQRSTVWY")
    seqs = lambda n: ["".join(rng.choice(aas, int(rng.integers(20, 60)))) for _ in range(n)]  # noqa: E731
    d = tmp_path / "benchmarks"
    d.mkdir()
    for split, n in (("train", 30), ("test", 12)):
        pd.DataFrame({"seq": seqs(n), "label": [i % 2 for i in range(n)]}).to_csv(d / f"signalP_binary.{split}.csv",
                                                                                   index=False)
    for split, n in (("train", 24), ("valid", 8), ("test", 12)):
        pd.DataFrame({"seq": seqs(n), "label": rng.normal(size=n).round(3)}).to_csv(d / f"stability.{split}.csv",
                                                                                    index=False)
    return d


def test_paper_no_pretraining_column():
    got = {b.name: b.paper_no_pretraining for b in BENCHMARKS}
    assert got == {"signal peptide": 0.991, "neuropeptide cleavage": 0.940, "remote homology": 0.063,
                   "fold classes": 0.593, "stability": 0.634, "secondary structure": 0.704, "disorder": 0.862,
                   "fluorescence": 0.647, "major PTMs": None}


def test_cpu_model(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9B14 96-Core Processor"
    assert cpu_model(tmp_path / "absent")  # falls back to platform's answer


def test_machine_summary_names_the_vector_units(tmp_path, monkeypatch):
    # Two "AMD EPYC" machines of this project's sessions, 2-3x apart in training speed.
    zen1, zen4 = tmp_path / "zen1", tmp_path / "zen4"
    zen1.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 sha_ni\n")
    zen4.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n")
    assert provenance.cpu_vector_units(zen1) == ["AVX2"]
    assert provenance.cpu_vector_units(zen4) == ["AVX2", "AVX-512", "AVX512-BF16"]
    assert provenance.cpu_vector_units(tmp_path / "absent") == []
    monkeypatch.setattr(provenance, "gpu_names", lambda: [])
    monkeypatch.setattr(provenance, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setattr(provenance, "cpu_vector_units", lambda: ["AVX2"])
    monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
    assert provenance.machine_summary() == "AMD EPYC (2 cores, AVX2)"
    monkeypatch.setattr(provenance, "gpu_names", lambda: ["NVIDIA H200"])
    assert provenance.machine_summary() == "AMD EPYC (2 cores, AVX2) + NVIDIA H200"


def test_suite_resumes_per_benchmark_and_redo_reruns(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "res" / "scratch"
    csv, md, sidecar = (out.parent / f"scratch.{x}" for x in ("csv", "md", "json"))
    signal = ["--benchmark", "signal peptide"]
    monkeypatch.setenv(DATA_ENV, str(data_dir))  # no --data-dir: the folder comes from the environment
    assert main(SMALL + signal + ["--out", str(out)]) == 0, capsys.readouterr().err
    assert "(paper: 0.996 pretrained, 0.991 without pretraining)" in capsys.readouterr().err
    first = pd.read_csv(csv)
    assert tuple(first.columns[:4]) == ("benchmark", "metric", "score", "paper_no_pretraining")
    assert set(COLUMNS) <= set(first.columns)
    row = first.iloc[0]
    assert row.benchmark == "signal peptide" and row.status == "ok" and row.paper_no_pretraining == 0.991
    assert row.seed == 0 and row.wall_s > 0 and row.machine and row.metric == "AUC"
    assert row.baseline == 0.5  # a constant score's AUC
    stamp = csv.stat().st_mtime_ns
    capsys.readouterr()

    # a second part: signal peptide is kept (not run again), stability is added
    monkeypatch.delenv(DATA_ENV)
    both = SMALL + ["--data-dir", str(data_dir)] + signal + ["--benchmark", "stability", "--out", str(out)]
    assert main(both) == 0
    assert "signal peptide: finished earlier" in capsys.readouterr().err
    second = pd.read_csv(csv)
    assert second.benchmark.tolist() == ["signal peptide", "stability"]
    pd.testing.assert_series_equal(second.iloc[0], first.iloc[0], check_names=False)
    assert second.iloc[1].paper_no_pretraining == 0.634 and second.iloc[1].status == "ok"
    assert second.iloc[1].baseline == 0.0  # a constant has no rank order

    # everything finished: nothing runs, nothing is rewritten
    stamp = csv.stat().st_mtime_ns
    assert main(both) == 0
    assert csv.stat().st_mtime_ns == stamp
    assert "every selected benchmark was finished earlier" in capsys.readouterr().err

    # --redo runs the selected benchmark again and keeps the other row
    assert main(SMALL + ["--data-dir", str(data_dir)] + signal + ["--redo", "--out", str(out)]) == 0
    assert "signal peptide: finished earlier" not in capsys.readouterr().err
    assert csv.stat().st_mtime_ns != stamp
    third = pd.read_csv(csv)
    assert third.benchmark.tolist() == ["signal peptide", "stability"]
    pd.testing.assert_series_equal(third.iloc[1], second.iloc[1], check_names=False)
    # the seed fixes the initial weights, dropout and batch order: the rerun scores the same
    assert third.iloc[0].score == pytest.approx(first.iloc[0].score, abs=1e-6)

    runs = json.loads(sidecar.read_text())["runs"]
    assert [r["benchmarks"] for r in runs] == [["signal peptide"], ["stability"], ["signal peptide"]]
    assert runs[0]["command"][:2] == ["benchmark_suite", "--small"] and runs[0]["versions"]["tensorflow"]
    text = md.read_text()
    assert text.count("- machine: ") == 3 and "--benchmark 'signal peptide'" in text and "\n| benchmark |" in text

    # rows of other settings are refused, not mixed into the table
    assert main(SMALL + ["--data-dir", str(data_dir)] + signal + ["--seed", "1", "--out", str(out)]) == 1
    assert "made with other settings" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(csv), third)


def test_settings_digest_keys_on_the_weights_content_and_keeps_committed_digests(tmp_path):
    """A finished row is reused only for the same start: other weights saved under the same name
    are another start. From scratch nothing changed, so the committed tables' rows stay valid."""
    from proteinbert.benchmark_suite import SuiteSettings, settings_digest

    # the digests of the committed from-scratch tables (released size; the main job's size)
    assert settings_digest(SuiteSettings.full("/any")) == "d1c1e932da06"
    small = {"n_annotations": 1722, "d_seq": 64, "d_global": 256, "n_blocks": 4, "n_heads": 4, "d_key": 32}
    assert settings_digest(SuiteSettings.full("/any", architecture=small)) == "d1bdb97468bc"

    first, second, copy = (tmp_path / d / "w.pkl" for d in ("a", "b", "c"))
    for path, content in ((first, b"one"), (second, b"two"), (copy, b"one")):
        path.parent.mkdir()
        path.write_bytes(content)
    digest = lambda w: settings_digest(SuiteSettings.full("/any", weights=str(w)))  # noqa: E731
    assert digest(first) != digest(second)  # same name, other weights
    assert digest(first) == digest(copy)  # the same file elsewhere
    # a pretraining save directory stands for the .pkl it holds
    save = tmp_path / "epoch_2_sample_800"
    save.mkdir()
    (save / "epoch_2_sample_800.pkl").write_bytes(b"one")
    renamed = tmp_path / "d" / "epoch_2_sample_800"
    renamed.parent.mkdir()
    renamed.write_bytes(b"two")
    assert digest(save) != digest(renamed)


def test_a_benchmark_stopped_midway_continues_from_its_saved_epochs(data_dir, tmp_path, monkeypatch):
    """Stopped after its fine-tuning (in evaluation), a benchmark continues from the saved run:
    no epoch is trained again and the score is the uninterrupted run's; the saved epochs are
    deleted once the row is written."""
    import proteinbert.benchmark_suite as suite
    from proteinbert.training import finetune_schedule

    args = SMALL + ["--data-dir", str(data_dir), "--benchmark", "signal peptide", "--seed", "2"]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    want = pd.read_csv(tmp_path / "whole.csv").iloc[0]
    assert not (tmp_path / "whole.checkpoints").exists()

    class Stop(Exception):
        pass

    def stopped(*a, **kw):
        raise Stop
    with monkeypatch.context() as patch:
        patch.setattr(suite, "evaluate_by_len", stopped)
        with pytest.raises(Stop):
            main(args + ["--out", str(tmp_path / "parts")])
    saved = tmp_path / "parts.checkpoints" / "signalP_binary"
    state = json.loads((saved / "state.json").read_text())
    assert state["next_stage"] == 2  # both stages done
    earlier_s = sum(stage["wall_s"] for stage in state["results"])
    assert earlier_s > 0
    fits = []
    original_fit = finetune_schedule._fit_head_on_cached_features
    monkeypatch.setattr(finetune_schedule, "_fit_head_on_cached_features",
                        lambda *a, **kw: fits.append(1) or original_fit(*a, **kw))
    assert main(args + ["--out", str(tmp_path / "parts")]) == 0
    got = pd.read_csv(tmp_path / "parts.csv").iloc[0]
    assert fits == [] and got.score == want.score and got.status == "ok"
    # The row's wall time counts the fine-tuning of the part that was stopped, though this one trained nothing.
    assert got.wall_s >= round(earlier_s, 1)
    assert not (tmp_path / "parts.checkpoints").exists()


def test_a_table_from_before_the_baseline_column_gets_it_without_running_anything(tmp_path, monkeypatch, capsys):
    """A finished row without ``baseline`` (older tables) gets it from the data and the seed alone:
    the majority class of the seeded training split, scored on the test split."""
    import proteinbert.benchmark_suite as suite

    rng = np.random.default_rng(1)
    d = tmp_path / "benchmarks"
    d.mkdir()
    classes = ["a"] * 14 + ["b"] * 6 + ["c"] * 4  # "a" is the majority of any 90 % training part
    for split, labels in (("train", classes), ("test", ["a", "b", "b", "c", "c", "a", "b", "c"])):
        seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30)) for _ in labels]
        pd.DataFrame({"seq": seqs, "label": labels}).to_csv(d / f"scop.{split}.csv", index=False)
    out = tmp_path / "old"
    args = SMALL + ["--data-dir", str(d), "--benchmark", "fold classes", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "old.csv")
    assert table.iloc[0].baseline == pytest.approx(2 / 8) and table.iloc[0].metric == "accuracy"
    table.drop(columns="baseline").to_csv(tmp_path / "old.csv", index=False)

    def no_runs(*a, **kw):
        raise AssertionError("a finished benchmark was run again")
    monkeypatch.setattr(suite, "run_benchmark", no_runs)
    assert main(args) == 0
    again = pd.read_csv(tmp_path / "old.csv")
    assert again.iloc[0].baseline == pytest.approx(2 / 8) and again.iloc[0].score == table.iloc[0].score
    assert " | paper | baseline | n_train | " in (tmp_path / "old.md").read_text()


def test_the_baseline_of_local_categories_counts_residues():
    from proteinbert.training.baselines import constant_baseline
    from proteinbert.training.output_spec import OutputSpec

    spec = OutputSpec("local", "categorical", ("0", "1", "2"))
    # training residues: 2 is the most frequent (4 of 7); test: 2 of 5 residues are 2
    assert constant_baseline(spec, ["MKVLA", "MK"], ["22201", "21"], ["MKVLA"], ["20012"]) == pytest.approx(2 / 5)
    assert constant_baseline(OutputSpec("global", "numeric"), ["M"], [1.0], ["M"], [2.0]) == 0.0
    assert np.isnan(constant_baseline(spec, ["MK"], ["21"], [], []))  # nothing to score


def test_data_folder_is_required(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert main(SMALL + ["--out", str(tmp_path / "x")]) == 2
    assert f"pass --data-dir DIR or set {DATA_ENV}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---- comparing two tables (no TensorFlow) -------------------------------------------------------------

def _table(path, rows):
    """A suite CSV with ``rows`` of (benchmark, metric, score, status)."""
    baselines = {"AUC": 0.5, "Spearman": 0.0, "accuracy": 0.3}
    frame = pd.DataFrame([dict.fromkeys(COLUMNS, "") | {"benchmark": b, "metric": m, "score": s, "status": st,
                                                         "baseline": baselines[m], "settings": "abc"}
                          for b, m, s, st in rows])
    frame.to_csv(path, index=False)
    return path


def test_compare_counts_wins_beyond_the_spread_and_skips_unfinished_rows(tmp_path, capsys):
    from proteinbert.cli.compare_suites import main as compare_main

    _table(tmp_path / "pre.csv", [("signal peptide", "AUC", 0.95, "ok"), ("stability", "Spearman", 0.50, "ok"),
                                  ("fold classes", "accuracy", 0.40, "ok"),
                                  ("remote homology", "accuracy", 0.10, "failed")])
    second = _table(tmp_path / "scratch.csv", [("signal peptide", "AUC", 0.90, "ok"),
                                               ("stability", "Spearman", 0.503, "ok"),
                                               ("fold classes", "accuracy", 0.45, "ok"),
                                               ("remote homology", "accuracy", 0.05, "ok"),
                                               ("disorder", "AUC", 0.80, "ok")])
    # The prefix spelling (no .csv) names the same table.
    assert compare_main([str(tmp_path / "pre"), str(second), "--labels", "pretrained", "scratch",
                         "--spread", "0.005"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| ") and "benchmark" not in line}
    assert rows == {"signal peptide": ["AUC", "0.950", "0.900", "0.500", "+0.050", "pretrained"],
                    "stability": ["Spearman", "0.500", "0.503", "0.000", "-0.003", "within the seed spread"],
                    "fold classes": ["accuracy", "0.400", "0.450", "0.300", "-0.050", "scratch"]}
    assert out.splitlines()[0].startswith(f"pretrained: `{tmp_path / 'pre.csv'}`; scratch: `{second}` ")
    assert out.splitlines()[-1] == ("pretrained higher on 1 of 3 benchmarks, scratch higher on 1, "
                                    "1 within the seed spread (difference ≤ 0.005).")


def test_compare_refuses_other_metrics_missing_tables_and_bad_spreads(tmp_path, capsys):
    from proteinbert.benchmark_tables import compare, read_table
    from proteinbert.cli.compare_suites import main as compare_main
    from proteinbert.errors import InputError

    first = _table(tmp_path / "a.csv", [("stability", "Spearman", 0.5, "ok")])
    second = _table(tmp_path / "b.csv", [("stability", "AUC", 0.5, "ok")])
    with pytest.raises(InputError, match="'stability' is scored by Spearman in one table and by AUC"):
        compare(read_table(first), read_table(second))
    with pytest.raises(ValueError, match="spread"):
        compare(read_table(first), read_table(first), spread=float("nan"))
    assert compare_main([str(first), str(tmp_path / "missing.csv")]) == 1
    assert "no benchmark-suite table at " + str(tmp_path / "missing.csv") in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    assert compare_main([str(first), str(tmp_path / "other.csv")]) == 1
    assert "is not a benchmark-suite table" in capsys.readouterr().err
    assert compare_main([str(first), str(first), "--spread", "-0.1"]) == 2
    assert compare_main([str(first)]) == 2


def test_compare_writes_its_output_whole_and_never_onto_a_table(tmp_path, capsys):
    from proteinbert.cli.compare_suites import main as compare_main

    first = _table(tmp_path / "a.csv", [("stability", "Spearman", 0.6, "ok")])
    second = _table(tmp_path / "b.csv", [("stability", "Spearman", 0.5, "ok")])
    before = first.read_bytes()
    assert compare_main([str(first), str(second), "-o", str(first)]) == 2
    assert "--output" in capsys.readouterr().err and first.read_bytes() == before
    out = tmp_path / "comparison.md"
    assert compare_main([str(first), str(second), "-q", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert "| stability | Spearman | 0.600 | 0.500 | 0.000 | +0.100 | first |" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "comparison.md"]
