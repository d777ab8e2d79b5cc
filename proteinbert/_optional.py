"""Optional dependencies: import them where needed, or say which extra installs them."""

from __future__ import annotations

import importlib
import importlib.util

from .errors import MissingDependencyError


def _error(module: str, extra: str, purpose: str) -> MissingDependencyError:
    return MissingDependencyError(f"{purpose} needs {module}, which is not installed: "
                                  f"pip install 'proteinbert[{extra}]' (or pip install {module})")


def require(module: str, extra: str, purpose: str):
    """``import module``, or :class:`~proteinbert.errors.MissingDependencyError` naming ``extra``.

    >>> require("json", "none", "this example").__name__
    'json'
    >>> require("surely_absent_module", "plots", "the report")
    Traceback (most recent call last):
    ...
    proteinbert.errors.MissingDependencyError: the report needs surely_absent_module, which is not installed: pip install 'proteinbert[plots]' (or pip install surely_absent_module)
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        raise _error(module, extra, purpose) from None


def check_available(module: str, extra: str, purpose: str) -> None:
    """Raise as :func:`require` would, without importing ``module`` (for checks before long work)."""
    if importlib.util.find_spec(module) is None:
        raise _error(module, extra, purpose)
