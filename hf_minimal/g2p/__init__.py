"""Grapheme-to-phoneme on CMUdict (or a lexicon file): the task side of the project, which knows nothing of the
model's internals (only the Auto classes and the CTranslate2 engine).

    data.py        CMUdict or a lexicon file as `datasets` splits, the G2P tokenizer (torch, transformers, datasets)
    metrics.py     Sequitur's PER/WER                                               (pure Python)
    inference.py   load a model, transcribe (greedy, beam, n-best), score a split    (torch, transformers)
    lexicon.py     read and write pronunciation dictionaries                        (pure Python)
    pronounce.py   the G2P tool: dictionary first, the model for the rest (CTranslate2 without torch, or PyTorch)
    text.py        text into words, and numbers read as words                       (pure Python)
    cli.py         the `hf-minimal-g2p` command (python -m hf_minimal.g2p)
    models/        the trained models shipped in the package (Hub-style folders with their cards)

`from hf_minimal import g2p; g2p.load_cmudict()` reaches every public name of the first three; each module loads on
first use, so the command starts without torch or transformers when CTranslate2 serves it.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "data": (
        "GRAPHEMES", "SPECIAL_TOKENS", "SPLITS", "build_tokenizer", "grow_vocabulary", "keeps_stress",
        "lexicon_dataset", "lexicon_splits", "lexicon_symbols", "lexicon_tokenizer", "load_cmudict", "load_lexicon",
        "phone_inventory", "sample_split", "split_of", "tokenize_split", "tokenizer_for_splits",
        "tokenizer_for_vocabulary",
    ),
    "lexicon": ("strip_stress",),
    "metrics": ("closest_reference", "edit_distance", "per_wer", "per_wer_stress_stripped", "worst_words"),
    "inference": (
        "decode_in_batches", "evaluate_split", "greedy_decode", "load_model", "map_on_cpu_threads", "transcribe",
        "transcribe_nbest",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
