"""Number words: cardinals, ordinals, the spoken zeros and "double"/"triple", and spelling.

The word tables are what every reader and writer of spoken numbers shares: the strict parsers
(:mod:`paybot.parsing.numbers`, digits, amounts, dates, card numbers), the ASR grammars and
language-model corpus, the TTS normaliser and the log redaction. :func:`number_to_words` and
:func:`ordinal_to_words` spell numbers the way the bot says them (US style, no "and"), and the
parsers read that spelling back.
"""

from __future__ import annotations

ZERO, HUNDRED, THOUSAND = "zero", "hundred", "thousand"
UNITS: dict[str, int] = {
    ZERO: 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS: dict[str, int] = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES: dict[str, int] = {THOUSAND: 10**3, "million": 10**6, "billion": 10**9}
"""Scale words, smallest first; numbers are spelled and read up to the billions."""

# Ordinal word -> the cardinal word it replaces ("twenty first" -> "twenty one").
ORDINALS: dict[str, str] = {
    "zeroth": "zero", "first": "one", "second": "two", "third": "three", "fourth": "four",
    "fifth": "five", "sixth": "six", "seventh": "seven", "eighth": "eight", "ninth": "nine",
    "tenth": "ten", "eleventh": "eleven", "twelfth": "twelve", "thirteenth": "thirteen",
    "fourteenth": "fourteen", "fifteenth": "fifteen", "sixteenth": "sixteen",
    "seventeenth": "seventeen", "eighteenth": "eighteen", "nineteenth": "nineteen",
    "twentieth": "twenty", "thirtieth": "thirty", "fortieth": "forty", "fiftieth": "fifty",
    "sixtieth": "sixty", "seventieth": "seventy", "eightieth": "eighty",
    "ninetieth": "ninety", "hundredth": "hundred", "thousandth": "thousand",
    "millionth": "million", "billionth": "billion",
}  # fmt: skip
_ORDINAL_OF = {cardinal: ordinal for ordinal, cardinal in ORDINALS.items()}

ZERO_WORDS = frozenset({"zero", "oh", "o", "nought", "naught", "nil"})
"""Words for the digit 0 inside a digit string or amount ("four oh five")."""
REPEATS: dict[str, int] = {"double": 2, "triple": 3, "treble": 3}
"""Words that repeat the digit after them ("double five" = 55)."""
DIGIT_WORDS: dict[str, str] = {"oh": "0", **{word: str(value) for word, value in UNITS.items()}}
"""The words a caller reads a digit string with, as digits: "zero"/"oh" and "one".."nine"
(the ASR digit grammars listen for these; the parsers also take the rarer ZERO_WORDS)."""

NUMBER_WORDS = frozenset({*UNITS, *TEENS, *TENS, HUNDRED, *SCALES})
"""Every cardinal number word."""

_ONES = [*UNITS, *TEENS]  # index = value, 0..19
_TENS = {value // 10: word for word, value in TENS.items()}
_LARGEST_SCALE = max(SCALES.values())


def _under_thousand(n: int) -> list[str]:
    """The words for 0 < n < 1000 (US style, no "and")."""
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], HUNDRED]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Spell a whole number in US English: 321 -> "three hundred twenty one".

    Args:
        n: An integer below a thousand billion in magnitude (negative: "minus ...").

    Raises:
        ValueError: If ``abs(n)`` is a thousand billion or more.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= _LARGEST_SCALE * 1000:
        raise ValueError(f"number too large to spell: {n}")
    if n == 0:
        return _ONES[0]
    words: list[str] = []
    for name, scale in sorted(SCALES.items(), key=lambda item: -item[1]):
        count, n = divmod(n, scale)
        if count:
            words += [*_under_thousand(count), name]
    if n:
        words += _under_thousand(n)
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """Spell an ordinal: 3 -> "third", 23 -> "twenty third", 40 -> "fortieth"."""
    words = number_to_words(n).split()
    words[-1] = _ORDINAL_OF[words[-1]]
    return " ".join(words)


def year_to_words(year: int) -> str:
    """Speak a year the usual way: 2026 -> "twenty twenty six", 2005 -> "two thousand five",
    1900 -> "nineteen hundred", 1905 -> "nineteen oh five", 26 -> "twenty six"."""
    high, low = divmod(year, 100)
    if year < 100 or 2000 <= year < 2010 or year % 1000 == 0:
        return number_to_words(year)
    if low == 0:
        return f"{number_to_words(high)} {HUNDRED}"
    low_words = number_to_words(low) if low >= 10 else f"oh {number_to_words(low)}"
    return f"{number_to_words(high)} {low_words}"


def is_number_word(token: str) -> bool:
    """Whether ``token`` is a cardinal number word ("seven", "hundred", "thousand")."""
    return token in NUMBER_WORDS
