"""2021-compatible fine-tuning API (``protein-bert`` 1.0.1 names and signatures) over the modern one.

Code written for the 2021 package keeps working::

    output_spec = OutputSpec(OutputType(False, 'binary'), [0, 1])
    model_generator = FinetuningModelGenerator(pretrained_model_generator, output_spec,
        pretraining_model_manipulation_function=get_model_with_hidden_layers_as_outputs, dropout_rate=0.5)
    finetune(model_generator, input_encoder, output_spec, train_seqs, train_labels, valid_seqs, valid_labels)
    results, confusion_matrix = evaluate_by_len(model_generator, input_encoder, output_spec, test_seqs, test_labels)

Batches are padded to ``seq_len`` as in 2021 (``padding="fixed"``, the default; ``"bucket"`` is
faster and less accurate, see :mod:`proteinbert.training.finetuning`). Differences (documented,
deliberate): one model serves every length; records longer than ``seq_len`` are kept (padded to
``2×``, ``4×``… ``seq_len``) instead of dropped; with ``callbacks=[]`` the built-in defaults
(ReduceLROnPlateau, EarlyStopping) are used, while a non-empty list replaces them; ``lr=None``
etc. take the 2021 README values (1e-4, 1e-2, 1e-5).
New code should use :mod:`proteinbert.training.finetuning` and :mod:`proteinbert.training.evaluation`.
"""

from __future__ import annotations

import logging

from ..errors import InputError
from ..training import evaluation as _evaluation
from ..training import finetuning as _ft
from .conv_and_global_attention_model import get_model_with_hidden_layers_as_outputs

logger = logging.getLogger(__name__)

_OUTPUT_TYPES = ("binary", "categorical", "numeric")


class OutputType:
    """2021 ``OutputType(is_seq, output_type)``: per-residue or global × binary/categorical/numeric.

    >>> str(OutputType(True, 'categorical'))
    'sequential categorical'
    """

    def __init__(self, is_seq: bool, output_type: str):
        if output_type not in _OUTPUT_TYPES:
            raise InputError(f"output_type must be one of {_OUTPUT_TYPES}. Received: output_type={output_type!r}")
        self.is_seq = bool(is_seq)
        self.output_type = output_type
        self.is_numeric = output_type == "numeric"
        self.is_binary = output_type == "binary"
        self.is_categorical = output_type == "categorical"

    def __str__(self):
        return f"{'sequential' if self.is_seq else 'global'} {self.output_type}"


class OutputSpec:
    """2021 ``OutputSpec(output_type, unique_labels=None)``.

    >>> OutputSpec(OutputType(False, 'categorical'), ['a', 'b', 'c']).modern().labels
    ('a', 'b', 'c')
    """

    def __init__(self, output_type: OutputType, unique_labels=None):
        if output_type.is_categorical and unique_labels is None:
            raise InputError("a categorical OutputSpec needs unique_labels")
        self.output_type = output_type
        self.unique_labels = None if unique_labels is None else list(unique_labels)
        self.n_unique_labels = None if unique_labels is None else len(self.unique_labels)

    def modern(self) -> _ft.OutputSpec:
        """The equivalent :class:`proteinbert.training.finetuning.OutputSpec`."""
        level = "local" if self.output_type.is_seq else "global"
        labels = tuple(self.unique_labels) if self.output_type.is_categorical else ()
        return _ft.OutputSpec(level, self.output_type.output_type, labels)


def _hidden_layers_for(function) -> str:
    if function is None:
        return "outputs"
    if function is get_model_with_hidden_layers_as_outputs:
        return "all"
    raise InputError(
        "pretraining_model_manipulation_function must be None or get_model_with_hidden_layers_as_outputs. "
        f"Received: {function!r} (use proteinbert.training.finetuning.build_finetuning_model for other heads)"
    )


class FinetuningModelGenerator:
    """2021 ``FinetuningModelGenerator``: a pretrained generator + an output spec → a fine-tuning model.

    Unlike 2021, the generator holds one model instance (dynamic length): ``create_model(seq_len)``
    returns it, with the pretrained layers frozen or not. ``virtual_pad_length`` (not in 2021; None,
    the default: off) gives length-bucketed batches (``finetune(..., padding="bucket")``) the
    attention of batches padded to that length (see :mod:`proteinbert.training.finetuning`).
    """

    def __init__(self, pretraining_model_generator, output_spec: OutputSpec,
                 pretraining_model_manipulation_function=None, dropout_rate: float = 0.5, model_weights=None,
                 optimizer_weights=None, *, virtual_pad_length: int | None = _ft.DEFAULT_VIRTUAL_PAD_LENGTH):
        self.pretraining_model_generator = pretraining_model_generator
        self.output_spec = output_spec
        self.pretraining_model_manipulation_function = pretraining_model_manipulation_function
        self.dropout_rate = dropout_rate
        self.hidden_layers = _hidden_layers_for(pretraining_model_manipulation_function)
        if optimizer_weights is not None:
            # 2021 set them on a model compiled once; here every stage compiles a fresh optimizer
            # (another learning rate, other trainable layers), so there is nothing they could fit.
            raise InputError("FinetuningModelGenerator(optimizer_weights=...) is not supported: each fine-tuning "
                             "stage starts a fresh optimizer. Pass optimizer_weights=None (model_weights are "
                             "kept).")
        self.model_weights = model_weights
        self.optimizer_weights = None
        self.virtual_pad_length = virtual_pad_length
        self._model = None

    @property
    def training_padding(self) -> tuple[str, int]:
        """``(padding, seq_len)`` the model was fine-tuned with (set by :func:`finetune`; before: fixed, 512)."""
        return self.model.padding, self.model.seq_len

    @property
    def model(self):
        if self._model is None:
            backbone = self.pretraining_model_generator.backbone()
            self._model = _ft.build_finetuning_model(backbone, self.output_spec.modern(), self.hidden_layers,
                                                     self.dropout_rate, virtual_pad_length=self.virtual_pad_length)
            if self.model_weights is not None:
                self._model.set_weights(self.model_weights)
        return self._model

    def create_model(self, seq_len=None, freeze_pretrained_layers: bool = False):
        """The fine-tuning model (``seq_len`` is accepted for compatibility; every length works)."""
        model = self.model
        model.get_layer("pretrained").trainable = not freeze_pretrained_layers
        return model

    def finetuned_model(self) -> _ft.FinetunedModel:
        """The model as a modern :class:`FinetunedModel` (``.save(dir)``, ``.predict(seqs)``)."""
        padding, seq_len = self.training_padding
        return _ft.FinetunedModel(self.model, self.output_spec.modern(), {
            "hidden_layers": self.hidden_layers, "config": {"padding": padding, "stages": [{"seq_len": seq_len}]}})


def finetune(model_generator: FinetuningModelGenerator, input_encoder, output_spec: OutputSpec, train_seqs,
             train_labels, valid_seqs, valid_labels, seq_len: int = 512, batch_size: int = 32,
             max_epochs_per_stage: int = 40, lr=None, begin_with_frozen_pretrained_layers: bool = True,
             lr_with_frozen_pretrained_layers=None, n_final_epochs: int = 1, final_seq_len: int = 1024,
             final_lr=None, callbacks=(), *, padding: str = "fixed", seed: int = 0, run_eagerly: bool = False):
    """2021 ``finetune``: the staged schedule, mapped onto :func:`proteinbert.training.finetuning.finetune`.

    Returns the list of per-stage results (2021 returned None); the generator's model is trained in place.
    """
    stages = _ft.default_stages(
        seq_len, batch_size, max_epochs_per_stage, 1e-4 if lr is None else lr, begin_with_frozen_pretrained_layers,
        1e-2 if lr_with_frozen_pretrained_layers is None else lr_with_frozen_pretrained_layers, n_final_epochs,
        final_seq_len, 1e-5 if final_lr is None else final_lr,
    )
    callbacks = list(callbacks or [])
    if callbacks:  # the caller's callbacks replace the built-in ones, as in 2021
        stages = tuple(_ft.Stage(s.name, s.learning_rate, s.max_epochs, s.train_pretrained, s.seq_len,
                                 s.batch_size, callbacks=False) for s in stages)
    config = _ft.FinetuneConfig(stages=stages, padding=padding, seed=seed, run_eagerly=run_eagerly)
    spec = output_spec.modern()
    model = model_generator.model
    A = int(model.inputs[1].shape[-1])
    train = _ft.EncodedSet.build(spec, list(train_seqs), list(train_labels), A, what="training set")
    valid = None
    if valid_seqs is not None:
        valid = _ft.EncodedSet.build(spec, list(valid_seqs), list(valid_labels), A, what="validation set")
    results = _ft.finetune(model, spec, train, valid, config, callbacks=callbacks)
    model.padding, model.seq_len = padding, int(seq_len)  # evaluation and saved models pad the same way
    return results


def evaluate_by_len(model_generator: FinetuningModelGenerator, input_encoder, output_spec: OutputSpec, seqs, raw_Y,
                    start_seq_len: int = 512, start_batch_size: int = 32, increase_factor: int = 2, *,
                    padding: str | None = None):
    """2021 ``evaluate_by_len`` → ``(results, confusion_matrix)``.

    ``results`` is indexed by ``Model seq len`` (bucket lengths, then ``All``) with ``# records``
    and the metric; ``confusion_matrix`` is a DataFrame (None for numeric outputs).
    ``padding="model_len"`` pads every record to its bucket's model length exactly as in 2021, and
    ``"bucket"`` to its length bucket; the default follows ``finetune``'s padding (fixed: model_len).
    """
    evaluation = _evaluation.evaluate_by_len(
        model_generator.finetuned_model(), list(seqs), list(raw_Y), start_seq_len, start_batch_size,
        increase_factor, padding=padding,
    )
    return evaluation.results.set_index("Model seq len"), evaluation.confusion_matrix


__all__ = ["OutputType", "OutputSpec", "FinetuningModelGenerator", "finetune", "evaluate_by_len",
           "get_model_with_hidden_layers_as_outputs"]
