"""hf-minimal-g2p: pronounce words, word lists and text from the command line (also `python -m hf_minimal.g2p`).

  hf-minimal-g2p hello world                               # word<TAB>phones, CMUdict first, then the model
  hf-minimal-g2p --word_list words.txt --output words.dict  # a lexicon of every word in the file
  cat book.txt | hf-minimal-g2p --sentences                 # one line of phones a line of text
  hf-minimal-g2p vaswani --nbest 3 --format tsv_scores      # variants with their scores (-log p)
  hf-minimal-g2p --lexicon my.dict --no_stress tokenizer    # your entries first; stress digits stripped

Input: words as arguments, or lines from --word_list FILE (or standard input when no word is given). Each line is
split into words (letters of any script, with ' and - inside), numbers (read as words by num2words: 42, 3.5, 21st)
and punctuation (dropped, or kept in --sentences output); text is NFKC-normalised and lower-cased. Lines that
cannot be pronounced (characters outside the model's alphabet, a word over 50 characters) are reported on standard
error with their line number, and the rest is still written; empty lines are counted.

Output formats: tsv (word<TAB>phones, as phonetisaurus-apply), tsv_scores (word<TAB>-log p<TAB>phones, as
phonetisaurus-apply --verbose; dictionary entries score 0.00), cmudict (word  phones, variants as word(2)); each
is what --lexicon reads. --show_source adds where each came from (lexicon, cmudict, model).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from .lexicon import FORMATS, LexiconError, format_entries
from .pronounce import DEFAULT_MODEL, G2P, MODELS
from .text import number_words, split_text

MAX_REPORTED = 20  # problem lines printed one by one; the rest are counted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-minimal-g2p", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("words", nargs="*", help="words or text to pronounce")
    parser.add_argument("--word_list", metavar="FILE", help="read lines of words or text from FILE ('-': stdin)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--format", choices=FORMATS, default="tsv", help="output format (default: tsv)")
    parser.add_argument("--show_source", action="store_true", help="say where each pronunciation came from")
    parser.add_argument("--sentences", action="store_true",
                        help="one output line per input line: the words' phones with ' | ' between words")  # fmt: skip
    parser.add_argument("--drop_punctuation", action="store_true", help="--sentences: leave punctuation out")
    parser.add_argument("--number_language", default="en", metavar="LANG",
                        help="the language numbers are read in (num2words' code: en, de, fr, ...)")  # fmt: skip
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a shipped model ({', '.join(MODELS)}), a model folder or a Hub id (default: "
                        f"{DEFAULT_MODEL})")  # fmt: skip
    parser.add_argument("--engine", choices=("auto", "torch", "ctranslate2"), default="auto",
                        help="auto: CTranslate2 when installed (the serve extra), else PyTorch")  # fmt: skip
    parser.add_argument("--int8", action="store_true",
                        help="CTranslate2 with int8 weights: faster; changes a few outputs (how many depends on the "
                        "CPU: docs/pronounce.md)")  # fmt: skip
    parser.add_argument("--lexicon", action="append", default=[], metavar="FILE",
                        help="your pronunciations (CMUdict or tab-separated), looked up first; repeatable")  # fmt: skip
    parser.add_argument("--no_cmudict", action="store_true", help="do not look words up in CMUdict")
    parser.add_argument("--no_dictionary", action="store_true",
                        help="the model alone: no CMUdict and no --lexicon lookup (to score the model)")  # fmt: skip
    parser.add_argument("--nbest", type=int, help="variants a word (default 1; 10 at most with --pmass)")
    parser.add_argument("--pmass", type=float, help="the fewest variants whose probability reaches P (0 < P <= 1)")
    parser.add_argument("--no_stress", action="store_true", help="strip stress digits (AH0 -> AH)")
    parser.add_argument("--batch_size", type=int, help="words a batch for the model")
    parser.add_argument("--workers", type=int, help="CTranslate2 replicas (default: one per core)")
    return parser


def read_lines(args, parser: argparse.ArgumentParser) -> list[str]:
    """The input lines: the arguments (one line with --sentences), then --word_list's lines; standard input when
    neither is given and something is piped in."""
    lines = ([" ".join(args.words)] if args.sentences else list(args.words)) if args.words else []
    source = args.word_list or (None if args.words or sys.stdin.isatty() else "-")
    if source is None and not lines:
        parser.error("no words given: pass words, --word_list FILE, or pipe lines to standard input")
    try:
        if source == "-":
            lines += sys.stdin.read().splitlines()
        elif source is not None:
            with open(source, encoding="utf-8") as handle:
                lines += handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        parser.error(f"cannot read the word list {source!r}: {error}")
    return lines


def spoken_words(lines: list[str], g2p: G2P, report) -> list[list[tuple[str, list[str]]]]:
    """For each line, its tokens as (token, [words to pronounce]) ([] for punctuation); tokens that cannot be
    pronounced are reported with their line number and left out."""
    parsed = []
    for number, line in enumerate(lines, start=1):
        tokens = []
        for kind, token in split_text(line, g2p.lowercase):
            if kind == "punct":
                tokens.append((token, []))
                continue
            if kind == "word":
                words, why = [token], g2p.problem(token)
            else:
                try:
                    words = number_words(token, g2p.number_language)
                except ValueError as error:
                    report(number, token, str(error))
                    continue
                why = next((why for word in words if (why := g2p.problem(word))), None)
            if why:
                report(number, token, why)
            else:
                tokens.append((token, words))
        parsed.append(tokens)
    return parsed


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse contradicting or out-of-range flags before any work (parser.error exits with the usage)."""
    for flag in ("nbest", "batch_size", "workers"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    if args.pmass is not None and not 0.0 < args.pmass <= 1.0:
        parser.error("--pmass must be in (0, 1]")
    if args.show_source and args.format == "tsv":
        parser.error("--show_source needs --format tsv_scores or cmudict (plain tsv has no column for it)")
    if args.number_language != "en":  # checked here, not at the first number of a long word list
        from num2words import CONVERTER_CLASSES

        if args.number_language not in CONVERTER_CLASSES:
            parser.error(f"--number_language {args.number_language}: num2words reads {', '.join(CONVERTER_CLASSES)}")


def load_g2p(args: argparse.Namespace) -> G2P | None:
    """The tool as the flags ask for it, or None after printing why it cannot load."""
    try:
        return G2P(
            args.model,
            engine=args.engine,
            cmudict=False if args.no_cmudict or args.no_dictionary else None,
            lexicons=[] if args.no_dictionary else args.lexicon,
            stress=False if args.no_stress else None,
            workers=args.workers,
            batch_size=args.batch_size,
            quantization="int8" if args.int8 else None,
            number_language=args.number_language,
        )
    except LexiconError as error:
        print(f"Cannot read a lexicon: {error}", file=sys.stderr)
    except (OSError, ValueError) as error:
        print(f"Cannot load the model {args.model!r}: {error}", file=sys.stderr)
    return None


def output_lines(parsed: list, pronounced: dict, args: argparse.Namespace) -> list[str]:
    """One line a sentence (--sentences), or the lexicon entries of each distinct token in the chosen format."""
    if args.sentences:
        return [format_sentence(tokens, pronounced, args.drop_punctuation) for tokens in parsed]
    out, seen = [], set()
    for token, spoken in (pair for tokens in parsed for pair in tokens if pair[1]):
        if token not in seen:
            seen.add(token)
            out += format_entries(token, token_variants(spoken, pronounced), args.format, args.show_source)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(args, parser)
    lines = read_lines(args, parser)
    start = time.perf_counter()
    g2p = load_g2p(args)
    if g2p is None:
        return 1
    # The dictionaries' 130k entries never die, and a word list's objects die by reference counting (no cycles):
    # the collector's scans would only walk them again and again while a long list allocates (a third of the
    # command's own work on 100k words). A short-lived command can leave it off.
    gc.freeze()
    gc.disable()
    try:
        return pronounce_lines(args, lines, g2p, start)
    finally:
        gc.enable()  # main() may run inside a longer-lived process (tests, notebooks)


def pronounce_lines(args: argparse.Namespace, lines: list[str], g2p: G2P, start: float) -> int:
    """Pronounce the input lines and write the output; skipped tokens are reported on standard error."""
    problems = []

    def report(number: int, token: str, why: str) -> None:
        problems.append(number)
        if len(problems) <= MAX_REPORTED:
            print(f"line {number}: {token[:60]!r} skipped: {why}", file=sys.stderr)

    parsed = spoken_words(lines, g2p, report)
    words = [word for tokens in parsed for _, spoken in tokens for word in spoken]
    scores = args.format == "tsv_scores" or (args.nbest is not None and args.nbest > 1) or args.pmass is not None
    pronounced = g2p.pronounce(words, nbest=args.nbest, pmass=args.pmass, scores=scores and not args.sentences)
    out = output_lines(parsed, pronounced, args)
    handle = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        handle.writelines(out)
    finally:
        if args.output:
            handle.close()
    empty = sum(not line.strip() for line in lines)
    notes = [f"{len(pronounced):,} distinct words in {time.perf_counter() - start:.1f} s ({g2p.engine_name})"]
    if empty:
        notes.append(f"{empty} empty line(s) skipped" if not args.sentences else f"{empty} empty line(s)")
    if problems:
        notes.append(f"{len(problems)} token(s) skipped on {len(set(problems))} line(s)")
    if args.output or problems or empty:
        print("; ".join(notes), file=sys.stderr)
    return 0


def token_variants(spoken: list[str], pronounced: dict) -> list[tuple[str, float, str]]:
    """(phones, log-probability, source) of a token read as one or more words (a number): a single word's variants,
    or the best of each word joined."""
    if len(spoken) == 1:
        return [(p.phones, p.log_prob or 0.0, p.source) for p in pronounced[spoken[0]]]
    best = [pronounced[word][0] for word in spoken]
    sources = "+".join(dict.fromkeys(p.source for p in best))
    return [(" ".join(p.phones for p in best), sum(p.log_prob or 0.0 for p in best), sources)]


def format_sentence(tokens: list[tuple[str, list[str]]], pronounced: dict, drop_punctuation: bool) -> str:
    items = []
    for token, spoken in tokens:
        if spoken:
            items.append(" ".join(pronounced[word][0].phones for word in spoken))
        elif not drop_punctuation:
            items.append(token)
    return " | ".join(items) + "\n"


if __name__ == "__main__":
    sys.exit(main())
