"""Which records form the test set: listed ids and/or a seeded random draw.

One rule, used by ``build_dataset`` while it writes and by ``set_test_set`` on an existing file,
so the same seed and probability give the same mask either way.

>>> found = set()
>>> flags = flag_test_records(3, ["A_HUMAN", "B_HUMAN", "C_HUMAN"], ["P1", "P2", "P3"], frozenset({"P2"}),
...                           rng_for_test_set(0), 0.0, found)
>>> flags.tolist(), found
([False, True, False], {'P2'})
"""

from __future__ import annotations

import logging

import numpy as np

from .fasta import open_text

logger = logging.getLogger(__name__)


def rng_for_test_set(seed: int) -> np.random.Generator:
    """The random stream that draws test-set membership (one uniform draw per record, in file order).

    ``build_dataset`` and ``set_test_set`` both use it, so the same seed and probability give
    the same mask whether the test set is chosen while building or afterwards.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2]))


def read_test_ids(path) -> frozenset:
    """UniProt ids (entry names or accessions), one per line; '#' comments and blank lines ignored."""
    ids = set()
    with open_text(path) as f:
        for line in f:
            token = line.split("#", 1)[0].strip()
            if token:
                ids.add(token.split()[0].lstrip(">"))
    if not ids:
        logger.warning("%s lists no ids", path)
    return frozenset(ids)


def flag_test_records(m: int, names, accs, test_ids, rng: np.random.Generator, probability: float,
                      found: set) -> np.ndarray:
    """Test-set flags of ``m`` records: listed by entry name or accession, and/or drawn with
    ``probability`` (the same draw at build time and in ``set_test_set``). Matched ids go into ``found``."""
    mask = np.zeros(m, dtype=bool)
    if test_ids:
        for i, (name, acc) in enumerate(zip(names, accs)):
            if name in test_ids or acc in test_ids:
                mask[i] = True
                found.update(x for x in (name, acc) if x in test_ids)
    if probability > 0:
        mask |= rng.random(m) < probability
    return mask
