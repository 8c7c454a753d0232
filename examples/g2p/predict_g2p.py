#!/usr/bin/env python
"""Pronounce words with a trained G2P model: ARPAbet phones, space-separated, one word a line.

Usage:
  python examples/g2p/predict_g2p.py outputs/g2p-cpu hello transformer huggingface [--num_beams 5]
  python examples/g2p/predict_g2p.py outputs/g2p-cpu --word_list words.txt --output words.dict   # a lexicon
  python -m hf_minimal.serving.ctranslate2 outputs/g2p-cpu outputs/g2p-cpu-ct2                      # export once, then
  cat words.txt | python examples/g2p/predict_g2p.py outputs/g2p-cpu-ct2 --engine ctranslate2 --word_list -

Words given as arguments print aligned for reading; with --word_list (a file, or - for standard input; one word a
line, empty lines skipped) or --output the lines are in CMUdict's format, word, two spaces, phones.
`--engine ctranslate2` needs only ctranslate2 and tokenizers. For a dictionary first, n-best variants with scores
and phonetisaurus-apply's word<TAB>phones, use the installed command: hf-minimal-g2p (hf_minimal/g2p/cli.py).
"""

import argparse
import sys


def read_words(args, parser: argparse.ArgumentParser) -> list[str]:
    """The words of the arguments and of --word_list, lower-cased (a word typed in capitals that is itself a phone
    symbol, "SH", would read as that phone). Empty lines are skipped, and counted on standard error."""
    pieces = list(args.words)
    if args.word_list is not None:
        try:
            handle = sys.stdin if args.word_list == "-" else open(args.word_list, encoding="utf-8")
            with handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            parser.error(f"cannot read the word list {args.word_list!r}: {error}")
        empty = sum(not line.strip() for line in lines)
        if empty:
            print(f"note: skipped {empty} empty line(s) of {args.word_list}", file=sys.stderr)
        pieces += lines
    return [word.lower() for piece in pieces for word in piece.split()]


def load(args):
    """(a function words -> pronunciations, the tokenizer's vocabulary) for the chosen engine."""
    if args.engine == "ctranslate2":
        from hf_minimal.serving.ctranslate2 import Engine  # ctranslate2 and tokenizers only: torch is not imported

        engine = Engine(args.model_dir, workers=args.workers)
        return lambda words: engine.translate(words, num_beams=args.num_beams), engine.tokenizer.get_vocab()
    from hf_minimal import g2p

    model, tokenizer = g2p.load_model(args.model_dir)
    return lambda words: g2p.transcribe(model, tokenizer, words, num_beams=args.num_beams), tokenizer.get_vocab()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "model_dir",
        help="a folder written by train_g2p.py (or a Hub model id); with "
        "--engine ctranslate2, its CTranslate2 export (python -m hf_minimal.serving.ctranslate2)",
    )
    parser.add_argument("words", nargs="*", help="words to pronounce (an argument with spaces counts as several)")
    parser.add_argument("--word_list", metavar="FILE", help="also read words from FILE, one a line ('-': stdin)")
    parser.add_argument("--output", metavar="FILE", help="write the lexicon (CMUdict format) to FILE")
    parser.add_argument("--num_beams", type=int, default=5)
    parser.add_argument("--engine", choices=("torch", "ctranslate2"), default="torch")
    parser.add_argument("--workers", type=int, help="ctranslate2: translator replicas (default: one per core)")
    args = parser.parse_args(argv)
    for flag in ("num_beams", "workers"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    words = read_words(args, parser)
    if not words:
        print("No words given: pass one or more words, e.g. `hello transformer`, or --word_list FILE.", file=sys.stderr)
        return 2
    try:
        pronounce, vocab = load(args)
    except (OSError, ValueError) as error:
        print(f"Cannot load a model from {args.model_dir!r}: {error}", file=sys.stderr)
        return 1
    for word in dict.fromkeys(words):
        odd = sorted({ch for ch in word if ch not in vocab})
        if odd:
            print(f"note: {word!r} has characters outside the model's alphabet ({' '.join(odd)}); they read as <unk>.",
                  file=sys.stderr)  # fmt: skip
    try:
        pronunciations = pronounce(words)
    except ValueError as error:  # e.g. a word longer than a CTranslate2 export's position table
        print(f"Cannot pronounce: {error}", file=sys.stderr)
        return 1
    lexicon = args.word_list is not None or args.output is not None
    width = 0 if lexicon else max(len(word) for word in words)
    lines = [f"{word:<{width}}  {phones}\n" for word, phones in zip(words, pronunciations, strict=True)]
    if args.output is not None:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        print(f"wrote {len(lines)} pronunciations to {args.output}", file=sys.stderr)
    else:
        sys.stdout.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
