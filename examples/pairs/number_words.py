#!/usr/bin/env python
"""Write the number-to-words task as JSON-lines pairs: {"number": "40302", "words": "forty thousand, three hundred
and two"}, from the num2words package (no download), split by number into train, validation and test.

Usage: python examples/pairs/number_words.py --output_dir data/number-words [--train 60000] [--max_number 999999]

Why this task: the reference is exact, so exact match means what it says; the same digit reads "four", "forty",
"fourteen" or "four hundred" by its place and its neighbours, which the model can only learn by attending across the
whole input through the positional encodings (Section 3.5); the words are 4-6 times longer than the digits, so the
decoder has to keep count of what it has said; and the test numbers were never seen in training, so a high score
is generalisation, not memory. The language is num2words' English (`--lang` for another).
"""

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path


def split_of(number: int) -> str:
    """train / validation / test (about 96 / 2 / 2), a function of the number alone, like g2p.split_of."""
    bucket = int.from_bytes(hashlib.sha256(str(number).encode()).digest()[:8], "big") % 100
    return "train" if bucket < 96 else "validation" if bucket < 98 else "test"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_number", type=int, default=999_999, help="numbers 0..max_number")
    parser.add_argument("--train", type=int, default=60_000, help="training pairs (drawn from the train numbers)")
    parser.add_argument("--evaluate", type=int, default=2_000, help="validation and test pairs, each")
    parser.add_argument("--lang", default="en", help="num2words' language code")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        from num2words import num2words
    except ImportError:
        parser.error("needs num2words: pip install num2words (or the project's `examples` extra)")
    rng = random.Random(args.seed)
    wanted = {"train": args.train, "validation": args.evaluate, "test": args.evaluate}
    chosen = {split: [] for split in wanted}
    for number in rng.sample(range(args.max_number + 1), args.max_number + 1):
        split = split_of(number)
        if len(chosen[split]) < wanted[split]:
            chosen[split].append(number)
        if all(len(chosen[s]) == wanted[s] for s in wanted):
            break
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for split, numbers in chosen.items():
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as out:
            for number in numbers:
                out.write(json.dumps({"number": str(number), "words": num2words(number, lang=args.lang)}) + "\n")
        print(f"{folder / split}.jsonl: {len(numbers):,} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
