"""The card-number detector (paybot/parsing/card_numbers.py) on generated inputs: Luhn-valid
numbers of every length 13-19 and every brand, typed with random separators, keyed, spoken
as words; and the digit runs customers do send (account numbers, ZIPs, phone numbers,
amounts, dates, confirmation numbers), which must pass through untouched."""

from __future__ import annotations

import os
import random

import pytest

from paybot.gateway.cards import _PREFIXES, BRANDS, luhn_check_digit, luhn_valid
from paybot.parsing.card_numbers import (
    CARD_NUMBER_REMOVED,
    contains_card_number,
    find_card_numbers,
    is_card_number,
    remove_card_numbers,
)
from paybot.parsing.numbers import UNITS

SEED = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
ROUNDS = 300
WORDS = {v: k for k, v in UNITS.items()}
SEPARATORS = (" ", "  ", "-", " - ", ".", ",", ", ", "/", " / ", "\t", "\u2013")
SENTENCES = (
    "{}",
    "my card number is {}",
    "{} thanks",
    "it's {} expiring 12/30",
    "um, {}, is that right?",
    "Card: {}. CVV on the back.",
)


def rng(salt: str) -> random.Random:
    return random.Random(f"{SEED}:{salt}")


def luhn_number(r: random.Random, length: int, prefix: str = "") -> str:
    body = prefix + "".join(r.choice("0123456789") for _ in range(length - 1 - len(prefix)))
    return body + luhn_check_digit(body)


def brand_numbers(r: random.Random) -> list[tuple[str, str]]:
    """(brand, number) for every brand, every length of it in 13-19, every prefix range."""
    out = []
    for first, last, brand in _PREFIXES:
        for length in sorted(BRANDS[brand].lengths):
            if 13 <= length <= 19:
                prefix = str(r.randint(int(first), int(last))).zfill(len(first))
                out.append((brand, luhn_number(r, length, prefix)))
    return out


def typed(r: random.Random, digits: str) -> str:
    """``digits`` in groups of 1-6 (or the usual 4s) joined by one random separator kind."""
    if r.random() < 0.5:
        sizes = [4] * (len(digits) // 4) + ([len(digits) % 4] if len(digits) % 4 else [])
    else:
        sizes = []
        while sum(sizes) < len(digits):
            sizes.append(min(r.randint(1, 6), len(digits) - sum(sizes)))
    groups, at = [], 0
    for size in sizes:
        groups.append(digits[at : at + size])
        at += size
    if r.random() < 0.3:  # a mix of separators
        return "".join(g + r.choice(SEPARATORS) for g in groups[:-1]) + groups[-1]
    return r.choice(SEPARATORS).join(groups)


def spoken(r: random.Random, digits: str) -> str:
    """``digits`` as words: "oh" or "zero", "double X" for a repeated digit, some "um"s."""
    words, i = [], 0
    while i < len(digits):
        d = int(digits[i])
        if i + 1 < len(digits) and digits[i + 1] == digits[i] and r.random() < 0.5:
            words += ["double", WORDS[d]]
            i += 2
            continue
        words.append(r.choice(("oh", "zero")) if d == 0 else WORDS[d])
        i += 1
    if r.random() < 0.3:
        words.insert(r.randint(1, len(words) - 1), "um")
    return " ".join(words)


def test_every_brand_and_length_typed_keyed_and_spoken_is_found_and_removed():
    r = rng("brands")
    cases = brand_numbers(r) * 3 + [
        ("any", luhn_number(r, r.randint(13, 19))) for _ in range(ROUNDS)
    ]
    for brand, number in cases:
        assert is_card_number(number)
        for form in (number, typed(r, number), spoken(r, number)):  # keyed, typed, spoken
            text = r.choice(SENTENCES).format(form)
            cleaned, removed = remove_card_numbers(text)
            detail = f"seed={SEED} brand={brand} text={text!r} -> {cleaned!r}"
            assert removed == 1, detail
            assert CARD_NUMBER_REMOVED in cleaned, detail
            assert not any(ch.isdigit() for ch in cleaned.replace("12/30", "")), detail
            assert "four" not in cleaned.split(CARD_NUMBER_REMOVED)[0][-6:], detail


def test_a_card_number_followed_by_expiry_and_code_goes_as_a_whole():
    assert remove_card_numbers("4242 4242 4242 4242 12 30 123 please") == (
        f"{CARD_NUMBER_REMOVED} please",
        1,
    )
    assert remove_card_numbers("4000000000000002 and 5555555555554444")[1] == 2


def test_spoken_forms_the_digit_parser_reads():
    assert contains_card_number("four oh oh oh, oh oh oh oh, oh oh oh oh, oh oh oh two")
    assert contains_card_number(
        "forty two forty two forty two forty two forty two forty two forty two forty two"
    )
    assert contains_card_number(
        "double five double five double five double five double "
        "five double five double four double four"
    )  # 5555...4444
    assert contains_card_number("Four-Two-Four-Two 4242 four two four two 4242")
    assert contains_card_number("４２４２ ４２４２ ４２４２ ４２４２")  # full-width digits


def test_near_misses_are_not_card_numbers():
    r = rng("near")
    for _ in range(ROUNDS):
        number = luhn_number(r, r.randint(13, 19))
        wrong = number[:-1] + str((int(number[-1]) + r.randint(1, 9)) % 10)
        assert not luhn_valid(wrong)
        # Keyed, or typed in two parts too short to be a card alone (a card may hide in any
        # stretch of groups: "5920 9742 9037 5884 6" may be a card and a stray digit).
        cut = r.randint(len(wrong) - 12, 12)
        for text in (wrong, f"{wrong[:cut]}{r.choice(SEPARATORS)}{wrong[cut:]}"):
            assert not contains_card_number(text), f"seed={SEED} {text!r}"
        short = luhn_number(r, r.randint(2, 12))
        assert not contains_card_number(typed(r, short)), f"seed={SEED} {short}"
    # Words in between end a run: two short numbers are not one long one.
    assert not contains_card_number("account 100200300 zip 94107 phone 555 0100")


def other_digit_runs(r: random.Random) -> list[str]:
    """What customers do type or say: none of it may be taken for a card number."""
    account = "".join(r.choice("0123456789") for _ in range(r.randint(4, 12)))
    zip5 = f"{r.randint(0, 99999):05d}"
    area, mid, last = r.randint(200, 999), r.randint(200, 999), r.randint(0, 9999)
    cents = r.randint(0, 99)
    dollars = r.randint(1, 999_999)
    confirmation = "".join(r.choice("0123456789") for _ in range(9))
    return [
        account,
        typed(r, account),
        spoken(r, account),
        f"my account number is {account}",
        zip5,
        f"{zip5}-{r.randint(0, 9999):04d}",
        spoken(r, zip5),
        f"+1 ({area}) {mid}-{last:04d}",
        f"{area}.{mid}.{last:04d}",
        f"+1{area}{mid}{last:04d}",
        f"call me at 1-{area}-{mid}-{last:04d}",
        f"${dollars:,}.{cents:02d}",
        f"pay {dollars}.{cents:02d} dollars",
        f"{r.randint(1, 12)}/{r.randint(1, 28)}/20{r.randint(24, 40)}",
        confirmation,
        f"{confirmation[:3]}-{confirmation[3:6]}-{confirmation[6:]}",
        f"confirmation {confirmation[:3]} {confirmation[3:6]} {confirmation[6:]}",
        "the one ending 4242",
        "I'd like to pay one hundred twenty three dollars and forty five cents",
    ]


def test_other_digit_runs_pass_through_untouched():
    r = rng("others")
    for _ in range(ROUNDS):
        for text in other_digit_runs(r):
            assert remove_card_numbers(text) == (text, 0), f"seed={SEED} text={text!r}"


@pytest.mark.parametrize("value", [None, 42, b"4242424242424242", ""])
def test_non_text_holds_no_card(value):
    assert find_card_numbers(value) == []  # type: ignore[arg-type]
    assert not is_card_number("42424242424242420000")  # 20 digits
