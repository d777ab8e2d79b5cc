"""``pip install <clone>`` (not editable) into a fresh venv that already has older numpy, pandas and
scikit-learn: it keeps them, and the command works. Slow: it installs TensorFlow (minutes)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]
# Older than the tested set (constraints.txt), yet within setup.cfg's ranges.
PREINSTALLED = {"numpy": "numpy<2.4", "pandas": "pandas<3", "scikit-learn": "scikit-learn<1.7"}


def _run(argv, **kw):
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=1800, **kw)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _versions(python) -> dict:
    code = ("import importlib.metadata as m, json; "
            f"print(json.dumps({{n: m.version(n) for n in {sorted(PREINSTALLED)!r}}}))")
    import json

    return json.loads(_run([python, "-c", code]).stdout)


@pytest.mark.slow
def test_install_beside_older_numpy_pandas_scikit_learn(tmp_path):
    source = tmp_path / "clone"  # only what a clone has that the build needs; the checkout stays untouched
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "proteinbert", source / "proteinbert",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])  # no --system-site-packages: nothing leaks in
    python, pip = venv / "bin" / "python", [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    _run(pip + ["install", "-q", *PREINSTALLED.values()])
    before = _versions(python)
    _run(pip + ["install", "-q", source])  # not editable
    assert _versions(python) == before  # pip kept the user's versions
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    elsewhere = {"cwd": tmp_path, "env": env}  # not the checkout: the installed package must do
    assert "create-dataset" in _run([venv / "bin" / "proteinbert", "--help"], **elsewhere).stdout
    assert "usage: proteinbert embed" in _run([venv / "bin" / "proteinbert", "embed", "--help"], **elsewhere).stdout
    assert _run([python, "-m", "proteinbert", "--version"], **elsewhere).stdout.startswith("proteinbert ")
    # A command that runs TensorFlow and Keras on the older numpy.
    pkl = FIXTURES / "small_lamb.pkl"
    if pkl.is_file():
        out = tmp_path / "small.keras"
        _run([venv / "bin" / "proteinbert", "convert-weights", "-i", pkl, "-o", out], **elsewhere)
        assert out.is_file()
