"""Decoding a trained G2P model: load it through the Auto classes, transcribe words (greedy, beam, n-best with
scores) with PyTorch or the CTranslate2 engine, and score a split."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..serving.ctranslate2 import Engine  # imports nothing heavy until an engine is created
from ..serving.decoding import length_sorted_batches, max_decoding_length, nbest_beams
from .metrics import per_wer, per_wer_stress_stripped, worst_words


def load_model(model_dir: str, device: str | None = None, **overrides) -> tuple:
    """(model, tokenizer) through the Auto classes from a folder written by examples/g2p/train_g2p.py, or a Hub id;
    on `device` (default: CUDA when available), in eval mode. `overrides` are config fields (e.g. dropout=0.1)."""
    looks_like_a_path = model_dir.startswith(("/", ".", "~")) or model_dir.count("/") > 1  # a Hub id is "user/name"
    folder = Path(model_dir).expanduser()
    if looks_like_a_path and not folder.exists():
        raise FileNotFoundError(
            f"No model folder at {model_dir}: train one with examples/g2p/train_g2p.py (--output_dir)."
        )
    # Without these, transformers' errors name neither file (or the tokenizer loads without its special tokens).
    for name in ("tokenizer.json", "tokenizer_config.json") if folder.is_dir() else ():
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing: copy the whole folder examples/g2p/train_g2p.py wrote."
            )
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
            " train one with `make train` (examples/g2p/train_g2p.py --output_dir), or pronounce words with the model "
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
    CTranslate2 `hf_minimal.serving.ctranslate2.Engine`, which gives the same tokens (it holds its own tokenizer: this
    one is not used, and may be None).
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
    worst: int = 0,
):
    """PER/WER (percent) of `model` on a split of `load_cmudict()` or `load_lexicon()`, plus the numbers of words and
    of reference pronunciations scored against. With `stressless` (the same words' stress-less split, for a model
    with stress) also `stress_stripped`: PER/WER of its outputs with the digits stripped against those references,
    the comparison with stress-less systems. With `worst`, also the `worst` words furthest from every reference
    (metrics.worst_words)."""
    words, references = dataset["word"], dataset["pronunciations"]
    hypotheses = transcribe(model, tokenizer, words, num_beams=num_beams, batch_size=batch_size)
    scores = {
        **per_wer(hypotheses, references),
        "words": len(hypotheses),
        "pronunciations": sum(map(len, references)),
    }
    if worst:
        scores["worst"] = worst_words(words, hypotheses, references, worst)
    if stressless is not None:
        if list(stressless["word"]) != list(dataset["word"]):
            raise ValueError("evaluate_split: `stressless` must hold the same words, in the same order, as `dataset`.")
        scores["stress_stripped"] = per_wer_stress_stripped(hypotheses, stressless["pronunciations"])
    return scores


__all__ = [
    "decode_in_batches",
    "evaluate_split",
    "greedy_decode",
    "load_model",
    "map_on_cpu_threads",
    "transcribe",
    "transcribe_nbest",
]
