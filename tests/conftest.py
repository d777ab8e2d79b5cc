import collections
import inspect
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


def free_ports(n: int) -> list:
    """``n`` local TCP ports free right now (for multi-worker tests)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return require_shared("fixtures")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared("data")


# -- tests that read ../shared: marked, and counted in the summary -------------------------------
# CI runs on a clean clone, where ../shared may be absent: the summary line says how many of these
# tests ran and how many were skipped for it.
_SHARED_FIXTURES = {"fixtures_dir", "shared_data"}
_SHARED_NAMES = ("require_shared", "SHARED_DATA", "FIXTURES", "SHARED")
_shared_outcomes = collections.Counter()


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: reads files under ../shared (skipped where it is absent)")


def _mentions_shared(obj) -> bool:
    try:
        source = inspect.getsource(obj)
    except (AttributeError, TypeError, OSError):
        return False
    return any(name in source for name in _SHARED_NAMES)


def _shared_helpers(module) -> set:
    """Names of the test module's own functions that read ../shared (one level deep)."""
    return {name for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and _mentions_shared(obj)}


def _reads_shared(item, helpers: set) -> bool:
    if _SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    function = getattr(item, "function", None)
    if function is None or _mentions_shared(function):
        return function is not None
    source = inspect.getsource(function)
    return any(f"{name}(" in source for name in helpers)


def pytest_collection_modifyitems(config, items):
    helpers = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__ not in helpers:
            helpers[module.__name__] = _shared_helpers(module)
        if _reads_shared(item, helpers.get(getattr(module, "__name__", None), set())):
            item.add_marker("shared")


def pytest_runtest_logreport(report):
    skipped_for_shared = report.skipped and "not present" in str(report.longrepr)
    if skipped_for_shared:
        _shared_outcomes["skipped (../shared absent)"] += 1
    elif "shared" in report.keywords and report.when == "call":
        _shared_outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if _shared_outcomes:
        counts = ", ".join(f"{n} {what}" for what, n in sorted(_shared_outcomes.items()))
        terminalreporter.write_line(f"tests that read {SHARED} (marked 'shared'): {counts}")
