"""2021-compatible model generators and input encoder (a thin layer over the modern API).

Code written for ``protein-bert`` 1.0.1 keeps working::

    pretrained_model_generator, input_encoder = load_pretrained_model(...)
    model = get_model_with_hidden_layers_as_outputs(pretrained_model_generator.create_model(seq_len))
    local, global_ = model.predict(input_encoder.encode_X(seqs, seq_len))

New code should use :class:`proteinbert.model.ProteinBertBackbone` and
:func:`proteinbert.weights.backbone_from_released` directly.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from ..errors import InputError, WeightsError
from ..model.backbone import ProteinBertBackbone
from ..tokenizer import VOCAB_SIZE, encode_batch
from ..weights.pkl import ReleasedWeights
from ..weights.released import export_released_weights, load_released_weights

logger = logging.getLogger(__name__)

# 2021 keyword -> ProteinBertBackbone keyword.
_LEGACY_KWARGS = {"d_hidden_seq": "d_seq", "d_hidden_global": "d_global"}


def translate_create_model_kwargs(kwargs: dict | None) -> dict:
    """Map 2021 ``create_model`` keyword arguments onto :class:`ProteinBertBackbone` ones."""
    out = {}
    for key, value in (kwargs or {}).items():
        if key == "seq_len":
            continue  # the model has a dynamic length dimension
        out[_LEGACY_KWARGS.get(key, key)] = value
    return out


def compile_pretraining_model(model: keras.Model, lr: float = 2e-4, annots_loss_weight: float = 1.0,
                              optimizer: keras.optimizers.Optimizer | None = None) -> None:
    """Compile with LAMB (epsilon 1e-6, as TF-Addons) and the two pretraining losses."""
    optimizer = optimizer or keras.optimizers.Lamb(learning_rate=lr, epsilon=1e-6)
    model.compile(
        optimizer=optimizer,
        loss=["sparse_categorical_crossentropy", "binary_crossentropy"],
        loss_weights=[1.0, float(annots_loss_weight)],
    )


class PretrainingModelGenerator:
    """2021 ``PretrainingModelGenerator``: creates ProteinBERT models holding given weights.

    ``create_model(seq_len)`` returns a fresh model holding the generator's weights (so fine-tuning
    one model never changes another); the model accepts every length, ``seq_len`` is ignored.

    As in 2021, ``create_model_function(seq_len, vocab_size, n_annotations, **create_model_kwargs)``
    builds the model when given; it must return a :class:`ProteinBertBackbone` (for instance
    :func:`proteinbert.conv_and_global_attention_model.create_model`), since the released weight
    layout and the fine-tuning heads are defined on it. ``optimizer_weights`` (the third element of a
    released ``.pkl``) are loaded into the optimizer of every compiled model.

    >>> gen = PretrainingModelGenerator(n_annotations=5, create_model_kwargs=dict(d_hidden_seq=8,
    ...     d_hidden_global=16, n_blocks=1, n_heads=2, d_key=4))
    >>> gen.create_model(64, compile=False).count_params() > 0
    True
    """

    def __init__(self, create_model_function=None, n_annotations: int | None = None, create_model_kwargs=None,
                 optimizer_class=None, lr: float = 2e-4, other_optimizer_kwargs=None, model_weights=None,
                 optimizer_weights=None, annots_loss_weight: float = 1.0):
        if n_annotations is None:
            raise InputError("n_annotations is required. Received: n_annotations=None")
        self.create_model_function = create_model_function
        self.n_annotations = int(n_annotations)
        self.create_model_kwargs = dict(create_model_kwargs or {})
        self.architecture = dict(translate_create_model_kwargs(self.create_model_kwargs), n_annotations=self.n_annotations)
        self.optimizer_class = optimizer_class
        self.lr = lr
        self.other_optimizer_kwargs = dict(other_optimizer_kwargs or {})
        self.model_weights = None if model_weights is None else list(model_weights)
        self.optimizer_weights = None if optimizer_weights is None else list(optimizer_weights)
        self.annots_loss_weight = annots_loss_weight

    def backbone(self, init_weights: bool = True, dtype=None, seq_len: int | None = None) -> ProteinBertBackbone:
        """A new :class:`ProteinBertBackbone` holding this generator's weights."""
        if self.create_model_function is None:
            model = ProteinBertBackbone(**self.architecture, dtype=dtype)
        else:
            if dtype is not None:
                raise InputError("dtype cannot be combined with create_model_function (the function builds "
                                 f"the model). Received: dtype={dtype!r}")
            kwargs = dict(self.create_model_kwargs)
            kwargs.pop("seq_len", None)
            vocab_size = kwargs.pop("vocab_size", VOCAB_SIZE)
            model = self.create_model_function(seq_len, vocab_size, self.n_annotations, **kwargs)
            if not isinstance(model, ProteinBertBackbone):
                raise InputError(
                    "create_model_function must return a ProteinBertBackbone (e.g. "
                    "proteinbert.conv_and_global_attention_model.create_model): the released weight layout "
                    f"is defined on it. Received: {type(model).__name__} from {self.create_model_function!r}")
        if init_weights and self.model_weights is not None:
            load_released_weights(model, ReleasedWeights(self.n_annotations, self.model_weights), source="generator weights")
        return model

    def create_model(self, seq_len: int | None = None, compile: bool = True, init_weights: bool = True):
        model = self.backbone(init_weights=init_weights, seq_len=seq_len)
        if compile:
            optimizer = None
            if self.optimizer_class is not None:
                optimizer = self.optimizer_class(learning_rate=self.lr, **self.other_optimizer_kwargs)
            compile_pretraining_model(model, self.lr, self.annots_loss_weight, optimizer)
            if self.optimizer_weights:
                self._load_optimizer_weights(model)
        return model

    def _load_optimizer_weights(self, model: ProteinBertBackbone) -> None:
        from ..training.checkpoints import import_lamb_state

        model.optimizer.build(model.trainable_variables)
        if not import_lamb_state(model, model.optimizer, self.optimizer_weights, "optimizer_weights"):
            raise WeightsError(
                f"optimizer_weights do not fit this model and optimizer: {len(self.optimizer_weights)} arrays, "
                "expected the step count then first and second moments of every weight "
                "(pass load_optimizer_weights=False to start the optimizer afresh)")

    def update_state(self, model: ProteinBertBackbone) -> None:
        """Keep ``model``'s current weights as this generator's weights."""
        self.model_weights = export_released_weights(model).model_weights


class InputEncoder:
    """2021 ``InputEncoder``: sequences -> ``[token ids, annotation vectors]``.

    >>> X_seq, X_annot = InputEncoder(n_annotations=3).encode_X(["MK"], 6)
    >>> X_seq.tolist(), X_annot.shape
    ([[23, 10, 8, 24, 25, 25]], (1, 3))
    """

    def __init__(self, n_annotations: int):
        self.n_annotations = int(n_annotations)

    def encode_X(self, seqs, seq_len: int):
        tokens = encode_batch(list(seqs), seq_len)
        return [tokens, np.zeros((len(tokens), self.n_annotations), dtype=np.float32)]
