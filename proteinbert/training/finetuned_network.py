"""The fine-tuned network as one Keras model: the backbone's hidden representation and a head.

:class:`FinetunedProteinBert` is what :func:`~proteinbert.training.finetune_head.build_finetuning_model`
returns. Its ``get_config`` holds the backbone's configuration, the :class:`OutputSpec`, the head's
settings and the padding the model was trained with, so ``model.save("x.keras")`` and
``keras.saving.load_model("x.keras")`` give back the same model, labels included, without the
files of a fine-tuned model directory (:class:`~proteinbert.training.finetuned_model.FinetunedModel`).

This module imports Keras; the rest of :mod:`proteinbert.training` imports it only when a model is
built, so that the command line can check its inputs before TensorFlow starts.
"""

from __future__ import annotations

import keras

from ..data.batching import check_padding
from ..errors import InputError
from .output_spec import OutputSpec, require_label_list

# No name is taken from proteinbert.model at import: Keras's first import, made half-way through
# proteinbert.model's, runs this module to register its class (proteinbert._keras_registration).

HIDDEN_LAYERS = ("all", "last", "outputs")


def _as_spec(output_spec) -> OutputSpec:
    if isinstance(output_spec, OutputSpec):
        return output_spec
    if isinstance(output_spec, dict):
        return OutputSpec.from_dict(output_spec)
    raise InputError(f"output_spec must be an OutputSpec or its dict. Received: {output_spec!r}")


def _representation(backbone, track: int, hidden_layers: str):
    from ..model import hidden_representation_model

    if hidden_layers == "outputs":
        # The 2021 generator without a manipulation function: the head sits on the pretraining outputs.
        return backbone.outputs[track]
    return hidden_representation_model(backbone, hidden_layers).outputs[track]


@keras.saving.register_keras_serializable(package="proteinbert")
class FinetunedProteinBert(keras.Model):
    """A ProteinBERT backbone (:class:`~proteinbert.model.ProteinBertBackbone`) with a ``Dropout`` +
    ``Dense`` head for one :class:`OutputSpec`.

    Inputs: ``[tokens (batch, L) int32, annotations (batch, n_annotations) float32]`` (zeros: the
    fine-tuning models are trained without annotations). Output: per protein ``(batch, n_outputs)``,
    per residue ``(batch, L, n_outputs)``.

    ``hidden_layers``: ``"all"`` (the 2021 concatenation of every block's states), ``"last"``
    (the final block) or ``"outputs"`` (the pretraining output probabilities). The representation is
    a nested model named ``"pretrained"`` (freeze it with ``model.get_layer("pretrained").trainable =
    False``); the head layers are ``"head-dropout"`` and ``"head-dense"``. These names and the
    weight order are those of models saved by earlier versions. ``padding`` / ``seq_len``: how the
    inputs were padded in training, which predictions should repeat (see
    :mod:`proteinbert.data.batching`); they change no weight.

    >>> import numpy as np
    >>> from proteinbert.model import ProteinBertBackbone
    >>> bb = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
    >>> model = FinetunedProteinBert(bb, OutputSpec("global", "categorical", ("a", "b")), seq_len=128)
    >>> model.predict([np.full((2, 9), 25, "int32"), np.zeros((2, 3), "float32")], verbose=0).shape
    (2, 2)
    >>> again = FinetunedProteinBert.from_config(model.get_config())
    >>> again.output_spec.labels, again.seq_len, again.backbone_architecture["d_global"]
    (('a', 'b'), 128, 16)
    """

    def __init__(self, backbone, output_spec, hidden_layers: str = "all",
                 dropout_rate: float = 0.5, seed: int | None = None, padding: str = "fixed", seq_len: int = 512,
                 **kwargs):
        spec = _as_spec(output_spec)
        require_label_list(spec)
        if hidden_layers not in HIDDEN_LAYERS:
            raise InputError(f"hidden_layers must be one of {HIDDEN_LAYERS}. Received: hidden_layers={hidden_layers!r}")
        if not 0 <= dropout_rate < 1:
            raise InputError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
        check_padding(padding)
        if int(seq_len) < 3:
            raise InputError(f"seq_len must be at least 3 (<START>, a residue, <END>). Received: seq_len={seq_len}")
        track = 0 if spec.level == "local" else 1
        pretrained = keras.Model(backbone.inputs, _representation(backbone, track, hidden_layers), name="pretrained")
        tokens = keras.Input(shape=(None,), dtype="int32", name="input-seq")
        annotations = keras.Input(shape=(backbone.n_annotations,), dtype="float32", name="input-annotations")
        rep = pretrained([tokens, annotations])
        rep = keras.layers.Dropout(dropout_rate, seed=seed, name="head-dropout")(rep)
        out = keras.layers.Dense(spec.n_outputs, activation=spec.activation, name="head-dense", dtype="float32",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(rep)
        kwargs.setdefault("name", "proteinbert_finetuned")
        super().__init__(inputs=[tokens, annotations], outputs=out, **kwargs)
        # The backbone's configuration, not the backbone: tracked, it would add to the model the
        # weights that the representation leaves out (the other track's output layer) and save them.
        object.__setattr__(self, "_backbone", keras.saving.serialize_keras_object(backbone))
        self.output_spec = spec
        self.hidden_layers = hidden_layers
        self.dropout_rate = float(dropout_rate)
        self.seed = seed
        self.padding = padding
        self.seq_len = int(seq_len)

    @property
    def backbone_architecture(self) -> dict:
        """The backbone's flat keyword arguments (``ProteinBertBackbone.architecture``)."""
        config = dict(self._backbone["config"])
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        return config

    @property
    def n_annotations(self) -> int:
        return int(self._backbone["config"]["n_annotations"])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": self._backbone,
            "output_spec": self.output_spec.to_dict(),
            "hidden_layers": self.hidden_layers,
            "dropout_rate": self.dropout_rate,
            "seed": self.seed,
            "padding": self.padding,
            "seq_len": self.seq_len,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        backbone = config.pop("backbone")
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        return cls(backbone, **config)
