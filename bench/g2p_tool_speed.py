"""The G2P command end to end against the model alone: a word list of words in no dictionary -> a lexicon file.

    python bench/g2p_tool_speed.py                       # 100,000 words, the shipped model, CTranslate2
    python bench/g2p_tool_speed.py --words 20000 --engine torch --json tool_speed.json

Rows (each run --repeats times, interleaved, the best kept), over the same words (made up: the first half of one
CMUdict word and the second half of another, kept when CMUdict lacks the result, seeded):
- the model alone: `Engine.translate` (or `g2p.transcribe` for torch) greedy on the words in memory, after a warm-up;
- `hf-minimal-g2p --word_list FILE --output FILE` as a user runs it: a new process (imports, CMUdict, the model),
  reading the list, looking every word up, decoding, writing the lexicon; wall time of the whole command;
- the same with `--nbest 3 --format tsv_scores` (a beam search of 3, three scored variants a word), and with `--int8`
  (CTranslate2's int8 weights);
- the cold start: `hf-minimal-g2p hello` (a CMUdict word) and `hf-minimal-g2p vaswani` (the model's), new processes.
Each command's CTranslate2 conversion is made once before the timing (it is cached), so the rows time use, not the
first run's conversion.
The command's rate over the model's is the overhead of everything around the model. Numbers: docs/performance.md.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hf_minimal.g2p import transcribe
from hf_minimal.g2p.pronounce import DEFAULT_MODEL, G2P, ctranslate2_model, load_cmudict_lexicon


def made_up_words(count: int, seed: int = 0) -> list[str]:
    """`count` distinct letter strings that CMUdict lacks, spliced from two of its words."""
    known = load_cmudict_lexicon()
    pool = [word for word in known if word.isalpha() and word.isascii() and len(word) >= 4]
    rng, words = random.Random(seed), {}
    while len(words) < count:
        a, b = rng.choice(pool), rng.choice(pool)
        word = a[: len(a) // 2] + b[len(b) // 2 :]
        if word not in known and 4 <= len(word) <= 14:
            words[word] = None
    return list(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--engine", choices=("ctranslate2", "torch"), default="ctranslate2")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each row; the best is kept")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    words = made_up_words(args.words)
    g2p = G2P(args.model, engine=args.engine, cmudict=False)
    model, tokenizer = g2p.decoder
    if args.engine == "ctranslate2":
        ctranslate2_model(g2p.folder, "int8")  # converted once, into the cache
    transcribe(model, tokenizer, words[:2000])  # warm-up
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        word_list = Path(tmp, "words.txt")
        word_list.write_text("".join(f"{word}\n" for word in words))
        variants = [("command (greedy)", []), ("command, --nbest 3 --format tsv_scores", ["--nbest", "3", "--format",
                    "tsv_scores"])]  # fmt: skip
        if args.engine == "ctranslate2":
            variants.append(("command, --int8 (greedy)", ["--int8"]))
        for _ in range(args.repeats):  # the rows interleaved, the best of each kept: the machine's drift hits all
            start = time.perf_counter()
            transcribe(model, tokenizer, words)
            best(rows, "model alone (greedy)", time.perf_counter() - start)
            for name, extra in variants:
                command = [sys.executable, "-m", "hf_minimal.g2p", "--word_list", str(word_list), "--model",
                           args.model, "--engine", args.engine, "--output", str(Path(tmp, "out.dict")),
                           *extra]  # fmt: skip
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                best(rows, name, time.perf_counter() - start)
                lines = Path(tmp, "out.dict").read_text().count("\n")
                assert lines >= len(words), (name, lines)
    base = len(words) / rows["model alone (greedy)"]
    print(f"{len(words):,} made-up words, {args.engine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    starts = {word: cold_start(word, args) for word in ("hello", "vaswani")}
    for word, seconds in starts.items():
        print(f"cold start, `hf-minimal-g2p {word}` ({'CMUdict' if word == 'hello' else 'the model'}): {seconds:.2f} s")
    report = {}
    for name, seconds in rows.items():
        rate = len(words) / seconds
        report[name] = {"seconds": round(seconds, 2), "words_per_second": round(rate), "of_model": rate / base}
        print(f"{name:<42} {seconds:8.2f} s {rate:10,.0f} words/s  {rate / base:6.1%} of the model alone")
    if args.json:
        numbers = {"words": len(words), "engine": args.engine, "rows": report, "cold_start_seconds": starts}
        Path(args.json).write_text(json.dumps(numbers, indent=2))


def best(rows: dict[str, float], name: str, seconds: float) -> None:
    rows[name] = min(seconds, rows.get(name, seconds))


def cold_start(word: str, args, runs: int = 3) -> float:
    """Seconds from a new process to the word's pronunciation on standard output (the best of `runs`): imports,
    CMUdict, and (for a word CMUdict lacks) loading the model, converted already."""
    command = [sys.executable, "-m", "hf_minimal.g2p", word, "--model", args.model, "--engine", args.engine]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
