#!/usr/bin/env python
"""Start a model for any sequence-to-sequence task from a JSON-lines file of pairs: a vocabulary built from the
training data (one for source and target, so the paper's three-way weight tie holds), and an untrained
MinimalTransformer of the chosen size saved with it, ready for transformers' run_translation.py or any
Seq2SeqTrainer script.

Usage:
  python examples/pairs/new_model.py --train_file pairs.jsonl --source_key src --target_key tgt \\
      --config configs/models/transformer-small.json --output_dir my-model [--tokenizer bpe --vocab_size 8000]

Each line of the file is {"src": ..., "tgt": ...}, or run_translation.py's {"translation": {"src": ..., "tgt": ...}}.
The folder holds config.json (sized to the vocabulary), model.safetensors, tokenizer.json and the two model files
(remote code), so it loads with AutoModelForSeq2SeqLM / AutoTokenizer and trust_remote_code=True anywhere.
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoConfig

import hf_minimal  # noqa: F401  (registers the Auto classes, so that the saved folder carries its code)
from hf_minimal import pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_file", required=True, help="JSON lines, one pair an object")
    parser.add_argument("--source_key", required=True, help='the source field, e.g. "src" (or a "translation" key)')
    parser.add_argument("--target_key", required=True, help='the target field, e.g. "tgt"')
    parser.add_argument("--config", default="configs/models/transformer-small.json", help="a model config (sizes)")
    parser.add_argument("--output_dir", required=True, help="the folder to write (must not exist)")
    parser.add_argument("--tokenizer", choices=pairs.KINDS, default="char", help="characters (default) or BPE")
    parser.add_argument("--vocab_size", type=int, default=8000, help="BPE only: the vocabulary's size")
    parser.add_argument("--seed", type=int, default=42, help="for the random initial weights")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    if output.exists():
        parser.error(f"--output_dir {output} already exists: choose a new folder")
    if args.vocab_size < len(pairs.SPECIAL_TOKENS) + 1:
        parser.error("--vocab_size must leave room for the special tokens and at least one more")
    try:
        sources, targets = pairs.read_pairs(args.train_file, args.source_key, args.target_key)
        config = AutoConfig.from_pretrained(args.config)
    except (OSError, ValueError) as error:
        print(f"Cannot start a model: {error}", file=sys.stderr)
        return 1
    tokenizer = pairs.build_tokenizer(
        sources + targets, args.tokenizer, args.vocab_size, model_max_length=config.max_position_embeddings
    )
    lengths = {side: max(map(len, tokenizer(texts)["input_ids"])) for side, texts in (("source", sources),
                                                                                      ("target", targets))}  # fmt: skip
    torch.manual_seed(args.seed)
    model = pairs.new_model(config, tokenizer, max_target_tokens=lengths["target"])
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    print(
        f"wrote {output}: {len(sources):,} pairs read, a {args.tokenizer} vocabulary of {len(tokenizer):,} tokens, "
        f"{model.num_parameters():,} parameters (untrained); longest source {lengths['source']} tokens, longest "
        f"target {lengths['target']} (max_position_embeddings {config.max_position_embeddings}).\n"
        f"Train it: python examples/pairs/train_pairs.py --model_name_or_path {output} --train_file {args.train_file} "
        f"--source_key {args.source_key} --target_key {args.target_key} --output_dir {output}-trained"
    )
    if max(lengths.values()) > config.max_position_embeddings:
        print(
            f"note: sequences of up to {max(lengths.values())} tokens exceed max_position_embeddings; the model "
            "computes the extra positions, but run_translation.py refuses --max_source_length above it.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
