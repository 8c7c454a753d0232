#!/usr/bin/env python
"""Score a trained G2P model folder on a CMUdict split; prints PER/WER (percent) as JSON.

Usage: python examples/evaluate_g2p.py outputs/g2p-cpu [--split test] [--num_beams 5]
       python examples/evaluate_g2p.py outputs/g2p-cpu-ct2 --engine ctranslate2   # an export of hf_minimal.ctranslate2

The stress setting is read from the tokenizer (a vocabulary with "AH0" keeps stress), so the references match;
--strip_stress scores a stress model with its digits stripped against the stress-less references.
"""

import argparse
import json
import sys
import time

from hf_minimal import g2p
from hf_minimal.ctranslate2 import Engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a folder written by examples/train_g2p.py (or a Hub model id)")
    parser.add_argument("--split", default="test", choices=g2p.SPLITS)
    parser.add_argument("--num_beams", type=int, default=1, help="1 = greedy (default)")
    parser.add_argument("--batch_size", type=int, help="words a batch (default: 256 for torch, 128 for ctranslate2)")
    parser.add_argument("--max_samples", type=int, default=None, help="score a seeded sample of this many words")
    parser.add_argument("--engine", choices=("torch", "ctranslate2"), default="torch")
    parser.add_argument("--workers", type=int, help="ctranslate2: translator replicas (default: one per core)")
    parser.add_argument("--strip_stress", action="store_true",
                        help="score a stress model without its digits, against stress-less references")  # fmt: skip
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
    stress = g2p.keeps_stress(tokenizer)
    splits = [g2p.load_cmudict(keep_stress=stress)[args.split]]
    if stress and args.strip_stress:
        splits.append(g2p.load_cmudict(keep_stress=False)[args.split])  # the same words, stress-less references
    if args.max_samples is not None:
        splits = [split.shuffle(seed=0).select(range(min(args.max_samples, len(split)))) for split in splits]
    start = time.perf_counter()
    scores = g2p.evaluate_split(
        model, tokenizer, splits[0], num_beams=args.num_beams, batch_size=args.batch_size, stressless=splits[-1]
        if len(splits) > 1 else None
    )  # fmt: skip
    if "stress_stripped" in scores:  # report the stripped scores, the ones asked for
        scores = {**scores.pop("stress_stripped"), "words": scores["words"]}
        stress = False
    report = {
        "model": args.model_dir,
        "engine": args.engine,
        "split": args.split,
        "keep_stress": stress,
        "num_beams": args.num_beams,
        **scores,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
