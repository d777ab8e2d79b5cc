"""The notebooks: their stored outputs come from their current code, and they run top to bottom.

``notebooks/execute.py`` re-executes them with the small settings and stores digests of the code in
each notebook's metadata; the fast tests here recompute those digests. The execution tests run a
notebook again with the small settings, in a kernel on ``sys.executable``, and compare what each
cell shows with the stored outputs: with the shared fixture weights and benchmark CSVs (as the stored
outputs were made), and with neither (randomly initialised model, bundled ``data/``).
"""

import importlib
import os

import pytest

from conftest import REPO, require_shared
from backbone_harness import MICRO

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = REPO / "notebooks"
#: Files each notebook writes into PROTEINBERT_NOTEBOOK_OUT.
NOTEBOOKS = {
    "01_finetune_signal_peptide.ipynb": ["finetune_roc.png", "finetune_test_predictions.csv",
                                         "finetune_model/model.keras"],
    "02_benchmark_suite.ipynb": ["benchmark_suite.png", "benchmark_suite.csv", "benchmark_suite.md"],
    "03_attention_and_embeddings.ipynb": ["attention_heatmaps.png", "embeddings_pca.png"],
}
MAX_NOTEBOOK_BYTES = 400_000
#: Text no notebook may contain: places outside the repository, and the Agg backend (no inline figures).
FORBIDDEN = ("../shared", "PROTEINBERT_SHARED", "SPEC", 'matplotlib.use("Agg")', "/work/", "/tmp/", "/root/")


@pytest.fixture(scope="module")
def tools():
    """notebooks/execute.py and notebooks/notebook_inputs.py, imported from their folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(NOTEBOOK_DIR))
        yield importlib.import_module("execute"), importlib.import_module("notebook_inputs")


def stored(name):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def shown(nb, execute):
    """(cell type, output kinds) per cell: what a reader sees, without the values."""
    return [(c.cell_type, execute.output_kinds(c) if c.cell_type == "code" else None) for c in nb.cells]


def test_the_notebooks_are_the_ones_tested():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_outputs_are_current_and_small(name, tools):
    execute, _ = tools
    nb = stored(name)
    reasons, _ = execute.check(nb)
    assert not reasons, f"{name}: {'; '.join(reasons)}: re-run `python notebooks/execute.py {name}`"
    record = nb.metadata[execute.METADATA_KEY]
    assert record["inputs"]["small"] is True
    assert record["inputs"]["weights"] == "small_lamb.pkl" and record["inputs"]["benchmarks"]
    kinds = [k for _, k in shown(nb, execute) if k is not None]
    assert all(k for k in kinds), f"{name}: a code cell has no output"
    assert not [k for k in kinds if "error" in k]
    assert sum("image/png" in k for k in kinds) >= (2 if name.startswith("03") else 1)
    assert (NOTEBOOK_DIR / name).stat().st_size < MAX_NOTEBOOK_BYTES
    text = (NOTEBOOK_DIR / name).read_text()
    assert not [f for f in FORBIDDEN if f in text]


def test_check_notices_a_changed_code_cell(tools):
    execute, _ = tools
    nb = stored("03_attention_and_embeddings.ipynb")
    assert execute.check(nb)[0] == []
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\nprint('changed')"
    assert execute.check(nb)[0] == ["its code cells changed since the outputs were made"]
    markdown = stored("03_attention_and_embeddings.ipynb")
    next(c for c in markdown.cells if c.cell_type == "markdown").source += "\nMore words."
    assert execute.check(markdown)[0] == []  # prose does not make outputs stale
    del markdown.metadata[execute.METADATA_KEY]
    assert "never executed" in execute.check(markdown)[0][0]


def test_check_command(tools, capsys):
    execute, _ = tools
    assert execute.main(["--check"]) == 0
    assert capsys.readouterr().out.count("outputs current") == len(NOTEBOOKS)
    assert execute.main(["--check", "absent.ipynb"]) == 2
    assert "no notebook absent.ipynb" in capsys.readouterr().err


def test_inputs_default_to_the_repository(tools, tmp_path, monkeypatch):
    _, inputs_module = tools
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/proteinbert_models here
    inputs = inputs_module.inputs_from_environment({})
    assert (inputs.small, inputs.weights, inputs.benchmarks) == (False, None, None)
    assert inputs.out == REPO / "outputs" / "notebooks"
    text = inputs.describe()
    assert "randomly initialised" in text and "mean nothing" in text and "data/sp2014_go.2k.fasta.gz" in text
    assert "outputs:  outputs/notebooks/" in text


def test_inputs_from_variables(tools, tmp_path, monkeypatch):
    _, inputs_module = tools
    from proteinbert.errors import InputError, WeightsError

    monkeypatch.setenv("HOME", str(tmp_path))
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"x" * 2000)
    inputs = inputs_module.inputs_from_environment({
        "PROTEINBERT_WEIGHTS": str(weights), "PROTEINBERT_BENCHMARKS": str(tmp_path),
        "PROTEINBERT_NOTEBOOK_SMALL": "1", "PROTEINBERT_NOTEBOOK_OUT": str(tmp_path / "o")})
    assert (inputs.small, inputs.weights, inputs.benchmarks, inputs.out) == (True, weights, tmp_path, tmp_path / "o")
    assert "w.pkl ($PROTEINBERT_WEIGHTS" in inputs.describe()
    with pytest.raises(InputError, match=r"\$PROTEINBERT_BENCHMARKS='/nowhere/bench' is not a folder"):
        inputs_module.inputs_from_environment({"PROTEINBERT_BENCHMARKS": "/nowhere/bench"})
    with pytest.raises(WeightsError, match="absent.pkl"):  # set but wrong: an error, not a random model
        inputs_module.inputs_from_environment({"PROTEINBERT_WEIGHTS": str(tmp_path / "absent.pkl")})


def test_describe_model_never_passes_a_test_model_off_as_the_released_one(tools, tmp_path):
    _, inputs_module = tools
    from proteinbert.model import ProteinBertBackbone

    tiny = ProteinBertBackbone(n_annotations=4, **MICRO)
    assert "randomly initialised" in inputs_module.describe_model(tiny, None)
    line = inputs_module.describe_model(tiny, tmp_path / "epoch_92400_sample_23500000.pkl")
    assert "NOT the released ProteinBERT" in line and "d_seq=8" in line


def test_bundled_task_is_the_pipeline_membrane_task(tools, tmp_path):
    _, inputs_module = tools
    inputs = inputs_module.NotebookInputs(small=False, out=tmp_path, weights=None, benchmarks=None)
    task = inputs_module.binary_task(inputs)
    assert task.name == "membrane (GO:0016020)" and task.paper_auc is None
    # proteinbert.pipeline's defaults: 800 annotated training proteins (1/8 valid), the 400 held out.
    assert (len(task.train), len(task.valid), len(task.test)) == (700, 100, 400)
    assert set(task.train.label) == {0, 1} and 0.1 < task.test.label.mean() < 0.5
    small = task.subsample(64, 32, 64)
    assert (len(small.train), len(small.valid), len(small.test)) == (64, 32, 64)
    assert set(small.test.label) == {0, 1}
    assert sorted(p.name for p in (tmp_path / "membrane_task").iterdir()) == [
        "membrane.test.csv", "membrane.train.csv", "membrane.valid.csv"]


def _run(name, execute, tmp_path, env):
    out = tmp_path / "out"
    kernels = execute.write_kernel_spec(tmp_path / "kernels")
    nb = execute.execute(NOTEBOOK_DIR / name, execute.run_env(out, env), kernels, timeout=600)
    for expected in NOTEBOOKS[name]:
        produced = out / expected
        assert produced.is_file() and produced.stat().st_size > 0, expected
    assert not [k for _, k in shown(nb, execute) if k and "error" in k]
    return nb


# The benchmark-suite notebook trains twice: slow (the suite itself is tested in test_benchmark_suite.py).
@pytest.mark.parametrize("name", [n if not n.startswith("02") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NOTEBOOKS])
def test_notebook_reproduces_its_stored_outputs(name, tools, tmp_path):
    """Run as execute.py ran it (fixture weights, benchmark CSVs): every cell shows what it stored."""
    execute, _ = tools
    weights = require_shared("fixtures", "small_lamb.pkl")
    benchmarks = require_shared("data", "protein_benchmarks")
    env = {**os.environ, "PROTEINBERT_WEIGHTS": str(weights), "PROTEINBERT_BENCHMARKS": str(benchmarks)}
    nb = _run(name, execute, tmp_path, env)
    assert shown(nb, execute) == shown(stored(name), execute)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_without_weights_or_benchmarks(name, tools, tmp_path):
    """No weights, no benchmark CSVs: a random model on the bundled data/, and it says so."""
    execute, _ = tools
    import matplotlib

    env = {k: v for k, v in os.environ.items() if k not in ("PROTEINBERT_WEIGHTS", "PROTEINBERT_BENCHMARKS")}
    env.update(HOME=str(tmp_path / "home"), MPLCONFIGDIR=matplotlib.get_configdir())  # no ~/proteinbert_models
    nb = _run(name, execute, tmp_path, env)
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "randomly initialised" in first and "bundled sample data/" in first
    figures = [i for i, (_, k) in enumerate(shown(nb, execute)) if k and "image/png" in k]
    assert figures == [i for i, (_, k) in enumerate(shown(stored(name), execute)) if k and "image/png" in k]
