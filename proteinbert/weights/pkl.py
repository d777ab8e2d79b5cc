"""The released ``.pkl`` weights format: ``(n_annotations, model_weights, optimizer_weights)``.

Pickles can run code when loaded, so :func:`read_pkl` uses an unpickler that only admits numpy
arrays, dtypes and scalars plus plain Python containers; anything else is refused with
:class:`~proteinbert.errors.UnsafePickleError` before it runs.
"""

from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsafePickleError, WeightsError
from ..io_utils import atomic_write_path

logger = logging.getLogger(__name__)

# (module, name) pairs a numpy-array pickle needs; numpy 1 and numpy 2 module paths.
_ALLOWED_GLOBALS = frozenset(
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._path}: refusing to load {module}.{name}: a weights pickle may only hold numpy "
            "arrays and plain Python values (this file could run code if loaded with pickle.load)"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._path}: persistent ids are not allowed in a weights pickle")


def safe_unpickle(data: bytes, path: str = "<bytes>"):
    """Unpickle ``data`` admitting only numpy arrays/dtypes/scalars and plain containers."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise WeightsError(f"{path}: not a readable weights pickle ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class ReleasedWeights:
    """Contents of a released-format ``.pkl``."""

    n_annotations: int
    model_weights: list = field(repr=False)
    optimizer_weights: list = field(default_factory=list, repr=False)


def read_pkl(path) -> ReleasedWeights:
    """Read and validate a released-format ``.pkl`` (the 2021 ``epoch_*_sample_*.pkl`` files).

    >>> w = read_pkl("small_lamb.pkl")  # doctest: +SKIP
    >>> w.n_annotations, len(w.model_weights)  # doctest: +SKIP
    (50, 53)
    """
    path = str(path)
    with open(path, "rb") as f:
        data = f.read()
    obj = safe_unpickle(data, path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise WeightsError(
            f"{path}: expected a tuple (n_annotations, model_weights, optimizer_weights). "
            f"Received: {type(obj).__name__}" + (f" of length {len(obj)}" if hasattr(obj, "__len__") else "")
        )
    n_annotations, model_weights, optimizer_weights = obj
    if isinstance(n_annotations, np.integer):
        n_annotations = int(n_annotations)
    if not isinstance(n_annotations, int) or isinstance(n_annotations, bool) or n_annotations < 1:
        raise WeightsError(f"{path}: n_annotations must be a positive int. Received: {n_annotations!r}")
    if not isinstance(model_weights, (list, tuple)) or not all(isinstance(w, np.ndarray) for w in model_weights):
        raise WeightsError(f"{path}: model_weights must be a list of numpy arrays")
    if optimizer_weights is None:
        optimizer_weights = []
    return ReleasedWeights(n_annotations, list(model_weights), list(optimizer_weights))


def write_pkl(path, weights: ReleasedWeights, protocol: int = 4) -> None:
    """Write the released format atomically (protocol 4 so the 2021 stack can read it)."""
    payload = (
        int(weights.n_annotations),
        [np.asarray(w) for w in weights.model_weights],
        # numpy scalars stay scalars: the 2021 LAMB state starts with an np.int64 iteration count
        [w if isinstance(w, np.generic) else np.asarray(w) for w in weights.optimizer_weights],
    )
    with atomic_write_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=protocol)
