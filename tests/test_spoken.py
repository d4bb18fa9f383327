"""The one spoken vocabulary (paybot.spoken): what the bot says, hears and reads agree.

Round trips with seeded generators (the TTS normaliser's words read back by the parsers), every
phrase the ASR grammars accept read as what the grammar means, and the modules that speak,
listen or read using the shared word lists rather than copies of their own.
"""

from __future__ import annotations

import ast
import random
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from paybot.parsing import (
    card_numbers,
    digits,
    parse_amount,
    parse_date,
    parse_digit_string,
    parse_yes_no,
    words_to_number,
    words_to_ordinal,
    yesno,
)
from paybot.parsing.yesno import is_filler
from paybot.spoken import fillers, months, numbers, yes_no
from tests import jsgf
from voice_bridge.asr import grammars
from voice_bridge.asr.grammars import ExpectedInput, words_to_digits
from voice_bridge.tts.normalize import (
    date_to_words,
    normalize_for_speech,
    number_to_words,
    ordinal_to_words,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = range(5)


def _random_number(rng: random.Random, top: int = 999_999_999) -> int:
    """0..top, every order of magnitude about as likely (a uniform draw is almost all 9 digits)."""
    return rng.randint(0, 10 ** rng.randint(0, len(str(top)))) % (top + 1)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_numbers_read_back_as_spoken(seed: int) -> None:
    rng = random.Random(seed)
    for n in [0, 999_999_999, *(_random_number(rng) for _ in range(2000))]:
        words = number_to_words(n)
        assert words_to_number(words.split()) == n, words
        assert number_to_words(words_to_number(words.split())) == words


def _said_otherwise(n: int, rng: random.Random) -> list[str]:
    """``n`` as callers also say it: "a hundred", "... and five", "twenty-one"."""
    words = number_to_words(n).split()
    big = [i for i, w in enumerate(words) if w == numbers.HUNDRED or w in numbers.SCALES]
    if big and big[0] == 1 and words[0] == "one" and rng.random() < 0.5:
        words[0] = "a"
    if big and big[-1] + 1 < len(words) and rng.random() < 0.5:
        words.insert(big[-1] + 1, "and")
    out: list[str] = []
    for word in words:
        if out and out[-1] in numbers.TENS and word in numbers.UNITS and rng.random() < 0.5:
            out[-1] += f"-{word}"
        else:
            out.append(word)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_numbers_read_the_same_said_other_ways(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1000):
        n = _random_number(rng)
        said = _said_otherwise(n, rng)
        assert words_to_number(said) == n, said


@pytest.mark.parametrize("seed", SEEDS)
def test_ordinals_both_ways(seed: int) -> None:
    rng = random.Random(seed)
    for n in [1, 2, 3, 12, 20, 100, *(_random_number(rng) or 1 for _ in range(1000))]:
        words = ordinal_to_words(n)
        assert words_to_ordinal(words.split()) == n, words
        assert ordinal_to_words(words_to_ordinal(words.split())) == words


def test_every_cardinal_word_has_its_ordinal() -> None:
    assert set(numbers.ORDINALS.values()) == numbers.NUMBER_WORDS
    assert [words_to_ordinal([word]) for word in list(numbers.ORDINALS)[1:21]] == list(range(1, 21))


@pytest.mark.parametrize("seed", SEEDS)
def test_amounts_read_back_as_the_bot_says_them(seed: int) -> None:
    rng = random.Random(seed)
    cases = [Decimal("0"), Decimal("0.01"), Decimal("1"), Decimal("999999999.99")]
    cases += [Decimal(_random_number(rng, 99_999_999_999)) / 100 for _ in range(1000)]
    for amount in cases:
        spoken = normalize_for_speech(f"${amount:,.2f}")
        assert not re.search(r"[0-9]", spoken), spoken
        parsed = parse_amount(spoken)
        assert (parsed.kind, parsed.amount) == ("amount", amount), spoken


def test_months_both_ways() -> None:
    for number in range(1, 13):
        name = months.month_name(number)
        assert months.MONTH_NUMBERS[name.lower()] == number
        assert date_to_words(date(2026, number, 1)) == f"{name} first"
    for word, number in months.MONTH_NUMBERS.items():
        assert months.month_name(number).lower() == months.ABBREVIATIONS.get(word, word)
    with pytest.raises(ValueError):
        months.month_name(13)


@pytest.mark.parametrize("seed", SEEDS)
def test_dates_read_back_as_the_bot_says_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        day = date(2000, 1, 1) + timedelta(days=rng.randrange(36525))
        assert parse_date(date_to_words(day, with_year=True), today=date(2026, 1, 1)) == day
        today = day - timedelta(days=rng.randrange(365))
        assert parse_date(date_to_words(day), today=today) == day, (day, today)


# --- every grammar phrase reads as what the grammar means -----------------------------------


def _rules(expected: ExpectedInput) -> dict[str, jsgf.Expr]:
    return jsgf.parse(grammars.jsgf(expected) or "")


def test_every_yes_no_grammar_phrase_reads_as_its_answer() -> None:
    rules = _rules(ExpectedInput.YES_NO)
    assert set(jsgf.all_phrases(rules, "yes")) == set(yes_no.GRAMMAR_YES)
    assert set(jsgf.all_phrases(rules, "no")) == set(yes_no.GRAMMAR_NO)
    for phrase in jsgf.all_phrases(rules, "yes"):
        assert parse_yes_no(phrase) is True, phrase
    for phrase in jsgf.all_phrases(rules, "no"):
        assert parse_yes_no(phrase) is False, phrase
    for phrase in jsgf.all_phrases(rules, "backchannel"):
        assert is_filler(phrase), phrase
    vosk = [p for p in grammars.vosk_phrases(ExpectedInput.YES_NO) or [] if p != "[unk]"]
    vosk = [p for p in vosk if p.removeprefix("no ") not in grammars.ANYTIME_PHRASES]
    assert {parse_yes_no(p) for p in vosk} == {True, False}
    assert [p for p in vosk if parse_yes_no(p) is None] == []


@pytest.mark.parametrize("seed", SEEDS)
def test_every_digit_grammar_phrase_reads_as_its_digits(seed: int) -> None:
    rules, rng = _rules(ExpectedInput.DIGITS), random.Random(seed)
    phrases = [jsgf.random_phrase(rules, "digits", rng).text() for _ in range(300)]
    phrases += [
        p
        for p in grammars.vosk_phrases(ExpectedInput.DIGITS) or []
        if p != "[unk]" and p not in grammars.ANYTIME_PHRASES  # "agent" is no digit
    ]
    for phrase in phrases:
        expected = "".join(numbers.DIGIT_WORDS[word] for word in phrase.split())
        assert words_to_digits(phrase) == expected
        assert parse_digit_string(phrase) == expected, phrase


_NUMBER_RULES = {"number", "n999", "n99", "tens", "digit"}


def _value(node: jsgf.Node) -> int:
    """What a number rule's words mean, read off the grammar's own structure."""
    total = current = 0
    for child in node.children:
        if isinstance(child, jsgf.Node):
            current += _value(child)
        elif child == "a":
            current += 1
        elif child == "hundred":
            current *= 100
        elif child in numbers.SCALES:
            total, current = total + current * numbers.SCALES[child], 0
        elif child != "and":
            current += {**numbers.UNITS, **numbers.TEENS, **numbers.TENS}[child]
    return total + current


def _meaning(money: jsgf.Node) -> Decimal:
    """The sum a <money> phrase names: dollars, "and ... cents", "... point five"."""
    values = [
        _value(c) if isinstance(c, jsgf.Node) else 0
        for c in money.children
        if isinstance(c, jsgf.Node) and c.rule in _NUMBER_RULES or c == "zero"
    ]
    rules = [c.rule for c in money.children if isinstance(c, jsgf.Node)]
    if "point" in money.children:
        return values[0] + Decimal(int("".join(map(str, values[1:])).ljust(2, "0"))) / 100
    if "cents" in rules:
        return (values[0] if len(values) == 2 else 0) + Decimal(values[-1]) / 100
    return Decimal(values[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_every_amount_grammar_phrase_reads_as_its_sum(seed: int) -> None:
    rules, rng = _rules(ExpectedInput.AMOUNT), random.Random(seed)
    for _ in range(1500):
        (phrase,) = jsgf.random_phrase(rules, "amount", rng).children
        assert isinstance(phrase, jsgf.Node)
        parsed = parse_amount(phrase.text(), balance=Decimal("500"), minimum=Decimal("25"))
        if phrase.rule == "special":
            assert parsed.kind in ("full_balance", "minimum"), phrase.text()
        else:
            assert (parsed.kind, parsed.amount) == ("amount", _meaning(phrase)), phrase.text()


def test_amount_phrase_lists_use_only_vocabulary_words() -> None:
    """The Vosk amount list (bigram pieces, not whole answers) speaks the parsers' words."""
    known = numbers.NUMBER_WORDS | {"a", "and", "point", "dollar", "dollars", "cent", "cents"}
    known |= {w for p in grammars.AMOUNT_SPECIAL_PHRASES for w in p.split()}
    known |= {w for p in grammars.ANYTIME_PHRASES for w in p.split()}  # "goodbye": no amount
    words = {w for p in grammars.vosk_phrases(ExpectedInput.AMOUNT) or [] for w in p.split()}
    assert words - {"[unk]"} <= known


# --- one vocabulary, used everywhere --------------------------------------------------------


def test_the_readers_and_the_grammars_share_the_word_lists() -> None:
    assert yesno.YES_PHRASES is yes_no.YES_PHRASES
    assert yesno.NO_PHRASES is yes_no.NO_PHRASES
    assert yesno.NEUTRAL_PHRASES is yes_no.NEUTRAL_PHRASES
    assert yesno.FILLERS is fillers.FILLERS
    assert grammars.YES_PHRASES is yes_no.GRAMMAR_YES
    assert grammars.NO_PHRASES is yes_no.GRAMMAR_NO
    assert grammars.BACKCHANNEL_WORDS is fillers.GRAMMAR_FILLERS
    assert grammars.DIGIT_WORDS is numbers.DIGIT_WORDS
    assert card_numbers.HESITATIONS is fillers.HESITATIONS
    assert digits.ZERO_WORDS is numbers.ZERO_WORDS and digits.REPEATS is numbers.REPEATS
    assert fillers.HESITATIONS | fillers.BACKCHANNELS <= digits.FILLER


def test_the_vocabulary_is_consistent() -> None:
    assert set(yes_no.GRAMMAR_YES) <= yes_no.YES_PHRASES
    assert set(yes_no.GRAMMAR_NO) <= yes_no.NO_PHRASES
    assert not yes_no.YES_PHRASES & yes_no.NO_PHRASES
    assert not yes_no.NEUTRAL_PHRASES & (yes_no.YES_PHRASES | yes_no.NO_PHRASES)
    assert set(fillers.GRAMMAR_FILLERS) <= fillers.FILLERS
    assert all(is_filler(f) for f in fillers.FILLERS)
    assert not fillers.HESITATIONS & numbers.ZERO_WORDS  # "oh" is a zero, not a hesitation
    assert set(numbers.DIGIT_WORDS) <= numbers.ZERO_WORDS | set(numbers.UNITS)


# Every word the vocabulary owns; a literal made of them elsewhere is a copy.
_OWNED = (
    numbers.NUMBER_WORDS
    | set(numbers.ORDINALS)
    | numbers.ZERO_WORDS
    | set(numbers.REPEATS)
    | set(months.MONTH_NUMBERS)
    | fillers.FILLERS
) - {"o", "may"}  # a letter and a verb: too common to flag
_NUMBER_OR_MONTH = (numbers.NUMBER_WORDS | set(numbers.ORDINALS) | set(months.MONTHS)) - {"may"}


def vocabulary_literals(source: str) -> list[str]:
    """String literals (docstrings aside) that copy the spoken vocabulary: a literal that is
    one of its words or phrases ("seven", "uh huh"), or that names two or more different
    number words or months ("one|two|three", "january february")."""
    tree = ast.parse(source)
    # Docstrings, attribute docstrings included: every string that is a statement of its own.
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in docstrings:
            continue
        text = node.value.strip().lower()
        words = set(re.findall(r"[a-z]+", text))
        if text in _OWNED or len(words & _NUMBER_OR_MONTH) >= 2:
            found.append((node.lineno, node.col_offset, node.value))
    return [f"{line}: {value!r}" for line, _, value in sorted(found)]


def test_the_literal_check_finds_copies() -> None:
    source = 'D = {"seven": 7}\nF = ("uh", "um")\nR = r"(?:one|two)"\nS = "say it"\n'
    assert vocabulary_literals(source) == ["1: 'seven'", "2: 'uh'", "2: 'um'", "3: '(?:one|two)'"]


# Literals that are not the vocabulary where they stand: "the one on Oak" (a pronoun), the
# PocketSphinx option naming its acoustic model, the capture's "the four digit security code".
_NOT_COPIES = {
    ("addresses.py", "one"),
    ("pocketsphinx_engine.py", "hmm"),
    ("wording.py", "four"),
    ("wording.py", "three"),
}


def test_no_vocabulary_literals_outside_paybot_spoken() -> None:
    packages = [p.parent for p in ROOT.glob("*/__init__.py")]
    packages = [p for p in packages if p.name not in ("tests", "bench")]
    copies = {}
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            if path.is_relative_to(ROOT / "paybot" / "spoken"):
                continue
            found = [
                literal
                for literal in vocabulary_literals(path.read_text(encoding="utf-8"))
                if not any(
                    path.name.endswith(name) and literal.endswith(f": {word!r}")
                    for name, word in _NOT_COPIES
                )
            ]
            if found:
                copies[str(path.relative_to(ROOT))] = found
    assert copies == {}
