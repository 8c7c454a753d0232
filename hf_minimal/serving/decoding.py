"""The decoding rules every decoder of the package shares (PyTorch's `generate` path and the CTranslate2 engine).

Torch-free, so that the serving engine can import it. Written once here: the two engines give the same outputs only
because they batch, bound and rank the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Beams searched when n-best variants are asked for: as many as the variants, and never fewer than this (generate
# scores sequences only in a beam search; a 1-best score needs one). A beam of the list's own width is the usual
# trade: the same best variant and nearly the same list as a wider beam, for less search (docs/pronounce.md).
NBEST_MIN_BEAMS = 3


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into `lengths` in batches of `batch_size`, shortest first: similar lengths pad little."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1.")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def max_decoding_length(source_tokens: int) -> int:
    """The decoder sequence bound (start token included) for a batch whose longest source has `source_tokens` tokens.

    A pronunciation has at most a few phones more than its word has letters: twice plus 8 never truncates one.
    """
    return 2 * source_tokens + 8


def nbest_beams(nbest: int, num_beams: int | None = None) -> int:
    """The beam width for `nbest` variants: `num_beams` if given (at least `nbest`), else max(nbest, 3)."""
    if nbest < 1:
        raise ValueError(f"nbest={nbest} must be at least 1.")
    if num_beams is not None and num_beams < nbest:
        raise ValueError(f"num_beams={num_beams} cannot return nbest={nbest} variants: pass num_beams >= nbest.")
    return num_beams if num_beams is not None else max(nbest, NBEST_MIN_BEAMS)


def pmass_count(log_probs: Sequence[float], mass: float) -> int:
    """How many of the best-first variants to keep: the fewest whose probabilities, renormalised over all of them,
    add up to at least `mass` (Sequitur's --variants-mass, phonetisaurus-apply's --pmass)."""
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"pmass={mass} must be in (0, 1].")
    if not log_probs:
        return 0
    top = max(log_probs)
    weights = [math.exp(lp - top) for lp in log_probs]  # shifted by the best: no underflow
    total, kept = sum(weights), 0.0
    for count, weight in enumerate(weights, start=1):
        kept += weight
        if kept >= mass * total * (1 - 1e-12):  # the last variant always closes the list despite rounding
            return count
    return len(weights)
