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

#: glibc's M_TOP_PAD (see _pad_malloc_heap_top).
MALLOC_TOP_PAD_BYTES = 16 << 20


def _pad_malloc_heap_top(pad_bytes: int = MALLOC_TOP_PAD_BYTES) -> bool:
    """Have glibc keep ``pad_bytes`` free at the top of each malloc heap; True if it was set.

    Eigen's matrix-product packing buffers bypass TensorFlow's allocator. glibc gives the freed
    top of a heap back to the kernel at once (128 KiB kept), so the next product faults its pages
    in again. Keeping 16 MiB cut a fine-tuning step of the released-size model at 32 x 80 tokens
    from 1.26 to 1.04-1.10 s of CPU and from 30k to about 1k page faults; peak memory grew 1.5 %
    (benchmarks/cpu_allocator.py --random-released-size). Like the allocator setting above, an
    explicit ``MALLOC_TOP_PAD_`` in the environment wins; other C libraries are left alone.
    """
    import sys

    if "MALLOC_TOP_PAD_" in _os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-2, int(pad_bytes)))  # -2: M_TOP_PAD
    except (OSError, AttributeError):
        return False


_pad_malloc_heap_top()

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
