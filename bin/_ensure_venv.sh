# Sourced by bin/main_job and bin/run_tests: create .venv and install the package with the tested
# dependency versions (constraints.txt) once; reinstall only when setup.cfg, pyproject.toml or
# constraints.txt change.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PROTEINBERT_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.proteinbert-install-stamp"
WANT="$(cat "$REPO/setup.cfg" "$REPO/pyproject.toml" "$REPO/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[setup] installing proteinbert and its tested dependencies (first run takes a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$REPO/constraints.txt" -e "$REPO[all,test]"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$REPO"
