"""Shared by the bin/ launchers: run a ``proteinbert`` subcommand from this checkout.

Uses the checkout's virtual environment (``$PROTEINBERT_VENV``, default ``.venv``) when it exists
and no other environment is active, so nothing has to be activated or installed first.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _in_a_venv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def launch(command: str, script: str) -> None:
    venv = Path(os.environ.get("PROTEINBERT_VENV", REPO / ".venv"))
    python = venv / "bin" / "python"
    if not _in_a_venv() and python.is_file():
        os.execv(str(python), [str(python), script, *sys.argv[1:]])
    sys.path.insert(0, str(REPO))
    try:
        from proteinbert.cli.main import main

        code = main([command, *sys.argv[1:]])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "proteinbert":
            raise
        print(f"{Path(script).name}: the Python package {exc.name!r} is missing from {sys.executable}. "
              f"Install proteinbert with its dependencies (pip install {REPO}), or create the checkout's "
              f"environment with: bash -c 'source {REPO}/bin/_ensure_venv.sh'", file=sys.stderr)
        code = 1
    sys.exit(code)
