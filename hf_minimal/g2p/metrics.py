"""Sequitur's G2P scores: phone error rate and word error rate against every reference pronunciation."""

from __future__ import annotations

from collections.abc import Sequence

from .lexicon import strip_stress


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance (unit-cost substitution, insertion, deletion) between two phone sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def per_wer(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Sequitur's scores, in percent, for space-separated phone strings.

    WER: the share of words whose hypothesis equals none of its references. PER: the edit distance to the
    closest reference (fewest edits; the first listed among ties) summed over words, divided by the summed
    length of those references (pooled, not a mean of per-word rates).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"per_wer: {len(hypotheses)} hypotheses but {len(references)} reference lists; pass one each.")
    if not hypotheses:
        raise ValueError("per_wer: no words to score; pass at least one hypothesis.")
    errors = length = wrong_words = 0
    for hypothesis, alternates in zip(hypotheses, references, strict=True):
        distance, closest = closest_reference(hypothesis, alternates)
        errors += distance
        length += len(closest.split())
        wrong_words += distance > 0
    return {"per": 100.0 * errors / max(length, 1), "wer": 100.0 * wrong_words / len(hypotheses)}


def closest_reference(hypothesis: str, references: Sequence[str]) -> tuple[int, str]:
    """(edit distance, reference) of the reference closest to `hypothesis` (the first listed among ties)."""
    if isinstance(references, str) or not references:
        raise ValueError(f"per_wer: references must be non-empty lists of strings, got {references!r}.")
    hyp = hypothesis.split()
    distance, index = min((edit_distance(hyp, ref.split()), i) for i, ref in enumerate(references))
    return distance, references[index]


def worst_words(
    words: Sequence[str], hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int
) -> list[dict]:
    """The `n` words whose hypothesis is furthest (edit distance) from its closest reference, worst first (ties by
    word), as {"word", "distance", "output", "references"}; words without an error are never listed."""
    rows = []
    for word, hypothesis, alternates in zip(words, hypotheses, references, strict=True):
        distance, _ = closest_reference(hypothesis, alternates)
        if distance:
            rows.append({"word": word, "distance": distance, "output": hypothesis, "references": list(alternates)})
    return sorted(rows, key=lambda row: (-row["distance"], row["word"]))[:n]


def per_wer_stress_stripped(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """`per_wer` of a stress model's outputs with the digits stripped against stress-less `references`: how it
    compares with systems that predict no stress."""
    return per_wer([" ".join(strip_stress(h.split())) for h in hypotheses], references)


__all__ = ["closest_reference", "edit_distance", "per_wer", "per_wer_stress_stripped", "worst_words"]
