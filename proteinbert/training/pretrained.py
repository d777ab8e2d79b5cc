"""Opening a pretraining save: the backbone with its weights and the GO id of every slot
(:mod:`proteinbert.go_prediction` predicts GO terms with them).

>>> model, go_ids = load_pretrained("run/epoch_40_sample_51200")  # doctest: +SKIP
"""

from __future__ import annotations

from . import checkpoints


def load_pretrained(save, dtype=None):
    """``(model, go_ids)`` from a pretraining save directory: the backbone with its weights and the
    GO id of every annotation slot.

    >>> model, go_ids = load_pretrained("run/epoch_40_sample_51200")  # doctest: +SKIP
    """
    from ..model import ProteinBertBackbone
    from ..weights import load_released_weights

    weights, state, _ = checkpoints.read_save(save)
    model = ProteinBertBackbone(n_annotations=len(state["annotations"]), dtype=dtype,
                                **checkpoints.saved_architecture(state))
    load_released_weights(model, weights, source=str(save))
    return model, list(state["annotations"])
