"""Export a fine-tuned model or a backbone for serving without Keras: ONNX or a TensorFlow SavedModel.

The exported model is the Keras model's forward pass (inference: no dropout) with two inputs:

* ``tokens``: ``int32 (batch, length)``, token ids from :func:`proteinbert.tokenizer.encode_batch`
  (``<START>`` 23, residues 0..21, ``<END>`` 24, then ``<PAD>`` 25 up to the batch length); any
  length works;
* ``annotations``: ``float32 (batch, n_annotations)``, the GO annotation input (zeros for a
  fine-tuned model, which was trained with zeros).

Its outputs, by name:

* a fine-tuned model: ``output`` (what :meth:`~proteinbert.training.finetuning.FinetunedModel.predict`
  returns before unpadding: per protein ``(batch, n_outputs)``, per residue ``(batch, length,
  n_outputs)`` where residue ``i`` is position ``i + 1``);
* a backbone: ``token_probabilities`` ``(batch, length, 26)`` and ``annotation_probabilities``
  ``(batch, n_annotations)``; with ``layers="last"`` or ``"all"`` instead its hidden
  representations, ``residue_embeddings`` ``(batch, length, width)`` and ``protein_embeddings``
  ``(batch, width)`` (the widths of ``proteinbert embed --layers``).

A fine-tuned model's predictions depend on the padding it was trained with (see
:mod:`proteinbert.training.finetuning`): pad as in training, e.g. fixed padding to the first
stage's ``seq_len``. Both formats carry that in their metadata (:attr:`ExportResult.metadata`; in
the ONNX file as ``metadata_props``, in a SavedModel as ``proteinbert.json``). Long proteins run
whole: the chunked pass of :class:`~proteinbert.model.ChunkedForward` is not part of the export.

ONNX needs the ``onnx`` extra (``onnx``, ``tf2onnx``; ``onnxruntime`` to check the result). The
model's GELU is written with ``erf``, which ONNX has (:func:`proteinbert.model.layers.gelu`);
Keras's own GELU, in models saved by earlier versions, is converted to ``1 - erf`` on the way.
After writing, the export is run on a few proteins and compared with Keras (``verify``); an ONNX
file is then checked with ``onnx`` and, where ``onnxruntime`` is installed, run with it.

>>> result = export_model("my_model", "my_model.onnx")  # doctest: +SKIP
>>> result.max_abs_difference < 1e-5  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ExportError, InputError

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "savedmodel")
#: ONNX operator set of the export (onnxruntime 1.17 and newer run it).
DEFAULT_OPSET = 17
INPUT_NAMES = ("tokens", "annotations")
#: The largest difference from the Keras model that ``verify`` accepts.
VERIFY_TOLERANCE = 1e-4
METADATA_FILE = "proteinbert.json"  # in a SavedModel directory


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: ``path``, ``format``, ``kind`` (``"finetuned"``/``"backbone"``),
    the output names, the metadata stored with it, and the largest absolute difference from
    the Keras model on the check batches (``None`` when not run)."""

    path: Path
    format: str
    kind: str
    outputs: tuple
    metadata: dict = field(default_factory=dict)
    max_abs_difference: float | None = None


def format_for(destination, format: str | None = None) -> str:
    """The export format: ``format`` if given, else ``"onnx"`` for a ``.onnx`` destination, else a SavedModel.

    >>> format_for("model.onnx"), format_for("serving/model"), format_for("x", "onnx")
    ('onnx', 'savedmodel', 'onnx')
    """
    if format is not None:
        if format not in FORMATS:
            raise InputError(f"format must be one of {FORMATS}. Received: format={format!r}")
        return format
    suffix = Path(destination).suffix
    if suffix == ".onnx":
        return "onnx"
    if suffix:
        raise InputError(f"cannot tell the export format from {destination}: name it .onnx for ONNX, give a "
                         "directory name without an extension for a SavedModel, or pass the format")
    return "savedmodel"


# -- what is exported ---------------------------------------------------------------------------------

@dataclass
class _Exportable:
    model: object  # a Keras model taking [tokens, annotations]
    kind: str
    outputs: tuple  # output names, in the Keras model's output order
    n_annotations: int
    metadata: dict


def _is_finetuned_dir(path: Path) -> bool:
    from .training.finetuning import MODEL_FILE, SPEC_FILE

    return path.is_dir() and (path / MODEL_FILE).is_file() and (path / SPEC_FILE).is_file()


def _exportable(source, layers: str | None, architecture: dict | None) -> _Exportable:
    from .model import ProteinBertBackbone, hidden_representation_model
    from .tokenizer import TOKEN_TO_ID
    from .training.finetuning import FinetunedModel
    from .weights import load_backbone

    if isinstance(source, (str, Path)):
        path = Path(source)
        if _is_finetuned_dir(path):
            source = FinetunedModel.load(path)
        else:
            source = load_backbone(path, architecture=architecture)
    if not isinstance(source, (FinetunedModel, ProteinBertBackbone)):
        raise InputError("source must be a fine-tuned model directory, a FinetunedModel, weights that "
                         f"load_backbone opens, or a ProteinBertBackbone. Received: {type(source).__name__}")
    n_annotations = int(source.n_annotations)
    base = {"proteinbert_version": __version__, "inputs": list(INPUT_NAMES), "n_annotations": n_annotations,
            "token_ids": dict(TOKEN_TO_ID)}
    if isinstance(source, FinetunedModel):
        if layers is not None:
            raise InputError(f"layers applies to a backbone only; a fine-tuned model has one output. "
                             f"Received: layers={layers!r}")
        padding, seq_len = source.training_padding
        metadata = {**base, "kind": "finetuned", "outputs": ["output"],
                    "output_spec": json.loads(source.spec.to_json()), "padding": padding, "seq_len": seq_len,
                    "backbone_architecture": source.metadata.get("backbone_architecture")}
        return _Exportable(source.model, "finetuned", ("output",), n_annotations, metadata)
    if layers is None:
        model, outputs = source, ("token_probabilities", "annotation_probabilities")
    elif layers in ("last", "all"):
        model, outputs = hidden_representation_model(source, layers), ("residue_embeddings", "protein_embeddings")
    else:
        raise InputError(f"layers must be None, 'last' or 'all'. Received: layers={layers!r}")
    metadata = {**base, "kind": "backbone", "outputs": list(outputs), "layers": layers,
                "architecture": dict(source.architecture)}
    return _Exportable(model, "backbone", outputs, n_annotations, metadata)


def _serving_function(item: _Exportable):
    import tensorflow as tf

    signature = [tf.TensorSpec((None, None), tf.int32, name=INPUT_NAMES[0]),
                 tf.TensorSpec((None, item.n_annotations), tf.float32, name=INPUT_NAMES[1])]

    def serve(tokens, annotations):
        out = item.model([tokens, annotations], training=False)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        return dict(zip(item.outputs, out))

    return tf.function(serve, input_signature=signature), signature


# -- ONNX ---------------------------------------------------------------------------------------------

def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx handler: ONNX has no ``Erfc``; ``erfc(x) = 1 - erf(x)`` (Keras's GELU uses ``erfc``)."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{node.name}_one_minus"),
                                  inputs=[one.output[0], node.output[0]])
    return node


def _onnx_bytes(item: _Exportable, opset: int) -> bytes:
    from ._optional import require

    require("onnx", "onnx", "ONNX export")
    tf2onnx = require("tf2onnx", "onnx", "ONNX export")
    import onnx

    function, signature = _serving_function(item)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset,
                                             custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])})
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX conversion gave an invalid model (opset {opset}): {exc}") from None
    proto.doc_string = f"ProteinBERT {item.kind} model, exported by proteinbert {__version__}"
    for key, value in item.metadata.items():
        proto.metadata_props.add(key=f"proteinbert.{key}", value=json.dumps(value, default=str))
    return proto.SerializeToString()


def _onnx_runner(path: Path, destination: Path):
    try:
        import onnxruntime
    except ModuleNotFoundError:
        logger.warning("onnxruntime is not installed: %s passed onnx's checker but was not run "
                       "(pip install 'proteinbert[onnx]' to check its numbers)", destination)
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(tokens, annotations, names):
        return session.run(list(names), {INPUT_NAMES[0]: tokens, INPUT_NAMES[1]: annotations})

    return run


# -- SavedModel ---------------------------------------------------------------------------------------

def _write_savedmodel(item: _Exportable, directory: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(item.model)
    function, signature = _serving_function(item)
    archive.add_endpoint("serve", function, input_signature=signature)
    archive.write_out(str(directory), verbose=False)
    (directory / METADATA_FILE).write_text(json.dumps(item.metadata, indent=1, default=str))


def _savedmodel_runner(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))

    def run(tokens, annotations, names):
        out = loaded.serve(tf.constant(tokens), tf.constant(annotations))
        return [np.asarray(out[name]) for name in names]

    return run


# -- checking and writing -----------------------------------------------------------------------------

def _check_batches(n_annotations: int, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two small batches of different lengths (so a fixed length would show), from a fixed seed."""
    from .tokenizer import ALL_AAS, encode_batch

    rng = np.random.default_rng(0)
    residues = np.array(list(ALL_AAS[:20]))
    batches = []
    for n_seqs, length in ((2, 64), (1, 101)):
        seqs = ["".join(rng.choice(residues, size=int(rng.integers(10, length - 2)))) for _ in range(n_seqs)]
        annotations = np.zeros((n_seqs, n_annotations), np.float32)
        if kind == "backbone":  # a backbone's annotation input is used; a fine-tuned model's stays zero
            annotations = (rng.random((n_seqs, n_annotations)) < 0.1).astype(np.float32)
        batches.append((encode_batch(seqs, length), annotations))
    return batches


def _max_difference(item: _Exportable, run) -> float:
    worst = 0.0
    for tokens, annotations in _check_batches(item.n_annotations, item.kind):
        expected = item.model([tokens, annotations], training=False)
        expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
        got = run(tokens, annotations, item.outputs)
        for name, want, have in zip(item.outputs, expected, got):
            want, have = np.asarray(want), np.asarray(have)
            if want.shape != have.shape:
                raise ExportError(f"the exported output {name!r} has shape {have.shape}, "
                                  f"the Keras model's {want.shape}")
            worst = max(worst, float(np.max(np.abs(want - have))))
    return worst


def export_model(source, destination, format: str | None = None, layers: str | None = None,
                 opset: int = DEFAULT_OPSET, overwrite: bool = False, verify: bool = True,
                 architecture: dict | None = None) -> ExportResult:
    """Export ``source`` to ``destination`` (ONNX file or SavedModel directory), written atomically.

    ``source``: a fine-tuned model directory or :class:`~proteinbert.training.finetuning.FinetunedModel`,
    or a backbone (:class:`~proteinbert.model.ProteinBertBackbone`, or any weights that
    :func:`~proteinbert.weights.load_backbone` opens; ``architecture`` for a ``.weights.h5``).
    ``format``: ``"onnx"`` or ``"savedmodel"`` (default: from the destination, see :func:`format_for`).
    ``layers`` (backbones): ``"last"`` or ``"all"`` exports the hidden representations instead of
    the pretraining outputs. ``verify`` runs the written export on two small batches and raises
    :class:`~proteinbert.errors.ExportError` if it differs from Keras by more than
    :data:`VERIFY_TOLERANCE` (an ONNX file needs ``onnxruntime`` for that; without it only
    onnx's checker runs).
    """
    from .io_utils import atomic_write_path

    fmt = format_for(destination, format)
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise InputError(f"{destination} exists; pass overwrite=True to replace it")
    if fmt == "savedmodel" and destination.exists() and not destination.is_dir():
        raise InputError(f"{destination} exists and is not a directory (a SavedModel is a directory)")
    if fmt == "onnx" and destination.is_dir():
        raise InputError(f"{destination} is a directory; an ONNX export is one file")
    if not isinstance(opset, int) or opset < 13:
        raise InputError(f"opset must be an integer >= 13. Received: opset={opset!r}")
    item = _exportable(source, layers, architecture)
    difference = None
    if fmt == "onnx":
        item.metadata["opset"] = opset
        data = _onnx_bytes(item, opset)
        with atomic_write_path(destination) as tmp:
            Path(tmp).write_bytes(data)
            if verify:  # before the rename: a failed check leaves no file
                runner = _onnx_runner(Path(tmp), destination)
                difference = None if runner is None else _checked_difference(item, runner, destination)
    else:
        old = destination.with_name(f".{destination.name}.old") if destination.exists() else None
        with atomic_write_path(destination, suffix="") as tmp:
            _write_savedmodel(item, Path(tmp))
            if verify:
                difference = _checked_difference(item, _savedmodel_runner(Path(tmp)), destination)
            if old is not None:  # a directory cannot be renamed onto another: set the old one aside
                shutil.rmtree(old, ignore_errors=True)
                destination.rename(old)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return ExportResult(destination, fmt, item.kind, item.outputs, item.metadata, difference)


def _checked_difference(item: _Exportable, run, destination: Path) -> float:
    difference = _max_difference(item, run)
    if difference > VERIFY_TOLERANCE:
        raise ExportError(f"the export to {destination} differs from the Keras model by up to {difference:.3g} "
                          f"(more than {VERIFY_TOLERANCE:g}) on the check batches; nothing was written")
    logger.info("%s: largest difference from the Keras model on the check batches: %.3g", destination, difference)
    return difference
