"""Re-execute the notebooks in place with the small settings, and record what made their outputs.

    PROTEINBERT_WEIGHTS=small_lamb.pkl PROTEINBERT_BENCHMARKS=protein_benchmarks/ \\
        python notebooks/execute.py                 # all notebooks (minutes on a CPU)
    python notebooks/execute.py 03_attention_and_embeddings.ipynb
    python notebooks/execute.py --check             # exit 1 if a notebook's code changed since its outputs

The kernel runs this interpreter (a temporary kernel spec on ``sys.executable``) with
``PROTEINBERT_NOTEBOOK_SMALL=1``; plots, tables and models go to the notebooks' default folder,
``outputs/notebooks/`` (git-ignored), unless ``--out DIR``. ``PROTEINBERT_WEIGHTS`` and
``PROTEINBERT_BENCHMARKS`` are passed on as they are (see ``notebook_inputs.py``). Each notebook's ``metadata["proteinbert_execution"]`` records digests of its
code cells, of the modules it draws with (``notebook_inputs.py``, ``proteinbert/plots.py``) and of
the whole ``proteinbert`` package, with the versions and inputs of the run. ``--check`` fails on a
changed code cell or module; a changed package is reported, and fails only with ``--strict``. A
notebook that fails to run is left as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from notebook_inputs import BENCHMARKS_ENV, OUT_ENV, SMALL_ENV, WEIGHTS_ENV_VAR  # this folder is on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGE = REPO / "proteinbert"
HELPERS = (HERE / "notebook_inputs.py", PACKAGE / "plots.py")
METADATA_KEY = "proteinbert_execution"
KERNEL = "proteinbert-notebooks"
#: Environment of every run: the small settings, fewer TensorFlow log lines, and the inline
#: backend (an inherited MPLBACKEND=Agg would hide every figure).
RUN_ENV = {SMALL_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
UNSET_ENV = ("MPLBACKEND",)


def notebooks() -> list[Path]:
    """The notebooks, in order (``NN_name.ipynb``)."""
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def _sha256(parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: no ambiguous joins
    return digest.hexdigest()


def code_digest(nb) -> str:
    """Digest of the notebook's code cells (their sources, in order; markdown does not count)."""
    return _sha256(c.source for c in nb.cells if c.cell_type == "code")


def helpers_digest() -> str:
    """Digest of the modules whose code the notebooks' outputs show directly."""
    return _sha256(x for p in HELPERS for x in (p.name, p.read_bytes()))


def library_digest() -> str:
    """Digest of every ``proteinbert/**/*.py`` (path and content)."""
    files = sorted(PACKAGE.rglob("*.py"))
    return _sha256(x for p in files for x in (p.relative_to(REPO).as_posix(), p.read_bytes()))


def check(nb) -> tuple[list[str], bool]:
    """(reasons the stored outputs are stale, whether the package changed since they were made)."""
    record = nb.metadata.get(METADATA_KEY)
    if not record:
        return [f"no metadata[{METADATA_KEY!r}]: never executed by notebooks/execute.py"], False
    reasons = []
    if record.get("code_sha256") != code_digest(nb):
        reasons.append("its code cells changed since the outputs were made")
    if record.get("helpers_sha256") != helpers_digest():
        reasons.append(f"{' or '.join(p.relative_to(REPO).as_posix() for p in HELPERS)} changed since")
    unexecuted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
                  and c.get("execution_count") is None]
    if unexecuted:
        reasons.append(f"code cells {unexecuted} have no execution count")
    return reasons, record.get("library_sha256") != library_digest()


def output_kinds(cell) -> tuple:
    """What a code cell shows, as sorted kinds: ``stream:stdout``, ``error`` and MIME types
    (``image/png``, ``text/html``, ...). stderr is left out: warnings come and go between runs."""
    kinds = set()
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            if out.name == "stdout":
                kinds.add("stream:stdout")
        elif out.output_type == "error":
            kinds.add("error")
        else:
            kinds.update(out.get("data", {}))
    return tuple(sorted(kinds))


def write_kernel_spec(kernels_dir: Path) -> Path:
    """A kernel spec running this interpreter, in ``kernels_dir/<KERNEL>``; returns ``kernels_dir``."""
    spec = kernels_dir / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        # TensorFlow's C++ start-up lines (printed whatever TF_CPP_MIN_LOG_LEVEL says) go to this
        # process's stderr, not into the stored outputs; Python warnings and logging still do.
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.capture_fd_output=False"],
        "display_name": "proteinbert notebooks", "language": "python"}))
    return kernels_dir


def execute(path: Path, env: dict, kernels_dir: Path, timeout: int = 1200):
    """Run the notebook at ``path`` (cwd: its folder) in a kernel from :func:`write_kernel_spec`'s
    ``kernels_dir`` with environment ``env``; return the executed notebook (``path`` itself is not
    touched). Raises nbclient's error on a failing cell."""
    import nbclient
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    nb = nbformat.read(path, as_version=4)
    kernelspec = dict(nb.metadata.get("kernelspec", {}))
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
    client = nbclient.NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=timeout, record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    if kernelspec:
        nb.metadata["kernelspec"] = kernelspec  # the reader's kernel, not the temporary one
    return nb


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("proteinbert", "tensorflow", "keras", "numpy", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _inputs(env: dict) -> dict:
    """The inputs of a run, by name only (no local paths in a committed file)."""
    weights = env.get(WEIGHTS_ENV_VAR)
    benchmarks = env.get(BENCHMARKS_ENV)
    return {"weights": Path(weights).name if weights else None,
            "weights_sha256": _sha256([Path(weights).read_bytes()]) if weights and Path(weights).is_file() else None,
            "benchmarks": Path(benchmarks).name if benchmarks else None, "small": env.get(SMALL_ENV) == "1"}


def record(nb, env: dict, wall_s: float) -> None:
    """Store the digests, versions and inputs of this run in the notebook's metadata."""
    nb.metadata[METADATA_KEY] = {
        "code_sha256": code_digest(nb), "helpers_sha256": helpers_digest(), "library_sha256": library_digest(),
        "versions": _versions(), "inputs": _inputs(env), "wall_s": round(wall_s, 1),
        "executed": time.strftime("%Y-%m-%d"), "command": "python notebooks/execute.py",
    }


def _write(nb, path: Path) -> None:
    import nbformat

    from proteinbert.io_utils import atomic_write_path

    with atomic_write_path(path) as tmp:
        nbformat.write(nb, tmp)


def run_env(out: Path | None, base=None) -> dict:
    """The kernel's environment: ``base`` (default ``os.environ``) with :data:`RUN_ENV`; outputs to
    ``out``, or to the notebooks' default folder when None."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in UNSET_ENV + (OUT_ENV,)}
    env.update(RUN_ENV)
    if out is not None:
        env[OUT_ENV] = str(out)
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook file names in notebooks/ (default: all)")
    parser.add_argument("--check", action="store_true", help="only check that the stored outputs are current")
    parser.add_argument("--strict", action="store_true", help="with --check: a changed proteinbert package fails too")
    parser.add_argument("--out", help="folder for the notebooks' plots, tables and models (default: outputs/notebooks/)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell at most (default 1200)")
    args = parser.parse_args(argv)
    paths = [HERE / Path(n).name for n in args.notebooks] or notebooks()
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        print(f"execute.py: no notebook {', '.join(missing)} in {HERE}", file=sys.stderr)
        return 2
    import nbformat

    if args.check:
        failed = False
        for path in paths:
            reasons, library_changed = check(nbformat.read(path, as_version=4))
            if library_changed:
                print(f"{path.name}: the proteinbert package changed since its outputs were made")
            failed |= bool(reasons) or (args.strict and library_changed)
            print(f"{path.name}: {'; '.join(reasons) if reasons else 'outputs current'}")
        return 1 if failed else 0
    with tempfile.TemporaryDirectory(prefix="notebooks.") as scratch:
        kernels = write_kernel_spec(Path(scratch) / "kernels")
        env = run_env(Path(args.out).resolve() if args.out else None)
        for path in paths:
            start = time.perf_counter()
            print(f"{path.name}: running ...", flush=True)
            nb = execute(path, env, kernels, args.timeout)
            wall = time.perf_counter() - start
            record(nb, env, wall)
            _write(nb, path)
            print(f"{path.name}: done in {wall:.0f} s, {path.stat().st_size / 1e3:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
