"""Digit strings spoken or typed: account numbers, ZIP codes, confirmation numbers.

Rules (strict: a wrong account number is worse than a re-prompt):

* Separators ``space - . , ( ) # /`` are ignored: "100-200-300" is "100200300". Typed digit
  groups are kept verbatim, leading zeros included.
* "zero", "oh", "o", "nought", "naught" and "nil" are the digit 0.
* "double X" / "triple X" (and "treble X") repeat a single digit X; "double" before anything
  else, or before "X hundred", is rejected.
* Runs of number words are cut into the **fewest** chunks that are each a well-formed cardinal
  number (see :mod:`paybot.parsing.numbers`), and the chunks' values are written one after the
  other: "one zero zero two hundred three hundred" is 1|0|0|200|300; "twenty one" is 21;
  "one twenty three" is 1|23; "nineteen eighty four" is 19|84; "one hundred twenty three" is
  123; "two thousand five" is 2005. When two different fewest-chunk readings exist ("one
  hundred twenty three hundred": 100|2300 or 120|300) the input is rejected.
* Filler words are dropped (see ``FILLER``). Any other word - "don't", "know", "agent",
  "to", "for" - rejects the whole input, as does input without a single digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from paybot.spoken.fillers import BACKCHANNELS, HESITATIONS
from paybot.spoken.numbers import HUNDRED, REPEATS, SCALES, UNITS, ZERO_WORDS, is_number_word

from ._text import normalize
from .numbers import words_to_number

FILLER = HESITATIONS | BACKCHANNELS | frozenset(
    {
        "and", "the", "an", "number", "numbers", "please", "yeah", "yes", "yep", "ok", "okay",
        "so", "well", "it", "it's", "its", "is", "was", "that", "that's", "thats", "this", "my",
        "account", "acct", "zip", "zipcode", "postal", "code", "postcode", "confirmation",
        "reference", "ref", "id", "i", "i'm", "im", "think", "sure", "let", "me", "see",
        "thanks", "thank", "you", "just", "like", "here", "there", "go", "digits", "digit",
        "dash", "hyphen", "space",
    }
)  # fmt: skip
_OTHER_WORDS = frozenset({*REPEATS, "a"})  # "a" only counts in "a hundred", "a thousand"

_SEPARATORS = re.compile(r"[\s\-.,()#/]+")
_TYPED = re.compile(r"[0-9]+")
_MAX_TOKENS = 60
_MAX_CHUNK = 12


def _tokens(text: str) -> list[str] | None:
    """Split, drop filler and map zero words to "0"; None if a foreign word is present."""
    normalized = normalize(text)
    if normalized is None:
        return None
    out: list[str] = []
    for word in _SEPARATORS.split(normalized):
        if not word or word in FILLER:
            continue
        if word in ZERO_WORDS:
            word = "0"
        if not (_TYPED.fullmatch(word) or is_number_word(word) or word in _OTHER_WORDS):
            return None
        out.append(word)
    return out if 0 < len(out) <= _MAX_TOKENS else None


def _single_digit(token: str | None) -> str | None:
    if token is None:
        return None
    if len(token) == 1 and _TYPED.fullmatch(token):
        return token
    return str(UNITS[token]) if token in UNITS else None


def _expand_repeats(tokens: Sequence[str]) -> list[str] | None:
    """Replace "double X" / "triple X" by the repeated digit; None when malformed."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] not in REPEATS:
            out.append(tokens[i])
            i += 1
            continue
        digit = _single_digit(tokens[i + 1] if i + 1 < len(tokens) else None)
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        if digit is None or after == HUNDRED or after in SCALES:
            return None
        out.extend([digit] * REPEATS[tokens[i]])
        i += 2
    return out


def _chunk_digits(chunk: Sequence[str]) -> str | None:
    """The digits one chunk stands for: a typed group verbatim, else a cardinal's value."""
    if len(chunk) == 1 and _TYPED.fullmatch(chunk[0]):
        return chunk[0]
    value = words_to_number(list(chunk))
    return None if value is None else str(value)


def _segment(tokens: Sequence[str]) -> str | None:
    """Fewest-chunk reading of ``tokens`` (dynamic programming from the end).

    ``best[i]`` is (chunks, digits, ambiguous) for ``tokens[i:]``; an ambiguous best reading
    (two different digit strings with the same number of chunks) rejects the input.
    """
    n = len(tokens)
    best: list[tuple[int, str, bool] | None] = [None] * (n + 1)
    best[n] = (0, "", False)
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, min(n, i + _MAX_CHUNK) + 1):
            tail = best[j]
            digits = _chunk_digits(tokens[i:j]) if tail is not None else None
            if tail is None or digits is None:
                continue
            candidate = (tail[0] + 1, digits + tail[1], tail[2])
            current = best[i]
            if current is None or candidate[0] < current[0]:
                best[i] = candidate
            elif candidate[0] == current[0]:
                ambiguous = current[2] or candidate[2] or candidate[1] != current[1]
                best[i] = (current[0], current[1], ambiguous)
    result = best[0]
    return None if result is None or result[2] else result[1]


def parse_digit_string(text: str) -> str | None:
    """Parse a spoken or typed digit sequence (account number, ZIP, confirmation number).

    Args:
        text: the caller's words, e.g. "my account number is one zero zero two hundred
            three hundred", "double five one two", "100-200-300".

    Returns:
        The digits as a string ("100200300"), keeping leading zeros; None when the text holds
        no digits, holds a word that is neither a number nor filler, or is ambiguous.
    """
    tokens = _tokens(text)
    if tokens is None:
        return None
    expanded = _expand_repeats(tokens)
    if not expanded:
        return None
    return _segment(expanded)
