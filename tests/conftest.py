import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest

from proteinbert.hardware import tune_cpu_allocator

# The commands tune the CPU allocator at start-up (proteinbert.cli.main.prepare_process); the
# tests call their main() functions in this process, so they get the same settings here.
tune_cpu_allocator()

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROTEINBERT_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
SHARED_DATA = SHARED / "data"


def require_shared(*parts) -> Path:
    """Path under ../shared; skip the test if the shared folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return require_shared("fixtures")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared("data")
