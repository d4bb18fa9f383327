"""Payment amounts from speech and text (paybot.parsing.parse_amount)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paybot.parsing import AmountParse, parse_amount

BALANCE = Decimal("321.72")
MINIMUM = Decimal("25.00")

AMOUNTS = [
    # typed
    ("$150.50", "150.50"),
    ("150.50", "150.50"),
    ("150", "150.00"),
    ("1,250", "1250.00"),
    ("$1,250.00", "1250.00"),
    ("1250 dollars", "1250.00"),
    ("150.5", "150.50"),
    ("$0.50", "0.50"),
    (".50", "0.50"),
    ("$.99", "0.99"),
    ("$ 150", "150.00"),
    ("150$", "150.00"),
    ("$150 dollars", "150.00"),
    ("150 USD", "150.00"),
    ("150 bucks", "150.00"),
    ("1,234,567.89", "1234567.89"),
    ("150.", "150.00"),
    ("$150.50!", "150.50"),
    ("pay 1,250", "1250.00"),
    ("pay $150.50", "150.50"),
    ("150 dollars and 50 cents", "150.50"),
    ("150 dollars 50 cents", "150.50"),
    ("150 dollars 50", "150.50"),
    ("$150 and 50 cents", "150.50"),
    ("50 cents", "0.50"),
    ("5 cents", "0.05"),
    ("0", "0.00"),
    ("$0", "0.00"),
    ("2 thousand", "2000.00"),
    ("2 thousand dollars", "2000.00"),
    ("150dollars", "150.00"),
    # spoken cardinals
    ("a hundred and fifty", "150.00"),
    ("one hundred fifty", "150.00"),
    ("one hundred fifty dollars", "150.00"),
    ("one hundred and fifty dollars", "150.00"),
    ("hundred and fifty", "150.00"),
    ("twenty five dollars", "25.00"),
    ("twenty-five dollars", "25.00"),
    ("twenty five", "25.00"),
    ("fifty", "50.00"),
    ("fifty dollars", "50.00"),
    ("five", "5.00"),
    ("one dollar", "1.00"),
    ("a dollar", "1.00"),
    ("two thousand", "2000.00"),
    ("a thousand", "1000.00"),
    ("a thousand dollars", "1000.00"),
    ("one thousand two hundred fifty", "1250.00"),
    ("one thousand two hundred and fifty dollars", "1250.00"),
    ("twelve hundred", "1200.00"),
    ("twelve hundred fifty", "1250.00"),
    ("twelve hundred dollars", "1200.00"),
    ("three hundred twenty one", "321.00"),
    ("one million", "1000000.00"),
    ("zero dollars", "0.00"),
    ("zero", "0.00"),
    # dollars and cents with words
    ("one hundred fifty dollars and fifty cents", "150.50"),
    ("three hundred twenty one dollars and seventy two cents", "321.72"),
    ("three hundred twenty one dollars seventy two", "321.72"),
    ("twenty dollars fifty", "20.50"),
    ("twenty dollars and fifty cents", "20.50"),
    ("twenty dollars and five cents", "20.05"),
    ("a dollar fifty", "1.50"),
    ("one dollar and one cent", "1.01"),
    ("five dollars and zero cents", "5.00"),
    ("fifty cents", "0.50"),
    ("ninety nine cents", "0.99"),
    ("one cent", "0.01"),
    ("one fifty and fifty cents", "150.50"),
    ("three twenty one and seventy two cents", "321.72"),
    ("one fifty dollars", "150.00"),
    ("three twenty one dollars", "321.00"),
    ("three twenty one dollars and seventy two cents", "321.72"),
    # "point"
    ("one fifty point five", "150.50"),
    ("one hundred fifty point five zero", "150.50"),
    ("twenty point oh five", "20.05"),
    ("twenty point five dollars", "20.50"),
    ("150 point 5", "150.50"),
    # hundreds grouping: <1-9> <10-99> = hundreds
    ("one fifty", "150.00"),
    ("two fifty", "250.00"),
    ("three twenty one", "321.00"),
    ("four oh five", "405.00"),
    ("nine ninety nine", "999.00"),
    ("five twenty", "520.00"),
    ("one eleven", "111.00"),
    # <10-99> <10-99> = dollars and cents
    ("twelve fifty", "12.50"),
    ("nineteen ninety nine", "19.99"),
    ("ten fifty", "10.50"),
    ("twenty five fifty", "25.50"),
    ("forty five thirty", "45.30"),
    ("ninety nine ninety nine", "99.99"),
    ("twelve oh five", "12.05"),
    # <1-9> <10-99> <10-99> = hundreds and cents
    ("one fifty fifty", "150.50"),
    ("three twenty one seventy two", "321.72"),
    ("two forty nine ninety nine", "249.99"),
    ("four oh five oh five", "405.05"),
    ("one fifty ten", "150.10"),
    # cardinal with a scale word, then cents
    ("one hundred fifty fifty", "150.50"),
    ("a hundred fifty seventy two", "150.72"),
    ("one thousand two hundred fifty fifty", "1250.50"),
    ("two thousand ten fifty", "2010.50"),
    # filler around numbers
    ("I'd like to pay $150 please", "150.00"),
    ("i'd like to pay one hundred fifty dollars", "150.00"),
    ("um one fifty", "150.00"),
    ("uh a hundred and fifty dollars please", "150.00"),
    ("I want to pay 200 today", "200.00"),
    ("let's do 200", "200.00"),
    ("how about fifty dollars", "50.00"),
    ("make it seventy five", "75.00"),
    ("make a payment of $321.72", "321.72"),
    ("i'll pay 100 now", "100.00"),
    ("just fifty dollars", "50.00"),
    ("ok 300", "300.00"),
    ("yes 150", "150.00"),
    ("can I pay twenty dollars", "20.00"),
    ("i can only pay fifty", "50.00"),
    ("I'm going to pay 80 dollars", "80.00"),
    ("fifty dollars even", "50.00"),
    ("exactly 99.99", "99.99"),
    ("pay 150 dollars thank you", "150.00"),
    ("So, um, $42.", "42.00"),
    ("One Hundred Fifty Dollars", "150.00"),
    ("I\u2019ll pay $20", "20.00"),
]


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_amount(text, expected):
    parsed = parse_amount(text)
    assert parsed == AmountParse("amount", Decimal(expected))
    assert isinstance(parsed.amount, Decimal)
    assert parsed.amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "text",
    [
        "the full balance",
        "full balance",
        "the balance",
        "balance",
        "my balance",
        "all of it",
        "all",
        "all of my balance",
        "the whole thing",
        "the entire balance",
        "the whole balance",
        "everything",
        "pay it off",
        "pay it all off",
        "pay off my balance",
        "pay off",
        "the full amount",
        "the total",
        "the total balance",
        "the outstanding balance",
        "the remaining balance",
        "full",
        "in full",
        "pay in full",
        "pay it in full",
        "pay the balance in full",
        "what I owe",
        "everything I owe",
        "I'd like to pay the full balance please",
        "i want to pay it all",
        "just pay it off",
        "pay everything",
        "um the whole lot",
        "I'll pay the full amount today",
        "100 percent",
        "one hundred percent",
        "100%",
    ],
)
def test_full_balance(text):
    assert parse_amount(text, balance=BALANCE) == AmountParse("full_balance", BALANCE)
    assert parse_amount(text) == AmountParse("full_balance", None)


@pytest.mark.parametrize(
    "text",
    [
        "the minimum",
        "minimum",
        "min",
        "minimum payment",
        "the minimum payment",
        "just the minimum",
        "the minimum amount",
        "the minimum due",
        "the minimum amount due",
        "the minimum payment due",
        "I'll just pay the minimum",
        "only the minimum please",
        "the least I can pay",
        "the lowest amount",
        "the smallest payment possible",
        "i want to make the minimum payment",
    ],
)
def test_minimum(text):
    assert parse_amount(text, minimum=MINIMUM) == AmountParse("minimum", MINIMUM)
    assert parse_amount(text) == AmountParse("minimum", None)


FRACTIONS = [
    ("half", "0.5", "160.86"),
    ("half of it", "0.5", "160.86"),
    ("a half", "0.5", "160.86"),
    ("one half", "0.5", "160.86"),
    ("half the balance", "0.5", "160.86"),
    ("half of the balance", "0.5", "160.86"),
    ("half of my balance", "0.5", "160.86"),
    ("half of what I owe", "0.5", "160.86"),
    ("pay half", "0.5", "160.86"),
    ("I'd like to pay half of it please", "0.5", "160.86"),
    ("a quarter", "0.25", "80.43"),
    ("a quarter of the balance", "0.25", "80.43"),
    ("three quarters", "0.75", "241.29"),
    ("a fourth", "0.25", "80.43"),
    ("a fifth", "0.2", "64.34"),
    ("a tenth", "0.1", "32.17"),
    ("25 percent", "0.25", "80.43"),
    ("25%", "0.25", "80.43"),
    ("twenty five percent", "0.25", "80.43"),
    ("fifty percent of my balance", "0.5", "160.86"),
    ("10 per cent", "0.1", "32.17"),
    ("12.5%", "0.125", "40.22"),
    ("1 percent", "0.01", "3.22"),
]


@pytest.mark.parametrize(("text", "share", "amount"), FRACTIONS)
def test_fraction(text, share, amount):
    parsed = parse_amount(text, balance=BALANCE)
    assert parsed == AmountParse("fraction", Decimal(amount), Decimal(share))
    assert parse_amount(text) == AmountParse("fraction", None, Decimal(share))


@pytest.mark.parametrize(
    ("text", "amount"),
    [("a third", "107.24"), ("one third", "107.24"), ("two thirds", "214.48")],
)
def test_thirds_round_to_cents(text, amount):
    parsed = parse_amount(text, balance=BALANCE)
    assert parsed.kind == "fraction"
    assert parsed.amount == Decimal(amount)


@pytest.mark.parametrize(
    ("balance", "expected"),
    [("0.01", "0.01"), ("0.03", "0.02"), ("10.01", "5.01"), ("1000", "500.00")],
)
def test_half_rounds_half_up(balance, expected):
    assert parse_amount("half", balance=Decimal(balance)).amount == Decimal(expected)


NOT_AMOUNTS = [
    # nothing to do with money
    "",
    "   ",
    "agent",
    "I don't know",
    "how much do I owe",
    "what's my balance",
    "yes",
    "no",
    "pay",
    "dollars",
    "cents",
    "$",
    "and",
    "um",
    "one and a half",
    "some",
    "a lot",
    "not sure",
    # negatives
    "minus 5",
    "minus five dollars",
    "negative fifty",
    "-5",
    "-$5",
    "$-5",
    "- 5",
    "pay -20",
    "(150)",
    # malformed typed numbers
    "12,50",
    "1,25",
    "1.234",
    "150.505",
    "1.2.3",
    "0150",
    "$$150",
    "150 50",
    "2k",
    "1e3",
    "\u0661\u0665\u0660",
    "150 euros",
    "\u20ac150",
    # ambiguous or ill-formed speech
    "one two",
    "one two three",
    "twelve fifty dollars",
    "twelve fifty fifty",
    "one fifty fifty fifty",
    "a hundred and fifty cents",
    "150 cents",
    "one hundred cents",
    "fifty dollars dollars",
    "five dollars cents",
    "twenty dollars and",
    "150.50 dollars and 50 cents",
    "fifty cents dollars",
    "cents fifty",
    "one point",
    "one point five five five",
    "third",
    "a third of a dollar",
    "two hundred percent",
    "0 percent",
    "150 percent",
    "about fifty dollars",
    "around 100",
    "fifty or sixty",
    "between 50 and 60",
    "the maximum",
    "the amount",
    "a hundred twenty three hundred",
    "one two dollars",
    "x" * 600,
]


@pytest.mark.parametrize("text", NOT_AMOUNTS)
def test_not_an_amount(text):
    assert parse_amount(text, balance=BALANCE, minimum=MINIMUM) == AmountParse("none")


def test_amount_parse_is_frozen():
    parsed = parse_amount("$5")
    with pytest.raises(AttributeError):
        parsed.kind = "none"  # type: ignore[misc]


def test_balance_does_not_change_a_stated_amount():
    assert parse_amount("150", balance=BALANCE, minimum=MINIMUM).amount == Decimal("150.00")


def test_non_string_is_not_an_amount():
    assert parse_amount(150.5).kind == "none"  # type: ignore[arg-type]
