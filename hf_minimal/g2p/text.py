"""Text into words for the G2P tool: words of any script, numbers read as words (num2words), punctuation kept apart,
and accents folded for a last dictionary try. Pure Python."""

from __future__ import annotations

import re
import unicodedata

from .lexicon import normalize_word


def fold(text: str) -> str:
    """`text` without accents: NFKD, combining marks dropped ("café" -> "cafe"); letters without a decomposition
    ("ø", "ß") stay."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LM"  # letters and the combining marks of any script


_ORDINAL = re.compile(r"(st|nd|rd|th)(?![^\W\d_])")


def split_text(text: str, lowercase: bool = True) -> list[tuple[str, str]]:
    """(kind, token) for `text` normalised as words are (lexicon.normalize_word): "word" (letters of any script,
    with apostrophes and hyphens inside, a leading or trailing apostrophe), "number" (digits, with , and . between
    digits, and an ordinal suffix: 21st), or "punct" (any other character but whitespace, one a token)."""
    text = normalize_word(text, lowercase)
    if text.isalpha():  # one plain word: the common line of a word list
        return [("word", text)]
    tokens, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif _is_letter(ch) or (ch == "'" and i + 1 < n and _is_letter(text[i + 1])):
            j = i + 1
            while j < n and (_is_letter(text[j]) or (text[j] in "'-" and j + 1 < n and _is_letter(text[j + 1]))):
                j += 1
            j += j < n and text[j] == "'"  # a trailing apostrophe: students'
            tokens.append(("word", text[i:j]))
            i = j
        elif ch.isdigit():
            j = i + 1
            while j < n and (text[j].isdigit() or (text[j] in ".," and j + 1 < n and text[j + 1].isdigit())):
                j += 1
            suffix = _ORDINAL.match(text, j)
            j = suffix.end() if suffix else j
            tokens.append(("number", text[i:j]))
            i = j
        else:
            tokens.append(("punct", ch))
            i += 1
    return tokens


def number_words(number: str, language: str = "en") -> list[str]:
    """The words a number token of `split_text` is read as, by num2words: "42" -> ["forty-two"], "21st" ->
    ["twenty-first"], "3.5" -> ["three", "point", "five"], "1,000" -> ["one", "thousand"]. A token with several
    dots (a version, a date) is read group by group with "point" between."""
    try:
        from num2words import num2words
    except ImportError as error:
        raise ValueError(
            f"{number!r} is a number, and reading numbers needs num2words: pip install num2words"
        ) from error
    ordinal = _ORDINAL.search(number)
    digits = (number[: ordinal.start()] if ordinal else number).replace(",", "")

    def cardinal(group: str) -> str:
        try:
            return num2words(int(group), lang=language)
        except (OverflowError, NotImplementedError):  # past num2words' range: digit by digit
            return " ".join(num2words(int(digit), lang=language) for digit in group)

    if ordinal and "." not in digits:
        spoken = num2words(int(digits), lang=language, to="ordinal")
    elif digits.count(".") == 1:
        whole, fraction = digits.split(".")
        spoken = f"{cardinal(whole)} point {' '.join(num2words(int(d), lang=language) for d in fraction)}"
    else:
        spoken = " point ".join(cardinal(group) for group in digits.split("."))
    return [token for kind, token in split_text(spoken) if kind == "word"]
