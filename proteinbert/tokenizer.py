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

from .errors import FormatError, InputError

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


#: What to do with characters that are not letters (digits, ``*``, ``#`` …, see
#: :func:`non_residue_characters`): ``"warn"`` reads them as ``<OTHER>`` and logs one warning with
#: their count; ``"error"`` refuses the first record holding one.
UNKNOWN_RESIDUE_POLICIES = ("warn", "error")
DEFAULT_UNKNOWN_RESIDUES = "warn"


class ResidueCheck:
    """Applies an :data:`UNKNOWN_RESIDUE_POLICIES` policy to the records of ``source``, one by one.

    >>> check = ResidueCheck("in.fa", "error")
    >>> check.check("MKV", "P1", line=1)
    >>> check.check("MK1*", "P2", line=3)
    Traceback (most recent call last):
    proteinbert.errors.FormatError: Error in file in.fa at line 3: record 'P2' holds 2 character(s) that are not amino-acid letters ('1', '*'; the first at residue 3); refused (unknown residues: 'error'; 'warn' reads them as <OTHER>)
    """

    def __init__(self, source, policy: str = DEFAULT_UNKNOWN_RESIDUES):
        if policy not in UNKNOWN_RESIDUE_POLICIES:
            raise InputError(f"unknown_residues must be one of {', '.join(UNKNOWN_RESIDUE_POLICIES)}. "
                             f"Received: {policy!r}")
        self.source = str(source)
        self.policy = policy
        self.found: Counter = Counter()
        self.n_seqs = 0

    @property
    def n_chars(self) -> int:
        return sum(self.found.values())

    def check(self, seq, record_id=None, line: int | None = None) -> None:
        """Count the non-letters of one sequence, or raise :class:`~proteinbert.errors.FormatError`
        naming the file, ``line``, ``record_id`` and the characters (policy ``"error"``)."""
        text = seq.decode("utf-8", "replace") if isinstance(seq, (bytes, bytearray)) else str(seq)
        if text.isascii() and text.encode("ascii").isalpha():  # the usual case: ASCII letters only, fast
            return
        bad = _NON_LETTERS.findall(text)
        if not bad:
            return
        if self.policy == "error":
            chars = ", ".join(repr(c) for c in dict.fromkeys(bad))
            first = _NON_LETTERS.search(text).start() + 1
            raise FormatError(f"record {record_id!r} holds {len(bad)} character(s) that are not amino-acid letters "
                              f"({chars}; the first at residue {first}); refused (unknown residues: 'error'; "
                              "'warn' reads them as <OTHER>)", self.source, line)
        self.n_seqs += 1
        self.found.update(bad)

    def finish(self) -> int:
        """Log the warning of policy ``"warn"`` (if anything was found); returns the count."""
        if self.n_chars:
            examples = ", ".join(repr(c) for c, _ in self.found.most_common(5))
            logger.warning("%s: %d character(s) in %d sequence(s) are not amino-acid letters and are read as <OTHER> "
                           "(e.g. %s)", self.source, self.n_chars, self.n_seqs, examples)
        return self.n_chars


def check_residues(seqs, source: str, policy: str = DEFAULT_UNKNOWN_RESIDUES, ids=None) -> int:
    """:class:`ResidueCheck` over a list: warn with the count, or refuse naming the record (its id
    from ``ids``, else its number); returns the count of non-letters read as ``<OTHER>``.

    >>> check_residues(["MKV", "M1K"], "in.fa")
    1
    """
    check = ResidueCheck(source, policy)
    for i, seq in enumerate(seqs):
        check.check(seq, ids[i] if ids is not None else f"#{i + 1}")
    return check.finish()


def warn_non_residues(seqs, source: str) -> int:
    """Log a warning with the count of :func:`non_residue_characters` in ``seqs``; returns the count."""
    return check_residues(seqs, source, "warn")


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
    :class:`InputError`: crop explicitly first (``s[:seq_len - 2]``) if that is what you want.

    >>> encode_batch(["MK", "M"]).tolist()
    [[23, 10, 8, 24], [23, 10, 24, 25]]
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
