"""The fine-tuning model: the backbone's hidden representation, ``Dropout`` and one ``Dense`` head."""

from __future__ import annotations

import logging


from ..errors import InputError
from .output_spec import OutputSpec, require_label_list

logger = logging.getLogger(__name__)


#: Virtual padding is off by default: fixed padding needs none (see the module docstring).
DEFAULT_VIRTUAL_PAD_LENGTH = None


def build_finetuning_model(backbone, spec: OutputSpec, hidden_layers: str = "all", dropout_rate: float = 0.5,
                           seed: int | None = None, virtual_pad_length: int | None = None):
    """The backbone's hidden representation + ``Dropout`` + ``Dense`` head, as one Keras model.

    ``hidden_layers``: ``"all"`` (2021 concatenation), ``"last"`` (final block) or ``"outputs"``
    (the pretraining output probabilities). The representation is a nested model named ``"pretrained"`` (freeze it with
    ``model.get_layer("pretrained").trainable = False``); the head layers are
    ``"head-dropout"`` and ``"head-dense"``. ``virtual_pad_length`` (None: the backbone's own
    setting) rebuilds the backbone with that virtual padding (see
    :func:`~proteinbert.model.with_virtual_padding`); its weights are copied, not shared.

    >>> from proteinbert.model import ProteinBertBackbone
    >>> bb = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
    >>> m = build_finetuning_model(bb, OutputSpec("local", "categorical", ("0", "1", "2")))
    >>> import numpy as np
    >>> m.predict([np.full((2, 9), 25, "int32"), np.zeros((2, 3), "float32")], verbose=0).shape
    (2, 9, 3)
    """
    import keras

    from ..model import hidden_representation_model, with_virtual_padding

    require_label_list(spec)
    if virtual_pad_length is not None:
        backbone = with_virtual_padding(backbone, virtual_pad_length)
    if not 0 <= dropout_rate < 1:
        raise InputError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
    track = 0 if spec.level == "local" else 1
    if hidden_layers == "outputs":
        # The 2021 generator without a manipulation function: the head sits on the pretraining outputs.
        rep_tensor = backbone.outputs[track]
    else:
        rep_tensor = hidden_representation_model(backbone, hidden_layers).outputs[track]
    pretrained = keras.Model(backbone.inputs, rep_tensor, name="pretrained")
    tokens = keras.Input(shape=(None,), dtype="int32", name="input-seq")
    annotations = keras.Input(shape=(backbone.n_annotations,), dtype="float32", name="input-annotations")
    rep = pretrained([tokens, annotations])
    rep = keras.layers.Dropout(dropout_rate, seed=seed, name="head-dropout")(rep)
    out = keras.layers.Dense(spec.n_outputs, activation=spec.activation, name="head-dense", dtype="float32",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(rep)
    return keras.Model([tokens, annotations], out, name="proteinbert_finetuned")


def _metrics(spec: OutputSpec):
    import keras

    if spec.task in ("binary", "multilabel"):
        return [keras.metrics.AUC(name="auc", multi_label=spec.task == "multilabel")]
    if spec.task == "categorical":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def compile_model(model, spec: OutputSpec, learning_rate: float, run_eagerly: bool = False) -> None:
    """Adam at ``learning_rate``, the loss of ``spec`` and its metric (weighted by the sample weights).

    The Adam is :class:`~proteinbert.training.optim.FusedAdam`: Keras's arithmetic in one op per
    variable, which cuts the traced step's size (tracing the first step of the test model took
    7.9 s instead of 11.5 s).
    """
    from .optim import FusedAdam

    model.compile(optimizer=FusedAdam(learning_rate=learning_rate), loss=spec.loss,
                  weighted_metrics=_metrics(spec), jit_compile=False, run_eagerly=run_eagerly)
    # Create the optimizer's slots now: created inside the first traced step, they make TensorFlow
    # trace the step twice (measured: 9.4 s -> 4.1 s for the first step of the small model).
    model.optimizer.build(model.trainable_variables)
