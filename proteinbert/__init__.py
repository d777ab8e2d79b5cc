"""ProteinBERT on Keras 3.

The modern API lives in :mod:`proteinbert.model`, :mod:`proteinbert.weights`,
:mod:`proteinbert.embeddings` and :mod:`proteinbert.training`. The names of the 2021 package are
exported here too, so code written for it keeps working. Exports are resolved lazily, so
``import proteinbert.tokenizer`` does not start TensorFlow.

Importing the package changes nothing in the process: the CPU allocator tuning the commands use
is :func:`proteinbert.hardware.tune_cpu_allocator`, an explicit call. Its only hook is that
proteinbert's Keras classes are registered when Keras is imported, so saved models load with
``keras.saving.load_model``.
"""

__version__ = "0.1.0"

from ._keras_registration import register_keras_objects  # noqa: E402
from ._keras_registration import register_when_keras_is_imported as _register_when_keras_is_imported  # noqa: E402

# A saved model.keras then opens with keras.saving.load_model after `import proteinbert` alone,
# without this import starting TensorFlow (see proteinbert._keras_registration).
_register_when_keras_is_imported()

_EXPORTS = {
    "load_pretrained_model": "legacy.existing_model_loading",
    "load_pretrained_model_from_dump": "legacy.existing_model_loading",
    "PretrainingModelGenerator": "legacy.model_generation",
    "InputEncoder": "legacy.model_generation",
    "FinetuningModelGenerator": "legacy.finetuning",
    "OutputType": "legacy.finetuning",
    "OutputSpec": "legacy.finetuning",
    "finetune": "legacy.finetuning",
    "evaluate_by_len": "legacy.finetuning",
    "ProteinBertBackbone": "model",
    "hidden_representation_model": "model",
    "backbone_from_released": "weights",
}

__all__ = sorted(_EXPORTS) + ["__version__", "register_keras_objects"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'proteinbert' has no attribute {name!r}")
