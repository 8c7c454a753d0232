#!/usr/bin/env python
"""Pronounce words with a trained G2P model folder: one line per word, ARPAbet phones space-separated.

Usage: python examples/predict_g2p.py outputs/g2p-cpu hello transformer huggingface [--num_beams 5]
"""

import argparse
import sys

from hf_minimal import g2p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a folder written by examples/train_g2p.py (or a Hub model id)")
    parser.add_argument("words", nargs="+", help="words to pronounce (an argument with spaces counts as several)")
    parser.add_argument("--num_beams", type=int, default=5)
    args = parser.parse_args(argv)
    if args.num_beams < 1:
        parser.error("--num_beams must be at least 1")
    # Lower-case here: a word typed in capitals that is itself a phone symbol ("SH") would read as that phone.
    words = [word.lower() for arg in args.words for word in arg.split()]
    if not words:
        print("No words given: pass one or more words, e.g. `hello transformer`.", file=sys.stderr)
        return 2
    for word in words:
        odd = sorted({ch for ch in word if ch not in g2p.GRAPHEMES})
        if odd:
            print(
                f"note: {word!r} has characters outside a-z ' - . ({' '.join(odd)}); they read as <unk>.",
                file=sys.stderr,
            )
    try:
        model, tokenizer = g2p.load_model(args.model_dir)
    except (OSError, ValueError) as error:
        print(f"Cannot load a model from {args.model_dir!r}: {error}", file=sys.stderr)
        return 1
    width = max(len(word) for word in words)
    for word, phones in zip(words, g2p.transcribe(model, tokenizer, words, num_beams=args.num_beams), strict=True):
        print(f"{word:<{width}}  {phones}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
