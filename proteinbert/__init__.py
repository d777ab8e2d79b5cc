"""ProteinBERT on Keras 3.

The modern API lives in :mod:`proteinbert.model`, :mod:`proteinbert.weights`,
:mod:`proteinbert.embeddings` and :mod:`proteinbert.training`. The names of the 2021 package are
exported here too, so code written for it keeps working. Exports are resolved lazily, so
``import proteinbert.tokenizer`` does not start TensorFlow.
"""

import os as _os

__version__ = "0.1.0"

# TensorFlow's CPU tensors otherwise come straight from glibc malloc. Fed from a tf.data
# generator, a fine-tuning step then maps fresh pages for its large buffers every time (17,000
# page faults a step, half the step in the kernel, steps 1.5-2x slower; see
# benchmarks/cpu_allocator.py). TensorFlow's own pooling allocator reuses them. It is read when
# TensorFlow makes its first tensor, so this only helps if proteinbert is imported before
# TensorFlow runs anything; an explicit setting (TF_CPU_ALLOCATOR_USE_BFC=false) wins.
_os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

_EXPORTS = {
    "load_pretrained_model": "existing_model_loading",
    "load_pretrained_model_from_dump": "existing_model_loading",
    "PretrainingModelGenerator": "model_generation",
    "InputEncoder": "model_generation",
    "FinetuningModelGenerator": "finetuning",
    "OutputType": "finetuning",
    "OutputSpec": "finetuning",
    "finetune": "finetuning",
    "evaluate_by_len": "finetuning",
    "ProteinBertBackbone": "model",
    "hidden_representation_model": "model",
    "backbone_from_released": "weights",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'proteinbert' has no attribute {name!r}")
