"""Whisper's written text as the spoken words every other engine gives.

Whisper writes numbers, money and punctuation ("$45.50.", "4207", "the 15th"); the bridge and
the parsers read spoken words ("forty five dollars and fifty cents", "four two zero seven").
"""

from __future__ import annotations

import re
from decimal import Decimal

from paybot.spoken.numbers import UNITS
from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.tts.normalize import amount_to_words, number_to_words, ordinal_to_words

_DIGIT_NAMES = tuple(UNITS)  # "zero" .. "nine", by value

_MONEY = re.compile(r"\$\s?(\d[\d,]*)(?:\.(\d{1,2}))?")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")


def written_to_spoken(raw: str, expected: ExpectedInput) -> str:
    """Rewrite Whisper's written text as the lower-case spoken words other engines give.

    Amounts become words ("$45.50" → "forty five dollars and fifty cents"); in a digits turn,
    and for any numeral of four or more digits or with a leading zero, each digit is a word
    ("4207" → "four two zero seven"); other numbers are read as numbers ("15" → "fifteen").
    Punctuation goes, apostrophes stay.
    """
    text = raw.lower().replace("%", " percent ")
    text = _MONEY.sub(lambda m: f" {_money(m)} ", text)
    text = _ORDINAL.sub(lambda m: f" {_ordinal(int(m.group(1)))} ", text)

    def number(match: re.Match[str]) -> str:
        token = match.group(0).replace(",", "")
        if "." in token:
            whole, _, frac = token.partition(".")
            if expected is ExpectedInput.AMOUNT and len(frac) == 2:
                return f" {amount_to_words(Decimal(token))} "
            return f" {_number(whole, expected)} point {_digits(frac)} "
        return f" {_number(token, expected)} "

    text = _NUMBER.sub(number, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


def _money(match: re.Match[str]) -> str:
    dollars = match.group(1).replace(",", "")
    return amount_to_words(Decimal(f"{dollars}.{match.group(2) or '0'}"))


def _ordinal(n: int) -> str:
    return ordinal_to_words(n)


def _number(token: str, expected: ExpectedInput) -> str:
    if expected is ExpectedInput.DIGITS or token.startswith("0") or (
        len(token) >= 4 and expected is not ExpectedInput.AMOUNT
    ):
        return _digits(token)
    return number_to_words(int(token))


def _digits(token: str) -> str:
    return " ".join(_DIGIT_NAMES[int(c)] for c in token if c.isdigit())
