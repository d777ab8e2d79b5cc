"""Using a pretraining save: the backbone with its weights, and its GO predictions.

>>> model, go_ids = load_pretrained("run/epoch_40_sample_51200")  # doctest: +SKIP
>>> top = predict_go_terms(model, go_ids, ["MKVLAAGIVALLKE"], top_k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

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


def predict_go_terms(model, annotations, seqs, top_k: int = 5, seq_len: int = 512) -> list:
    """Top-``k`` GO ids with probabilities for each sequence (no annotation input).

    ``annotations`` is the GO id list of the model's slots (kept in every save's ``state.json``).
    Sequences are cropped to ``seq_len - 2`` residues and padded to ``seq_len``;
    :mod:`proteinbert.go_prediction` (``proteinbert predict-go``) pads as pretraining did instead.
    """
    from ..go_prediction import select_go_terms
    from ..tokenizer import N_ADDED_TOKENS, encode_batch

    seqs = [s[: seq_len - N_ADDED_TOKENS] for s in seqs]
    tokens = encode_batch(seqs, seq_len)
    _, probs = model([tokens, np.zeros((len(seqs), len(annotations)), np.float32)], training=False)
    return [[(annotations[j], p) for j, p in row] for row in select_go_terms(np.asarray(probs), top_k=top_k)]
