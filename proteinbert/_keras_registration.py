"""Make proteinbert's Keras classes known to Keras as soon as both are imported.

A saved ``model.keras`` names its layers and optimizer as ``proteinbert>GlobalAttention``,
``proteinbert>FusedAdam`` …; ``keras.saving.load_model`` finds them only if the modules that
define them have run. Importing those costs Keras's and TensorFlow's start-up (seconds), which
``import proteinbert.tokenizer`` or ``proteinbert --help`` should not pay. So ``import proteinbert``
registers the classes at once if Keras is already imported (about 30 ms), and otherwise right
after Keras's own import (see :mod:`proteinbert._import_hooks`).
"""

from __future__ import annotations

import importlib
import logging
import sys

from ._import_hooks import around_first_import

logger = logging.getLogger(__name__)

#: The modules whose classes a saved proteinbert model refers to.
KERAS_MODULES = ("proteinbert.model", "proteinbert.training.finetuned_network", "proteinbert.training.optim")


def register_keras_objects() -> None:
    """Import the modules that register proteinbert's Keras classes (imports Keras and TensorFlow)."""
    for name in KERAS_MODULES:
        importlib.import_module(name)


def _register_quietly() -> None:
    try:
        register_keras_objects()
    except Exception:  # a failure here must not break the user's own `import keras`
        logger.warning("could not register proteinbert's Keras classes; call proteinbert.register_keras_objects() "
                       "before loading a saved proteinbert model", exc_info=True)


def _then_register(run_keras) -> None:
    run_keras()
    _register_quietly()


def register_when_keras_is_imported() -> None:
    """Register now if Keras is imported, else as soon as it is."""
    keras = sys.modules.get("keras")
    if keras is None:
        around_first_import("keras", _then_register)
    elif hasattr(keras, "saving"):  # not while Keras itself is half-way through its import
        _register_quietly()
