"""Generated card numbers and the ways people write and say them, for the card-data scan's
tests: seeded random Luhn-valid numbers of 13-19 digits, written with separators, spoken digit
by digit or in pairs ("forty two forty two"), and mixed; and text that must not count."""

from __future__ import annotations

import random

from paybot.gateway.cards import luhn_check_digit, luhn_valid
from paybot.spoken.numbers import DIGIT_WORDS, number_to_words

_WORD = {digit: word for word, digit in DIGIT_WORDS.items()}  # the last word for each digit
_ZEROS = [word for word, digit in DIGIT_WORDS.items() if digit == "0"]


def card_number(rng: random.Random, length: int | None = None) -> str:
    """A Luhn-valid number of ``length`` (default 13-19) digits, not starting with 0."""
    length = length or rng.randint(13, 19)
    body = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(length - 2))
    return body + luhn_check_digit(body)


def not_a_card(rng: random.Random) -> str:
    """13-19 digits that fail the Luhn check."""
    number = card_number(rng)
    last = str((int(number[-1]) + rng.randint(1, 9)) % 10)
    assert not luhn_valid(number[:-1] + last)
    return number[:-1] + last


def said_digit(digit: str, rng: random.Random) -> str:
    return rng.choice(_ZEROS) if digit == "0" else _WORD[digit]


def digit_by_digit(digits: str, rng: random.Random) -> str:
    """ "four two four two ..." ("zero" or "oh" for 0)."""
    return " ".join(said_digit(d, rng) for d in digits)


def in_pairs(digits: str, rng: random.Random) -> str:
    """ "forty two forty two ...": pairs as numbers ("oh five" for 05), an odd first digit alone
    (so a lone "forty" is never read with the next word)."""
    words, rest = [], digits
    if len(rest) % 2:
        words.append(said_digit(rest[0], rng))
        rest = rest[1:]
    for i in range(0, len(rest), 2):
        pair = rest[i : i + 2]
        if pair[0] == "0":
            words += [said_digit("0", rng), said_digit(pair[1], rng)]
        else:
            words.append(number_to_words(int(pair)))
    return " ".join(words)


def written(digits: str, separator: str) -> str:
    """In groups of four split by ``separator`` (the last group may be shorter)."""
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


WRITTEN_SEPARATORS = ("", " ", "-", ".", ",", "/", "  ", "_")
FORMS = (*(f"written {s!r}" for s in WRITTEN_SEPARATORS), "digit by digit", "in pairs", "mixed")


def form(name: str, digits: str, rng: random.Random) -> str:
    """``digits`` in the form ``name`` (one of :data:`FORMS`)."""
    if name.startswith("written"):
        return written(digits, WRITTEN_SEPARATORS[FORMS.index(name)])
    if name == "digit by digit":
        return digit_by_digit(digits, rng)
    if name == "in pairs":
        return in_pairs(digits, rng)
    half = 8
    return written(digits[:half], " ") + " " + in_pairs(digits[half:], rng)


def message_negatives(rng: random.Random) -> list[str]:
    """What a customer may say or be sent that is no card number (a message is read as the
    channels read it: any stretch of its digit groups that passes Luhn counts)."""
    return [
        f"card {not_a_card(rng)} declined",
        "call me on +15555550100 or (555) 555-0111",
        "confirmation 123456782, account 100200300, ZIP 94107",
        "I paid $1,234.56; twelve hundred fifty dollars and ten cents",
        "my account is one zero zero two zero zero three zero zero",
    ]


def negatives(rng: random.Random) -> list[str]:
    """Text with digits that is no card data in a log or a table: non-Luhn runs, phone numbers,
    confirmation and account numbers, amounts, times, ids."""
    return [
        *message_negatives(rng),
        f"pan {written(not_a_card(rng), ' ')}",
        "caller +15555550100, called (555) 555-0111, +1 555 555 0122",
        "confirmation 123456782 (123-456-782), account 100200300, ZIP 94107-1234",
        "paid $1,234,567.89 of 321.72",
        "at 2026-12-05T01:02:03.123456+00:00 stamp 1764893575.1234567 port 38371",
        "call CA0123456789abcdef0123456789abcdef idem 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "192.168.100.200 v3.6.21 2026.12.05 4242",
    ]
