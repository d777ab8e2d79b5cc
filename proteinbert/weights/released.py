"""Put released-format weights into a :class:`ProteinBertBackbone` and take them out again."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import WeightsError
from ..model.backbone import ProteinBertBackbone
from .pkl import ReleasedWeights, read_pkl

logger = logging.getLogger(__name__)

_BLOCK_WEIGHTS = (
    ("global-to-seq-dense", ("kernel", "bias")),
    ("narrow-conv", ("kernel", "bias")),
    ("wide-conv", ("kernel", "bias")),
    ("seq-merge1-norm", ("gamma", "beta")),
    ("seq-dense", ("kernel", "bias")),
    ("seq-merge2-norm", ("gamma", "beta")),
    ("global-dense1", ("kernel", "bias")),
    ("global-attention", ("Wq", "Wk", "Wv")),
    ("global-merge1-norm", ("gamma", "beta")),
    ("global-dense2", ("kernel", "bias")),
    ("global-merge2-norm", ("gamma", "beta")),
)


def released_weight_names(n_blocks: int) -> list[str]:
    """``layer/weight`` names in the order of the released ``.pkl`` (pinned against the fixture).

    >>> released_weight_names(1)[:3]
    ['dense-global-input/kernel', 'dense-global-input/bias', 'embedding-seq-input/embeddings']
    >>> len(released_weight_names(6))
    145
    """
    names = ["dense-global-input/kernel", "dense-global-input/bias", "embedding-seq-input/embeddings"]
    for b in range(1, n_blocks + 1):
        for layer, weights in _BLOCK_WEIGHTS:
            names += [f"{layer}-block{b}/{w}" for w in weights]
    names += ["output-seq/kernel", "output-seq/bias", "output-annotations/kernel", "output-annotations/bias"]
    return names


def _variables_by_name(model: ProteinBertBackbone) -> dict:
    return {v.path: v for v in model.weights}


def released_variables(model: ProteinBertBackbone) -> list:
    """The model's variables in released ``.pkl`` order."""
    by_name = _variables_by_name(model)
    names = released_weight_names(model.n_blocks)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise WeightsError(f"model lacks released-layout weights: {', '.join(missing)}")
    return [by_name[n] for n in names]


def load_released_weights(model: ProteinBertBackbone, weights, source: str | None = None) -> None:
    """Set ``model``'s weights from a released ``.pkl`` path or a :class:`ReleasedWeights`.

    Every mismatch (count, shape, n_annotations) is reported at once, naming the layers;
    nothing is assigned unless all of them fit.
    """
    if not isinstance(weights, ReleasedWeights):
        source = str(weights)
        weights = read_pkl(weights)
    source = source or "released weights"
    problems = []
    if weights.n_annotations != model.n_annotations:
        problems.append(
            f"n_annotations: the file has {weights.n_annotations}, the model {model.n_annotations} "
            f"(build the model with n_annotations={weights.n_annotations})"
        )
    variables = released_variables(model)
    if len(weights.model_weights) != len(variables):
        problems.append(
            f"weight count: the file has {len(weights.model_weights)} arrays, the model expects "
            f"{len(variables)} (n_blocks={model.n_blocks}); the architecture differs"
        )
    for i, (var, arr) in enumerate(zip(variables, weights.model_weights)):
        if tuple(arr.shape) != tuple(var.shape):
            problems.append(f"#{i} {var.path}: file shape {tuple(arr.shape)}, model shape {tuple(var.shape)}")
    if problems:
        raise WeightsError(f"{source} do not fit the model:\n  " + "\n  ".join(problems))
    check_finite(((var.path, arr) for var, arr in zip(variables, weights.model_weights)), source)
    for var, arr in zip(variables, weights.model_weights):
        var.assign(np.asarray(arr, dtype=var.dtype))
    logger.info("loaded %d weight tensors from %s", len(variables), source)


def check_finite(named_arrays, source: str) -> None:
    """Refuse weights holding NaN or infinity (they give all-NaN outputs without any error)."""
    for name, arr in named_arrays:
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise WeightsError(f"{source}: weight array {name} {tuple(arr.shape)} holds {bad:,} non-finite "
                               "value(s) (NaN or infinity); the file is damaged or from a diverged run")


def _expected_shapes(arch: dict) -> list[tuple]:
    """Array shapes of the released layout for ``arch`` (names: :func:`released_weight_names`)."""
    A, V, S, G = arch["n_annotations"], arch["vocab_size"], arch["d_seq"], arch["d_global"]
    H, K, Dk = arch["n_heads"], arch["conv_kernel_size"], arch["d_key"]
    block = [(G, S), (S,), (K, S, S), (S,), (K, S, S), (S,), (S,), (S,), (S, S), (S,), (S,), (S,),
             (G, G), (G,), (H, G, Dk), (H, S, Dk), (H, S, G // H), (G,), (G,), (G, G), (G,), (G,), (G,)]
    return [(A, G), (G,), (V, S)] + block * arch["n_blocks"] + [(S, V), (V,), (G, A), (A,)]


def export_released_weights(model: ProteinBertBackbone, optimizer_weights=None) -> ReleasedWeights:
    """The model's weights as a :class:`ReleasedWeights` (write it with ``write_pkl``)."""
    arrays = [np.asarray(v.numpy(), dtype=np.float32) for v in released_variables(model)]
    return ReleasedWeights(model.n_annotations, arrays, list(optimizer_weights or []))


def infer_architecture(weights: ReleasedWeights, source: str = "weights") -> dict:
    """Architecture keyword arguments implied by the array shapes of a released dump.

    ``conv_kernel_size`` comes from the conv kernels; ``wide_conv_dilation_rate`` cannot be
    seen in the weights and keeps its default (5) unless given. Every array (and
    ``n_annotations``) is checked against the layout first, so a damaged file is refused by
    name before a model of absurd size is built.
    """
    arrays = weights.model_weights
    if len(arrays) < 7 or (len(arrays) - 7) % 23:
        raise WeightsError(f"{source}: {len(arrays)} weight arrays do not form a ProteinBERT layout "
                           "(7 + 23 per block)")
    n_blocks = (len(arrays) - 7) // 23
    names = released_weight_names(n_blocks)
    for i, rank in ((0, 2), (2, 2), (5, 3), (3 + 14, 3)):  # the arrays the sizes are read from
        if np.ndim(arrays[i]) != rank:
            raise WeightsError(f"{source}: array #{i} {names[i]} has shape {tuple(np.shape(arrays[i]))}; "
                               f"the layout needs {rank} dimensions")
    d_seq = int(arrays[2].shape[1])
    d_global = int(arrays[0].shape[1])
    n_heads, _, d_key = (int(x) for x in arrays[3 + 14].shape)  # first block's Wq
    arch = dict(
        n_annotations=weights.n_annotations, vocab_size=int(arrays[2].shape[0]), d_seq=d_seq,
        d_global=d_global, n_blocks=n_blocks, n_heads=n_heads, d_key=d_key,
        conv_kernel_size=int(arrays[5].shape[0]),
    )
    if min(v for k, v in arch.items()) < 1 or d_global % n_heads:
        raise WeightsError(f"{source}: the array shapes imply an impossible architecture {arch}")
    problems = [f"#{i} {name}: shape {tuple(np.shape(a))}, expected {shape}"
                for i, (name, a, shape) in enumerate(zip(names, arrays, _expected_shapes(arch)))
                if tuple(np.shape(a)) != shape]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightsError(f"{source}: arrays do not fit one ProteinBERT layout (n_annotations="
                           f"{weights.n_annotations}, d_seq={d_seq}, d_global={d_global}): "
                           + "; ".join(problems[:3]) + more)
    return arch


def backbone_from_released(path_or_weights, **overrides) -> ProteinBertBackbone:
    """Build a backbone whose architecture fits a released dump and load it.

    >>> model = backbone_from_released("small_lamb.pkl")  # doctest: +SKIP
    """
    source = None
    weights = path_or_weights
    if not isinstance(weights, ReleasedWeights):
        source = str(weights)
        weights = read_pkl(weights)
    arch = infer_architecture(weights, source or "weights")
    for key, value in overrides.items():
        if key in arch and key != "n_annotations" and arch[key] != value:
            raise WeightsError(
                f"{source or 'weights'}: {key}={value!r} was asked for but the file implies {key}={arch[key]!r}"
            )
    arch.update(overrides)
    model = ProteinBertBackbone(**arch)
    load_released_weights(model, weights, source=source)
    return model
