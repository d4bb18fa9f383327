"""Every parser in paybot.parsing answers generated text with a result or None, never an
exception: huge numbers, odd Unicode, control characters and word salad included."""

from __future__ import annotations

import os
import random
from datetime import date
from decimal import Decimal

import pytest

from paybot.parsing import (
    parse_amount,
    parse_date,
    parse_digit_string,
    parse_yes_no,
    words_to_number,
    words_to_ordinal,
)
from paybot.parsing.addresses import pick_address
from paybot.parsing.money_words import read_money, typed_amount
from paybot.parsing.yesno import is_filler

SEED = int(os.environ.get("PAYBOT_FUZZ_SEED", "20261205"))
CASES = int(os.environ.get("PAYBOT_FUZZ_CASES", "3000"))
_VOCABULARY = (
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen twenty "
    "thirty fifty ninety hundred thousand million billion trillion and a point dollars dollar "
    "cents cent bucks usd percent per cent half halves third thirds quarter fourth fifth tenth "
    "minus negative the full balance minimum all of it pay my bill please today now yes no "
    "yeah nope maybe um uh first second third twenty-first tomorrow monday next week on the "
    "of december jan 5th 31st 2026 st nd rd th oak street pine avenue main"
)
WORDS = _VOCABULARY.split()
SYMBOLS = list("$%.,-/:;!?()'\"+#*&@ \t\n")
SYMBOLS += ["\u00a0", "\u200b", "\x00", "\x7f", "é", "٣", "①"]
SYMBOLS += ["½", "ß", "İ", "ﬁ", "\U0001f4b5", "\u0301", "\u202e", "²", "³"]


def digits(rng: random.Random) -> str:
    """A run of digits from 1 to 60 long, sometimes grouped or with a decimal part."""
    run = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 60)))
    shape = rng.random()
    if shape < 0.2:
        return f"{run}.{rng.randint(0, 999)}"
    if shape < 0.3:
        return ",".join(run[i : i + 3] for i in range(0, len(run), 3))
    if shape < 0.4:
        return "9" * rng.randint(20, 5000)
    return run


def generated(rng: random.Random) -> str:
    """One text made of words, digit runs and symbols, joined by odd separators."""
    parts = []
    for _ in range(rng.randint(0, 14)):
        kind = rng.random()
        if kind < 0.45:
            parts.append(rng.choice(WORDS))
        elif kind < 0.75:
            parts.append(digits(rng))
        else:
            parts.append("".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 4))))
    return "".join(p + rng.choice(["", " ", " ", "  ", "-", ","]) for p in parts)


def texts(rng: random.Random, count: int):
    fixed = ["", " ", "9" * 32, "$" + "9" * 32, "9" * 29 + ".99", "1e999", "NaN", "inf"]
    fixed += ["9" * 4301, "one " * 500, "\x00" * 10, "٣٤٥", "１２３", "$9,999,999,999,999,999,999"]
    yield from fixed
    for _ in range(count):
        yield generated(rng)


PARSERS = {
    "parse_amount": lambda t: parse_amount(t, balance=Decimal("321.72"), minimum=Decimal("25")),
    "parse_amount_no_balance": parse_amount,
    "parse_date": lambda t: parse_date(t, today=date(2026, 12, 5)),
    "parse_digit_string": parse_digit_string,
    "parse_yes_no": parse_yes_no,
    "is_filler": is_filler,
    "words_to_number": lambda t: words_to_number(t.split()),
    "words_to_ordinal": lambda t: words_to_ordinal(t.split()),
    "read_money": lambda t: read_money(t.lower().split()),
    "typed_amount": typed_amount,
    "pick_address": lambda t: pick_address(t, {1: "12 Oak Street", 2: "48 Pine Avenue"}),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parsers_never_raise_on_generated_text(name):
    parser = PARSERS[name]
    rng = random.Random(f"{SEED}:{name}")
    for text in texts(rng, CASES):
        try:
            parser(text)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(
                f"{name} raised {type(exc).__name__} on {text[:80]!r} (len {len(text)}); "
                f"PAYBOT_FUZZ_SEED={SEED}"
            )


@pytest.mark.parametrize("text", ["9" * 32, "$" + "9" * 32, "9" * 29 + ".99", "9" * 4301])
def test_absurdly_large_amounts_are_not_understood(text):
    assert parse_amount(text).kind == "none"


def test_large_but_plausible_amounts_still_parse():
    assert parse_amount("$1,234,567.89").amount == Decimal("1234567.89")
