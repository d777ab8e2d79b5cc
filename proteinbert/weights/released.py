"""Put released-format weights into a :class:`ProteinBertBackbone` and take them out again."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import WeightsError
from ..model.backbone import ProteinBertBackbone
from ..model.block import LAYER_NAMES
from .pkl import ReleasedWeights, read_pkl

logger = logging.getLogger(__name__)

# The released layout: (layer, weight, shape) in ``.pkl`` order. Block layers are named by their
# ProteinBertBlock field (their names come from model.block.LAYER_NAMES); shapes are written in
# the architecture's sizes: A n_annotations, V vocab_size, S d_seq, G d_global, K conv_kernel_size,
# H n_heads, Dk d_key, Dv the value width d_global / n_heads.
_INPUT_WEIGHTS = (
    ("dense-global-input", "kernel", ("A", "G")), ("dense-global-input", "bias", ("G",)),
    ("embedding-seq-input", "embeddings", ("V", "S")),
)
_BLOCK_WEIGHTS = (
    ("global_to_seq_dense", "kernel", ("G", "S")), ("global_to_seq_dense", "bias", ("S",)),
    ("narrow_conv", "kernel", ("K", "S", "S")), ("narrow_conv", "bias", ("S",)),
    ("wide_conv", "kernel", ("K", "S", "S")), ("wide_conv", "bias", ("S",)),
    ("seq_norm1", "gamma", ("S",)), ("seq_norm1", "beta", ("S",)),
    ("seq_dense", "kernel", ("S", "S")), ("seq_dense", "bias", ("S",)),
    ("seq_norm2", "gamma", ("S",)), ("seq_norm2", "beta", ("S",)),
    ("global_dense1", "kernel", ("G", "G")), ("global_dense1", "bias", ("G",)),
    ("attention", "Wq", ("H", "G", "Dk")), ("attention", "Wk", ("H", "S", "Dk")), ("attention", "Wv", ("H", "S", "Dv")),
    ("global_norm1", "gamma", ("G",)), ("global_norm1", "beta", ("G",)),
    ("global_dense2", "kernel", ("G", "G")), ("global_dense2", "bias", ("G",)),
    ("global_norm2", "gamma", ("G",)), ("global_norm2", "beta", ("G",)),
)
_OUTPUT_WEIGHTS = (
    ("output-seq", "kernel", ("S", "V")), ("output-seq", "bias", ("V",)),
    ("output-annotations", "kernel", ("G", "A")), ("output-annotations", "bias", ("A",)),
)
# Where infer_architecture reads each size: (weight name, axis) -> architecture key.
_SIZES_FROM = (
    ("dense-global-input/kernel", 0, "n_annotations"), ("dense-global-input/kernel", 1, "d_global"),
    ("embedding-seq-input/embeddings", 0, "vocab_size"), ("embedding-seq-input/embeddings", 1, "d_seq"),
    ("narrow-conv-block1/kernel", 0, "conv_kernel_size"),
    ("global-attention-block1/Wq", 0, "n_heads"), ("global-attention-block1/Wq", 2, "d_key"),
)


def released_layout(n_blocks: int) -> list[tuple[str, tuple]]:
    """``(layer/weight name, shape in size symbols)`` in the order of the released ``.pkl``."""
    layout = [(f"{layer}/{weight}", shape) for layer, weight, shape in _INPUT_WEIGHTS]
    for b in range(1, n_blocks + 1):
        layout += [(f"{LAYER_NAMES[field].format(b=b)}/{weight}", shape) for field, weight, shape in _BLOCK_WEIGHTS]
    layout += [(f"{layer}/{weight}", shape) for layer, weight, shape in _OUTPUT_WEIGHTS]
    return layout


def released_weight_names(n_blocks: int) -> list[str]:
    """``layer/weight`` names in the order of the released ``.pkl`` (pinned against the fixture).

    >>> released_weight_names(1)[:3]
    ['dense-global-input/kernel', 'dense-global-input/bias', 'embedding-seq-input/embeddings']
    >>> len(released_weight_names(6))
    145
    """
    return [name for name, _ in released_layout(n_blocks)]


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
    """Array shapes of the released layout for ``arch``, in :func:`released_weight_names` order."""
    sizes = {"A": arch["n_annotations"], "V": arch["vocab_size"], "S": arch["d_seq"], "G": arch["d_global"],
             "K": arch["conv_kernel_size"], "H": arch["n_heads"], "Dk": arch["d_key"],
             "Dv": arch["d_global"] // arch["n_heads"]}
    return [tuple(sizes[symbol] for symbol in shape) for _, shape in released_layout(arch["n_blocks"])]


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
    fixed, per_block = len(_INPUT_WEIGHTS) + len(_OUTPUT_WEIGHTS), len(_BLOCK_WEIGHTS)
    if len(arrays) < fixed + per_block or (len(arrays) - fixed) % per_block:
        raise WeightsError(f"{source}: {len(arrays)} weight arrays do not form a ProteinBERT layout "
                           f"({fixed} + {per_block} per block)")
    n_blocks = (len(arrays) - fixed) // per_block
    layout = released_layout(n_blocks)
    names = [name for name, _ in layout]
    by_name = dict(zip(names, arrays))
    ranks = {name: len(shape) for name, shape in layout}
    for name in dict.fromkeys(name for name, _, _ in _SIZES_FROM):  # the arrays the sizes are read from
        if np.ndim(by_name[name]) != ranks[name]:
            raise WeightsError(f"{source}: array #{names.index(name)} {name} has shape "
                               f"{tuple(np.shape(by_name[name]))}; the layout needs {ranks[name]} dimensions")
    read = {key: int(np.shape(by_name[name])[axis]) for name, axis, key in _SIZES_FROM}
    # n_annotations as the file states it (the input kernel's rows are checked against it below)
    read.update(n_annotations=weights.n_annotations, n_blocks=n_blocks)
    arch = {key: read[key] for key in ("n_annotations", "vocab_size", "d_seq", "d_global", "n_blocks", "n_heads",
                                       "d_key", "conv_kernel_size")}
    d_seq, d_global, n_heads = arch["d_seq"], arch["d_global"], arch["n_heads"]
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
