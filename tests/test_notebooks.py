"""The notebooks run top to bottom with small settings and save their plots.

The kernel is the interpreter running the tests: a kernel spec pointing at ``sys.executable``
is written to a temporary ``JUPYTER_PATH``, so a fresh virtual environment needs no manual step.
"""

import json
import sys

import pytest

from conftest import REPO, SHARED, require_shared

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

KERNEL = "proteinbert-tests"
NOTEBOOKS = {
    "01_finetune_signal_peptide.ipynb": ["signal_peptide_roc.png", "signal_peptide_predictions.csv",
                                         "signal_peptide_model/model.keras"],
    "02_benchmark_suite.ipynb": ["benchmark_suite.png", "benchmark_suite.csv", "benchmark_suite.md"],
    "03_attention_and_embeddings.ipynb": ["attention_heatmaps.png", "embeddings_pca.png"],
}


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "proteinbert tests", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    out = tmp_path / "out"
    monkeypatch.setenv("PROTEINBERT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("PROTEINBERT_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("PROTEINBERT_SHARED", str(SHARED.resolve()))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("PROTEINBERT_WEIGHTS", raising=False)
    return out


# The benchmark-suite notebook trains twice (~1 min on 2 cores): slow; the suite itself is tested in
# test_finetune_cli.py.
@pytest.mark.parametrize("name", [n if not n.startswith("02") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NOTEBOOKS])
def test_notebook_runs_and_saves_plots(name, kernel_env):
    require_shared("data", "protein_benchmarks")
    path = REPO / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for expected in NOTEBOOKS[name]:
        produced = kernel_env / expected
        assert produced.is_file() and produced.stat().st_size > 0, expected
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
