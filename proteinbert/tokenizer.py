"""Token ids (a compatibility contract with the released weights, pinned in tests).

Residues ``ACDEFGHIKLMNPQRSTUVWXY`` are ids 0..21, then ``<OTHER>`` 22, ``<START>`` 23,
``<END>`` 24, ``<PAD>`` 25. Input is upper-cased first (the 2021 code mapped lower case to
``<OTHER>``); any letter outside the alphabet becomes ``<OTHER>``.

>>> encode("mkV")
array([23, 10,  8, 18, 24], dtype=int32)
>>> encode_batch(["MK", "A"], seq_len=5).tolist()
[[23, 10, 8, 24, 25], [23, 0, 24, 25, 25]]
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from .errors import InputError

logger = logging.getLogger(__name__)
_NON_LETTERS = re.compile(r"[^A-Za-z]")

ALL_AAS = "ACDEFGHIKLMNPQRSTUVWXY"
ADDITIONAL_TOKENS = ("<OTHER>", "<START>", "<END>", "<PAD>")
TOKENS = tuple(ALL_AAS) + ADDITIONAL_TOKENS
VOCAB_SIZE = len(TOKENS)  # 26
OTHER_ID, START_ID, END_ID, PAD_ID = 22, 23, 24, 25
N_ADDED_TOKENS = 2  # <START> and <END>

TOKEN_TO_ID = {token: i for i, token in enumerate(TOKENS)}

# Byte -> id lookup table: upper-case first, unknown letters -> <OTHER>.
_LUT = np.full(256, OTHER_ID, dtype=np.int32)
for _i, _aa in enumerate(ALL_AAS):
    _LUT[ord(_aa)] = _i
    _LUT[ord(_aa.lower())] = _i


def _as_bytes(seq, index: int | None = None) -> bytes:
    where = "seq" if index is None else f"seqs[{index}]"
    if isinstance(seq, str):
        try:
            return seq.encode("ascii")
        except UnicodeEncodeError:
            # Non-ASCII characters are not residues: each becomes <OTHER>.
            return "".join(c if ord(c) < 128 else "?" for c in seq).encode("ascii")
    if isinstance(seq, (bytes, bytearray)):
        try:
            return _as_bytes(bytes(seq).decode("utf-8"), index)
        except UnicodeDecodeError as exc:
            raise InputError(f"{where} is not valid UTF-8. Received: {bytes(seq)[:40]!r}") from exc
    raise TypeError(f"{where} must be str or bytes. Received: {type(seq).__name__} {seq!r:.60}")


def non_residue_characters(seqs) -> tuple[int, int, Counter]:
    """``(characters, sequences, Counter of the characters)`` that are not letters (digits, ``*``,
    ``#``, spaces …): they are read as ``<OTHER>`` like unknown letters, but usually mean a damaged
    or mis-parsed file. Ambiguity letters (``B``, ``Z``, ``J``, ``O``) are not counted.

    >>> non_residue_characters(["MKV", "M1K*", "AC#"])
    (3, 2, Counter({'1': 1, '*': 1, '#': 1}))
    """
    found: Counter = Counter()
    n_seqs = 0
    for seq in seqs:
        text = seq.decode("utf-8", "replace") if isinstance(seq, (bytes, bytearray)) else str(seq)
        bad = _NON_LETTERS.findall(text)
        if bad:
            n_seqs += 1
            found.update(bad)
    return sum(found.values()), n_seqs, found


def warn_non_residues(seqs, source: str) -> int:
    """Log a warning with the count of :func:`non_residue_characters` in ``seqs``; returns the count."""
    n_chars, n_seqs, found = non_residue_characters(seqs)
    if n_chars:
        examples = ", ".join(repr(c) for c, _ in found.most_common(5))
        logger.warning("%s: %d character(s) in %d sequence(s) are not amino-acid letters and are read as <OTHER> "
                       "(e.g. %s)", source, n_chars, n_seqs, examples)
    return n_chars


def encode_residues(seq) -> np.ndarray:
    """Residue ids only (no ``<START>``/``<END>``), int32."""
    raw = _as_bytes(seq)
    return _LUT[np.frombuffer(raw, dtype=np.uint8)]


def encode(seq) -> np.ndarray:
    """``<START> residues <END>`` as int32 ids."""
    return np.concatenate(([START_ID], encode_residues(seq), [END_ID])).astype(np.int32)


def encode_batch(seqs: Sequence, seq_len: int | None = None) -> np.ndarray:
    """Encode several sequences into one ``(n, seq_len)`` int32 array padded with ``<PAD>``.

    ``seq_len`` defaults to the longest sequence + 2. A sequence that does not fit raises
    :class:`InputError` (crop explicitly with :func:`crop` if that is what you want).
    """
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs must be a sequence of sequences, not a single str/bytes")
    raws = [_as_bytes(s, i) for i, s in enumerate(seqs)]
    for i, raw in enumerate(raws):
        if len(raw) == 0:
            raise InputError(f"seqs[{i}] is empty")
    longest = max((len(r) for r in raws), default=0)
    if seq_len is None:
        seq_len = longest + N_ADDED_TOKENS
    if seq_len < N_ADDED_TOKENS + 1:
        raise InputError(f"seq_len must be at least 3. Received: seq_len={seq_len}")
    out = np.full((len(raws), seq_len), PAD_ID, dtype=np.int32)
    for i, raw in enumerate(raws):
        n = len(raw)
        if n + N_ADDED_TOKENS > seq_len:
            raise InputError(
                f"seqs[{i}] has {n} residues, more than seq_len - 2 = {seq_len - 2}. "
                f"Received: seq_len={seq_len}"
            )
        out[i, 0] = START_ID
        out[i, 1 : n + 1] = _LUT[np.frombuffer(raw, dtype=np.uint8)]
        out[i, n + 1] = END_ID
    return out


def decode(ids: Iterable[int], strip: bool = True) -> str:
    """Ids back to a string; special tokens are dropped when ``strip`` (``<OTHER>`` -> ``?``)."""
    chars = []
    for i in ids:
        i = int(i)
        if i < len(ALL_AAS):
            chars.append(ALL_AAS[i])
        elif i == OTHER_ID:
            chars.append("?")
        elif not strip:
            chars.append(TOKENS[i])
    return "".join(chars)
