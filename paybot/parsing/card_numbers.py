"""Card numbers where they must not be: typed, texted, keyed or spoken outside the capture.

A card number is 13 to 19 digits passing the Luhn check. In text it may be typed with any
separators between digit groups (spaces, dashes, dots, commas, slashes, brackets), or spoken
as words ("four two four two", "oh" for zero, "double four", "forty two forty two" as far as
:func:`~paybot.parsing.digits.parse_digit_string` reads it). A *run* is a stretch of digit
groups and number words joined only by separators (and hesitations like "um"); a run holds a
card number when some stretch of it, starting and ending on a group boundary (every spoken
digit is a boundary), is one. :func:`remove_card_numbers` replaces each such run as a whole
(so an expiry or security code said after the number goes with it) by
:data:`CARD_NUMBER_REMOVED`.

Used by the voice bridge (speech and keypad turns), the SMS webhook and the REST channel,
before Rasa sees any text. Nothing here logs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from paybot.gateway.cards import luhn_valid
from paybot.spoken.fillers import HESITATIONS
from paybot.spoken.numbers import REPEATS, ZERO_WORDS, is_number_word

from .digits import parse_digit_string

MIN_DIGITS, MAX_DIGITS = 13, 19
CARD_NUMBER_REMOVED = "[card number removed]"

_TOKEN = re.compile(r"\d+|[^\W\d_]+(?:'[^\W\d_]+)?")
# What may stand between two tokens of one run: separators and nothing else.
_SEPARATOR = re.compile(r"[\s\-\u2010-\u2015\u2212.,/\\()#*+:;_|]*")


@dataclass(frozen=True)
class CardRun:
    """Where in the text a run holding a card number is (``text[start:end]``)."""

    start: int
    end: int


def is_card_number(digits: str) -> bool:
    """True when ``digits`` is 13-19 ASCII digits passing the Luhn check."""
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn_valid(digits)


def _is_run_word(word: str) -> bool:
    return word in ZERO_WORDS or word in REPEATS or is_number_word(word)


def _word_digits(words: list[str]) -> tuple[str, list[int]]:
    """The digits a stretch of number words stands for, every position a boundary.

    :func:`parse_digit_string` reads the stretch when it can ("forty two forty two", "double
    four"); otherwise each word is read on its own ("double X" with the next word).
    """
    digits = parse_digit_string(" ".join(words)) if len(words) <= 60 else None
    if digits is None:
        parts: list[str] = []
        i = 0
        while i < len(words):
            pair = words[i : i + 2] if words[i] in REPEATS else words[i : i + 1]
            parts.append(parse_digit_string(" ".join(pair)) or "")
            i += len(pair)
        digits = "".join(parts)
    return digits, list(range(len(digits) + 1))


def _run_holds_card(groups: list[tuple[str, bool]]) -> bool:
    """Whether digit groups (digits, spoken?) hold a card number between two boundaries."""
    digits = ""
    boundaries: set[int] = {0}
    words: list[str] = []

    def flush_words() -> None:
        nonlocal digits
        if words:
            spoken, marks = _word_digits(words)
            boundaries.update(len(digits) + m for m in marks)
            digits += spoken
            words.clear()

    for text, spoken in groups:
        if spoken:
            words.append(text)
            continue
        flush_words()
        digits += text
        boundaries.add(len(digits))
    flush_words()
    if len(digits) < MIN_DIGITS:
        return False
    ordered = sorted(boundaries)
    for i, start in enumerate(ordered):
        for end in ordered[i + 1 :]:
            if end - start > MAX_DIGITS:
                break
            if end - start >= MIN_DIGITS and luhn_valid(digits[start:end]):
                return True
    return False


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) for ch in text)


def find_card_numbers(text: str) -> list[CardRun]:
    """Every run in ``text`` that holds a card number, in order.

    Args:
        text: user text as typed, texted, keyed or recognised from speech.

    Returns:
        The runs' spans; empty when ``text`` holds no card number (or is not a string).
    """
    if not isinstance(text, str):
        return []
    found: list[CardRun] = []
    groups: list[tuple[str, bool]] = []
    run_start = run_end = 0
    prev_end: int | None = None

    def close_run() -> None:
        if groups and _run_holds_card(groups):
            found.append(CardRun(run_start, run_end))
        groups.clear()

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        word = token.lower()
        joined = prev_end is not None and _SEPARATOR.fullmatch(text, prev_end, match.start())
        if token[0].isdigit():
            group: tuple[str, bool] | None = (_ascii_digits(token), False)
        elif _is_run_word(word):
            group = (word, True)
        elif word in HESITATIONS and groups and joined:
            prev_end = match.end()
            continue
        else:
            group = None
        if group is None:
            close_run()
            prev_end = None
            continue
        if not (groups and joined):
            close_run()
            run_start = match.start()
        groups.append(group)
        run_end = prev_end = match.end()
    close_run()
    return found


def run_digits(run: str) -> str:
    """The digits a run's text stands for, typed and spoken ("4242 four two" -> "424242"),
    as well as :func:`~paybot.parsing.digits.parse_digit_string` or, failing it, word by word
    reads them (for masking down to the last four)."""
    digits = parse_digit_string(run)
    if digits is not None:
        return digits
    out: list[str] = []
    words: list[str] = []
    for token in _TOKEN.findall(run):
        if token[0].isdigit():
            out.append(_word_digits(words)[0] if words else "")
            words = []
            out.append(_ascii_digits(token))
        elif _is_run_word(token.lower()):
            words.append(token.lower())
    out.append(_word_digits(words)[0] if words else "")
    return "".join(out)


def contains_card_number(text: str) -> bool:
    """True when ``text`` holds a card number anywhere (see the module docstring)."""
    return bool(find_card_numbers(text))


def remove_card_numbers(text: str) -> tuple[str, int]:
    """``text`` with every run holding a card number replaced by :data:`CARD_NUMBER_REMOVED`.

    Returns:
        The new text and how many runs were replaced (0: ``text`` is returned unchanged).
    """
    runs = find_card_numbers(text)
    if not runs:
        return text, 0
    out, last = [], 0
    for run in runs:
        out.append(text[last : run.start])
        out.append(CARD_NUMBER_REMOVED)
        last = run.end
    out.append(text[last:])
    return "".join(out), len(runs)


__all__ = [
    "CARD_NUMBER_REMOVED",
    "CardRun",
    "contains_card_number",
    "find_card_numbers",
    "is_card_number",
    "remove_card_numbers",
    "run_digits",
]
