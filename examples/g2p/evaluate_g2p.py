#!/usr/bin/env python
"""Score a trained G2P model folder on a CMUdict split or any lexicon file; prints PER/WER (percent) as JSON.

Usage: python examples/g2p/evaluate_g2p.py outputs/g2p-cpu [--split test] [--num_beams 5]
       python examples/g2p/evaluate_g2p.py outputs/g2p-cpu-ct2 --engine ctranslate2   # a CTranslate2 export
       python examples/g2p/evaluate_g2p.py outputs/g2p-de --lexicon test.tsv           # every word of a lexicon file
       python examples/g2p/evaluate_g2p.py outputs/g2p-de --lexicon de.tsv --split test --worst 50 --errors worst.tsv

Sequitur's scoring: each word against all of its pronunciations (WER: no reference matched; PER: edits to the
closest). With --lexicon (CMUdict or tab-separated format) the words of the file are scored, or with --split the
words of that split of it (the hash split training uses for one file). For CMUdict the stress setting is read from
the tokenizer (a vocabulary with "AH0" keeps stress), so the references match; --strip_stress scores a stress model
with its digits stripped against the stress-less references.
"""

import argparse
import json
import sys
import time

from hf_minimal import g2p
from hf_minimal.g2p.lexicon import read_lexicon
from hf_minimal.g2p.pronounce import lowercases
from hf_minimal.serving.ctranslate2 import Engine


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a folder written by examples/g2p/train_g2p.py (or a Hub model id)")
    parser.add_argument("--split", choices=(*g2p.SPLITS, "all"),
                        help="CMUdict: the split (default test); --lexicon: its split (default all)")  # fmt: skip
    parser.add_argument("--lexicon", metavar="FILE", help="score on this lexicon file instead of CMUdict")
    parser.add_argument("--worst", type=int, default=0, metavar="N", help="also report the N worst words")
    parser.add_argument("--errors", metavar="FILE",
                        help="write every wrong word, worst first: word, edits, output, references")  # fmt: skip
    parser.add_argument("--num_beams", type=int, default=1, help="1 = greedy (default)")
    parser.add_argument("--batch_size", type=int, help="words a batch (default: 256 for torch, 128 for ctranslate2)")
    parser.add_argument("--max_samples", type=int, default=None, help="score a seeded sample of this many words")
    parser.add_argument("--engine", choices=("torch", "ctranslate2"), default="torch")
    parser.add_argument("--workers", type=int, help="ctranslate2: translator replicas (default: one per core)")
    parser.add_argument("--strip_stress", action="store_true",
                        help="score a stress model without its digits, against stress-less references")  # fmt: skip
    return parser


def scoring_splits(args: argparse.Namespace, parser: argparse.ArgumentParser, tokenizer) -> tuple[list, bool | None]:
    """The words to score (and, with --strip_stress, the same words' stress-less references), and whether the
    references have stress (None: a lexicon's, as written)."""
    stress = g2p.keeps_stress(tokenizer)
    if args.lexicon:
        if args.strip_stress:
            parser.error("--strip_stress is for CMUdict; a lexicon's references are used as written")
        splits = [lexicon_split(args.lexicon, args.split or "all", lowercases(tokenizer))]
        stress = None
    else:
        splits = [g2p.load_cmudict(keep_stress=stress)[args.split or "test"]]
        if stress and args.strip_stress:  # the same words, stress-less references
            splits.append(g2p.load_cmudict(keep_stress=False)[args.split or "test"])
    if args.max_samples is not None:
        splits = [g2p.sample_split(split, args.max_samples, seed=0) for split in splits]
    return splits, stress


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.num_beams, args.batch_size or 1, args.workers or 1) < 1:
        parser.error("--num_beams, --batch_size and --workers must be at least 1")
    try:
        if args.engine == "ctranslate2":
            model = Engine(args.model_dir, workers=args.workers)
            tokenizer = model.tokenizer
        else:
            model, tokenizer = g2p.load_model(args.model_dir)
    except (OSError, ValueError) as error:
        print(f"Cannot load a model from {args.model_dir!r}: {error}", file=sys.stderr)
        return 1
    try:
        splits, stress = scoring_splits(args, parser, tokenizer)
    except ValueError as error:  # LexiconError: the file, the line and the fix
        print(error, file=sys.stderr)
        return 1
    start = time.perf_counter()
    scores = g2p.evaluate_split(
        model, tokenizer, splits[0], num_beams=args.num_beams, batch_size=args.batch_size, stressless=splits[-1]
        if len(splits) > 1 else None, worst=len(splits[0]) if args.errors else args.worst
    )  # fmt: skip
    wrong = scores.pop("worst", [])
    if args.errors:
        write_errors(args.errors, wrong)
    if args.worst:
        scores["worst"] = wrong[: args.worst]
    if "stress_stripped" in scores:  # report the stripped scores, the ones asked for
        scores = {**scores.pop("stress_stripped"), "words": scores["words"]}
        stress = False
    report = {
        "model": args.model_dir,
        "engine": args.engine,
        "data": args.lexicon or "cmudict",
        "split": args.split or ("all" if args.lexicon else "test"),
        "keep_stress": stress,
        "num_beams": args.num_beams,
        **scores,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report))
    return 0


def lexicon_split(path: str, split: str, lowercase: bool):
    """The words of a lexicon file (split "all"), or one split of it as training splits one file."""
    if split != "all":
        return g2p.load_lexicon(path, lowercase=lowercase)[split]
    return g2p.lexicon_dataset(read_lexicon(path, lowercase))


def write_errors(path: str, rows: list[dict]) -> None:
    lines = [f"{r['word']}\t{r['distance']}\t{r['output']}\t{' | '.join(r['references'])}\n" for r in rows]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("word\tedits\toutput\treferences\n" + "".join(lines))


if __name__ == "__main__":
    sys.exit(main())
