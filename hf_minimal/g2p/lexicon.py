"""Pronunciation dictionaries as files: read CMUdict's and tab-separated formats, write them, normalise words.

Formats (UTF-8, one format a file):

- CMUdict: `word  P H O N E S`, variants as `word(2)  ...`, `;;;` comment lines, a trailing `# comment` ignored;
- tab-separated, as phonetisaurus-apply writes it: `word<TAB>p h o n e s` (variants on further lines, or further
  tab columns on one line), or with scores `word<TAB>score<TAB>p h o n e s[<TAB>source]` (`--verbose`'s columns;
  the score and the source are not kept).

Words are normalised by `normalize_word` (NFKC, typographic apostrophes to ', lower case) on reading, so that a
lexicon and the text looked up in it agree; phones are kept exactly as written.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

FORMATS = ("tsv", "tsv_scores", "cmudict")
_VARIANT = re.compile(r"^(.+)\((\d+)\)$")  # CMUdict's word(2)
_COMMENT = re.compile(r"(?:^|\s)#")  # CMUdict's trailing comment; a # inside a word is a letter
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


class LexiconError(ValueError):
    """A lexicon file that cannot be read: the message names the file, the line and the fix."""


def normalize_word(word: str, lowercase: bool = True) -> str:
    """The form words are looked up and spelled in: Unicode NFKC (compatibility forms such as ligatures and
    full-width letters to their plain letters), typographic apostrophes to ', lower case (unless `lowercase` is False:
    a model trained on a case-sensitive lexicon)."""
    if word.isascii():  # NFKC leaves ASCII as it is: only the backtick to map (the fast path of a long word list)
        word = word.replace("`", "'") if "`" in word else word
    else:
        word = unicodedata.normalize("NFKC", word).translate(_APOSTROPHES)
    return word.lower() if lowercase else word


def strip_stress(pronunciation: Sequence[str]) -> list[str]:
    """["HH", "AH0", "L", "OW1"] -> ["HH", "AH", "L", "OW"]."""
    return [phone.rstrip("012") for phone in pronunciation]


def parse_lexicon(lines: Iterable[str], source: str = "<lexicon>", lowercase: bool = True) -> dict[str, list[str]]:
    """{word: [pronunciation, ...]} from the lines of a lexicon in either format (the first entry decides which);
    words normalised (`normalize_word`), pronunciations space-joined phones, variants in file order without
    repeats."""
    lexicon: dict[str, list[str]] = {}
    tabbed: bool | None = None
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n").lstrip("\ufeff")
        if not text.strip() or text.lstrip().startswith((";;;", "#")):  # empty, or a comment line
            continue
        error = functools.partial(_line_error, source, number, text)
        if tabbed is None:
            tabbed = "\t" in text
        elif tabbed != ("\t" in text):
            first, other = ("tab-separated", "CMUdict (no tab)") if tabbed else ("CMUdict (no tab)", "tab-separated")
            raise error(f"this line is {other} but the file's first entry was {first}; use one format a file")
        if tabbed:
            word, pronunciations = _tab_entry(text.split("\t"), error)
        else:
            pieces = (_COMMENT.split(text, maxsplit=1)[0] if "#" in text else text).split()
            word, pronunciations = pieces[0], [" ".join(pieces[1:])]
            variant = _VARIANT.match(word) if "(" in word else None
            if variant:
                word = variant.group(1)
        if not all(pronunciations):
            raise error(f"{word!r} has no phones; write them after the word ({'a tab' if tabbed else 'a space'})")
        variants = lexicon.setdefault(normalize_word(word, lowercase), [])
        variants += [p for p in pronunciations if p not in variants]
    if not lexicon:
        raise LexiconError(f"{source} has no entries: write one word and its phones a line.")
    return lexicon


def _line_error(source: str, number: int, text: str, problem: str) -> LexiconError:
    return LexiconError(f"{source}, line {number}: {problem}: {text[:80]!r}")


def _tab_entry(columns: list[str], error) -> tuple[str, list[str]]:
    word = columns[0].strip()
    if not word:
        raise error("the line starts with a tab: the word is missing")
    if len(word.split()) > 1:
        raise error(f"the word {word!r} has spaces; one word an entry (join its parts with - or _)")
    if len(columns) in (3, 4) and _is_number(columns[1]):
        columns = [word, columns[2]]  # phonetisaurus-apply --verbose: word, score, pronunciation[, source]
    pronunciations = [" ".join(column.split()) for column in columns[1:]]
    return word, pronunciations if pronunciations else [""]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_lexicon(path: str | os.PathLike, lowercase: bool = True) -> dict[str, list[str]]:
    """`parse_lexicon` of a UTF-8 file; a file that cannot be read or decoded raises LexiconError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_lexicon(handle, source=str(path), lowercase=lowercase)
    except UnicodeDecodeError as error:
        raise LexiconError(f"{path} is not UTF-8 ({error}); convert it, e.g. `iconv -t UTF-8 {path}`.") from error
    except OSError as error:
        raise LexiconError(f"cannot read the lexicon {path}: {error.strerror or error}") from error


def format_entries(
    word: str, variants: Sequence[tuple[str, float, str]], fmt: str = "tsv", show_source: bool = False
) -> list[str]:
    """The lines of one word's entries, variants as (phones, log-probability, source), best first.

    `tsv`: word<TAB>phones (phonetisaurus-apply's output); `tsv_scores`: word<TAB>score<TAB>phones with the score a
    negative log-probability to two decimals, as phonetisaurus-apply --verbose writes it (0.00 for dictionary
    entries); `cmudict`: word, two spaces, phones, variants as word(2). `show_source` appends where each came from:
    a fourth column in tsv_scores, a `# source` comment in cmudict (plain tsv has no place for it).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}.")
    if show_source and fmt == "tsv":
        raise ValueError("the tsv format has no column for the source: use tsv_scores or cmudict with show_source.")
    lines = []
    for number, (phones, log_prob, source) in enumerate(variants, start=1):
        if fmt == "cmudict":
            name = word if number == 1 else f"{word}({number})"
            lines.append(f"{name}  {phones}" + (f"  # {source}" if show_source else "") + "\n")
        elif fmt == "tsv_scores":
            lines.append(f"{word}\t{-log_prob + 0.0:.2f}\t{phones}" + (f"\t{source}" if show_source else "") + "\n")
        else:
            lines.append(f"{word}\t{phones}\n")
    return lines


def write_lexicon(path: str | os.PathLike, lexicon: dict[str, Sequence[str]], fmt: str = "cmudict") -> Path:
    """Write {word: [pronunciation, ...]} in `fmt` (tsv or cmudict), words in the given order."""
    lines = [
        line for word, prons in lexicon.items() for line in format_entries(word, [(p, 0.0, "") for p in prons], fmt)
    ]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return Path(path)


__all__ = [
    "FORMATS",
    "LexiconError",
    "format_entries",
    "normalize_word",
    "parse_lexicon",
    "read_lexicon",
    "strip_stress",
    "write_lexicon",
]
