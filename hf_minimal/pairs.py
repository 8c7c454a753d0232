"""Any sequence-to-sequence task from a file of pairs: read them, build one vocabulary for both sides, start a model.

The task side for users' own data (transliteration, spelling normalisation, code-to-text, a small translation
corpus), as `g2p.py` is for CMUdict; the two model files know nothing of it.

    sources, targets = read_pairs("train.jsonl", "src", "tgt")            # {"src": ..., "tgt": ...} a line
    tokenizer = build_tokenizer(sources + targets, kind="char")           # or kind="bpe", vocab_size=8000
    model = new_model(AutoConfig.from_pretrained("configs/models/transformer-small.json"), tokenizer)

One vocabulary serves source and target, so the paper's three-way weight tie holds (Section 3.4); its first four
tokens are the config's special ids: <pad> 0, <s> 1 (also the decoder start), </s> 2, <unk> 3. The saved folder
trains with transformers' `run_translation.py` or any `Seq2SeqTrainer` script (examples/pairs/train_pairs.py).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForSeq2SeqLM, PreTrainedConfig, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0-3: the config's pad, bos/decoder start, eos; unknown
KINDS = ("char", "bpe")


def read_pairs(path: str | os.PathLike, source_key: str, target_key: str) -> tuple[list[str], list[str]]:
    """(sources, targets) from a JSON-lines file: one object a line with both keys, either at the top level
    ({"src": ..., "tgt": ...}) or inside "translation", the format of transformers' run_translation.py
    ({"translation": {"en": ..., "de": ...}}). Blank lines are skipped; anything else that is not such a pair raises
    ValueError naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a JSON-lines file of pairs, one object a line).")
    sources, targets = [], []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON ({error.msg}): {line.strip()[:80]!r}") from error
            if isinstance(row, dict) and isinstance(row.get("translation"), dict):
                row = row["translation"]
            if not isinstance(row, dict):
                raise ValueError(f"{where}: a JSON object is expected, got {type(row).__name__}.")
            for key in (source_key, target_key):
                if key not in row:
                    raise ValueError(f"{where}: no key {key!r} (it has {sorted(row)}); pass --source_key/--target_key.")
                if not isinstance(row[key], str):
                    raise ValueError(f"{where}: {key!r} is {type(row[key]).__name__}, not a string.")
            sources.append(row[source_key])
            targets.append(row[target_key])
    if not sources:
        raise ValueError(f"{path}: no pairs (the file is empty or blank).")
    return sources, targets


def build_tokenizer(
    texts: Sequence[str], kind: str = "char", vocab_size: int = 8000, model_max_length: int = 512
) -> PreTrainedTokenizerFast:
    """One vocabulary for every text given (pass sources and targets together).

    "char": a token per character, spaces included, so any script and any spacing round-trips; characters are
    ordered by frequency. "bpe": byte-pair merges learnt from the texts up to `vocab_size` tokens (with every
    character of the texts in the base alphabet), words marked with a leading "▁" as in SentencePiece. Both end
    every sequence with </s>; characters never seen become <unk>.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {KINDS}.")
    texts = list(texts)
    characters = Counter(ch for text in texts for ch in text)
    if kind == "char":
        alphabet = sorted(characters, key=lambda ch: (-characters[ch], ch))
        vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *alphabet])}
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()  # characters back to back, spaces being characters too
    else:
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=sorted({*characters, "▁"}),  # ▁ marks a word's start (Metaspace)
            limit_alphabet=len(characters) + 1,
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
    return seq2seq_tokenizer(tokenizer, model_max_length)


def seq2seq_tokenizer(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """`tokenizer` (whose vocabulary has SPECIAL_TOKENS) ending every sequence with </s>, as the transformers
    tokenizer that AutoTokenizer loads from the saved tokenizer.json, with the special tokens named."""
    pad, bos, eos, unk = SPECIAL_TOKENS
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=pad,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        model_max_length=model_max_length,
    )


def decode_predictions(tokenizer: PreTrainedTokenizerFast, ids) -> list[str]:
    """Texts of a Seq2SeqTrainer's predictions or labels: their -100 padding read as <pad>, special tokens dropped."""
    return tokenizer.batch_decode(np.where(ids < 0, tokenizer.pad_token_id, ids), skip_special_tokens=True)


def new_model(config: PreTrainedConfig, tokenizer: PreTrainedTokenizerFast, max_target_tokens: int | None = None):
    """An untrained model of `config`'s size over `tokenizer`'s vocabulary: vocab_size and the special ids come
    from the tokenizer. `max_target_tokens` (the longest target seen) sets `generation_config.max_length` to twice
    that plus the start token, within max_position_embeddings, so that `generate` does not cut outputs at 20."""
    pad, bos, eos = (tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS[:3])
    config = config.__class__.from_dict(
        {
            **config.to_dict(),
            "vocab_size": len(tokenizer),
            "pad_token_id": pad,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "decoder_start_token_id": bos,
        }
    )
    model = AutoModelForSeq2SeqLM.from_config(config)
    if max_target_tokens:
        model.generation_config.max_length = min(2 * max_target_tokens + 1, config.max_position_embeddings)
    return model


__all__ = [
    "KINDS",
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "decode_predictions",
    "new_model",
    "read_pairs",
    "seq2seq_tokenizer",
]
