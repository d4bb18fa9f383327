"""Digit strings, number words and yes/no answers (paybot.parsing)."""

from __future__ import annotations

import pytest

from paybot.parsing import parse_digit_string, parse_yes_no, words_to_number, words_to_ordinal

# --------------------------------------------------------------------------- words_to_number

CARDINALS = [
    ("zero", 0),
    ("one", 1),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("nineteen", 19),
    ("twenty", 20),
    ("twenty one", 21),
    ("twenty-one", 21),
    ("ninety nine", 99),
    ("a hundred", 100),
    ("one hundred", 100),
    ("one hundred and five", 105),
    ("one hundred five", 105),
    ("three hundred twenty one", 321),
    ("nine hundred ninety nine", 999),
    ("twelve hundred", 1200),
    ("twenty five hundred", 2500),
    ("a thousand", 1000),
    ("one thousand", 1000),
    ("two thousand", 2000),
    ("one thousand and five", 1005),
    ("one thousand two hundred fifty", 1250),
    ("one hundred thousand", 100_000),
    ("nine hundred ninety nine thousand nine hundred ninety nine", 999_999),
    ("a million", 1_000_000),
    ("one million two hundred thousand and five", 1_200_005),
    ("two million three", 2_000_003),
    ("2 thousand", 2000),
    ("5 hundred", 500),
    ("250 thousand", 250_000),
    ("42", 42),
    ("0", 0),
]


@pytest.mark.parametrize(("words", "expected"), CARDINALS)
def test_words_to_number(words, expected):
    assert words_to_number(words.split()) == expected


@pytest.mark.parametrize(
    "words",
    [
        "",
        "one two",
        "twenty thirty",
        "twenty eleven",
        "hundred",
        "thousand",
        "a",
        "and",
        "and five",
        "one hundred and",
        "zero zero",
        "zero hundred",
        "five hundred six hundred",
        "one thousand one million",
        "one thousand two thousand",
        "twelve hundred thousand",
        "one million twelve hundred",
        "first",
        "twenty first",
        "007",
        "1,000",
        "one point five",
        "apple",
        "minus five",
        "-3",
        "twenty--one",
        "\u0663",
    ],
)
def test_words_to_number_rejects(words):
    assert words_to_number(words.split()) is None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("first", 1),
        ("second", 2),
        ("third", 3),
        ("twelfth", 12),
        ("twentieth", 20),
        ("twenty first", 21),
        ("twenty-second", 22),
        ("thirtieth", 30),
        ("thirty first", 31),
        ("one hundredth", 100),
        ("1st", 1),
        ("2nd", 2),
        ("3rd", 3),
        ("21st", 21),
        ("31st", 31),
    ],
)
def test_words_to_ordinal(words, expected):
    assert words_to_ordinal(words.split()) == expected


@pytest.mark.parametrize(
    "words", ["", "one", "twenty", "twenty eleventh", "one first", "hundredth", "0th", "1s"]
)
def test_words_to_ordinal_rejects(words):
    assert words_to_ordinal(words.split()) is None


# ------------------------------------------------------------------------ parse_digit_string

DIGIT_STRINGS = [
    # spoken digit by digit
    ("one two three four five", "12345"),
    ("zero", "0"),
    ("oh", "0"),
    ("o", "0"),
    ("nought", "0"),
    ("one oh one", "101"),
    ("nine oh two one oh", "90210"),
    ("zero one two", "012"),
    ("oh oh seven", "007"),
    # doubles and triples
    ("double five", "55"),
    ("triple seven", "777"),
    ("treble two", "222"),
    ("double oh seven", "007"),
    ("four double five six", "4556"),
    ("one two double three triple four", "1233444"),
    ("double 5", "55"),
    # number words as chunks
    ("one zero zero two hundred three hundred", "100200300"),
    ("one hundred", "100"),
    ("a hundred", "100"),
    ("two thousand", "2000"),
    ("twenty one", "21"),
    ("twenty-one", "21"),
    ("nineteen", "19"),
    ("nineteen eighty four", "1984"),
    ("twenty twenty one", "2021"),
    ("one twenty three", "123"),
    ("one hundred twenty three", "123"),
    ("one hundred and five", "105"),
    ("one hundred one hundred", "100100"),
    ("two thousand five", "2005"),
    ("twelve hundred", "1200"),
    ("nine eleven", "911"),
    ("forty two forty two", "4242"),
    ("one thousand two hundred", "1200"),
    # typed
    ("100-200-300", "100200300"),
    ("100 200 300", "100200300"),
    ("100200300", "100200300"),
    ("007", "007"),
    ("(555) 123-4567", "5551234567"),
    ("1234.", "1234"),
    ("12345#", "12345"),
    ("100\u2013200", "100200"),
    # mixed
    ("one 0 0 two hundred 300", "100200300"),
    ("2 hundred", "200"),
    ("1 two 3", "123"),
    # filler
    ("my account number is one two three four", "1234"),
    ("it's 4 5 6", "456"),
    ("um one two uh three", "123"),
    ("er five five five", "555"),
    ("the number is 12345", "12345"),
    ("12345 please", "12345"),
    ("yeah it's one two three", "123"),
    ("My account number is 100-200-300.", "100200300"),
    ("my zip code is nine oh two one oh", "90210"),
    ("confirmation number one two three", "123"),
    ("so it is one two", "12"),
    ("ONE TWO THREE", "123"),
    ("i think it's 555", "555"),
    ("one two three thank you", "123"),
]


@pytest.mark.parametrize(("text", "expected"), DIGIT_STRINGS)
def test_parse_digit_string(text, expected):
    assert parse_digit_string(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "um",
        "my account number is",
        "I don't know",
        "agent",
        "representative",
        "no",
        "no it's one two three",
        "one two three no wait",
        "help",
        "what",
        "a",
        "double",
        "double twenty",
        "double five hundred",
        "triple",
        "hundred",
        "one hundred twenty three hundred",
        "one to three",
        "four for five",
        "1st",
        "12a34",
        "abc",
        "$100",
        "one point five",
        "minus five",
        "one two three and then something",
        "\u0663\u0664",
        "1" * 600,
    ],
)
def test_parse_digit_string_rejects(text):
    assert parse_digit_string(text) is None


def test_parse_digit_string_rejects_non_strings():
    assert parse_digit_string(None) is None  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- parse_yes_no

YES = [
    "yes",
    "Yes.",
    "YES!",
    "yeah",
    "yep",
    "yup",
    "sure",
    "correct",
    "that's right",
    "that is correct",
    "go ahead",
    "please do",
    "ok",
    "okay",
    "1",
    "one",
    "yes please",
    "yeah sure",
    "yes that's right",
    "um yes",
    "absolutely",
    "of course",
    "sounds good",
    "alright",
    "all right",
    "yes go ahead please",
    "uh huh",
    "that\u2019s correct",
    "1#",
    "right",
    "i do",
    "Y",
    "sure, why not",
    "alright then",
    "yes please do",
    "ok then",
    "fine by me",
]
NO = [
    "no",
    "No.",
    "nope",
    "nah",
    "not now",
    "don't",
    "do not",
    "wrong",
    "2",
    "two",
    "no thanks",
    "no thank you",
    "not yet",
    "that's wrong",
    "that's not right",
    "not correct",
    "incorrect",
    "no no",
    "um no",
    "please don't",
    "no way",
    "not really",
    "that is not correct",
    "N",
    "absolutely not",
    "of course not",
    "no do not",
]
NEITHER = [
    "",
    "um",
    "please",
    "maybe",
    "I don't know",
    "yes no",
    "yeah no",
    "no yes",
    "agent",
    "3",
    "12",
    "yes but",
    "what",
    "I'm not sure",
    "no problem",
    "not",
    "cancel",
    "yes!!! <script>",
    "then",
    "do",
    "why",
]


@pytest.mark.parametrize("text", YES)
def test_yes(text):
    assert parse_yes_no(text) is True


@pytest.mark.parametrize("text", NO)
def test_no(text):
    assert parse_yes_no(text) is False


@pytest.mark.parametrize("text", NEITHER)
def test_neither_yes_nor_no(text):
    assert parse_yes_no(text) is None
