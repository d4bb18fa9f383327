"""What the caller is expected to say next, as grammars for each ASR engine.

The bot tells the bridge what it listens for (free speech, digits, yes/no, an amount). Each
expectation becomes a JSGF grammar for PocketSphinx and a phrase list for Vosk's runtime
grammar (Vosk turns the list into a bigram model, so phrases are a bias, not a hard limit).
``FREE`` has no grammar: engines use their full language model. The words come from
:mod:`paybot.spoken`, the vocabulary the parsers read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import Enum
from functools import lru_cache

from paybot.spoken.fillers import GRAMMAR_FILLERS
from paybot.spoken.numbers import (
    DIGIT_WORDS,
    HUNDRED,
    TEENS,
    TENS,
    THOUSAND,
    UNITS,
    ZERO,
    number_to_words,
)
from paybot.spoken.yes_no import GRAMMAR_NO, GRAMMAR_YES


class ExpectedInput(str, Enum):
    """What the bot expects the caller to say in the next turn."""

    FREE = "free"
    DIGITS = "digits"
    YES_NO = "yes_no"
    AMOUNT = "amount"

    @classmethod
    def parse(cls, value: ExpectedInput | str | None) -> ExpectedInput:
        """Accept an enum member, its value, or ``None`` (meaning ``FREE``).

        Raises:
            ValueError: For an unknown name.
        """
        if value is None:
            return cls.FREE
        return value if isinstance(value, cls) else cls(str(value))


# What a listening caller says over the bot ("mhm"): heard as such, not forced into yes or no.
BACKCHANNEL_WORDS = GRAMMAR_FILLERS
YES_PHRASES = GRAMMAR_YES
NO_PHRASES = GRAMMAR_NO
# What a caller may ask for at any question (agent, goodbye, repeat, balance): every grammar
# for a constrained answer hears them too, so "goodbye" is never forced into an amount. The
# yes/no and amount grammars also take them after a "no" ("no, what's my balance").
ANYTIME_PHRASES: tuple[str, ...] = (
    "agent",
    "an agent",
    "operator",
    "representative",
    "talk to a person",
    "goodbye",
    "bye",
    "repeat",
    "repeat that",
    "say that again",
    "balance",
    "my balance",
    "what's my balance",
    "what is my balance",
    "how much do i owe",
)
AMOUNT_SPECIAL_PHRASES: tuple[str, ...] = (
    "the full amount",
    "full amount",
    "the full balance",
    "the whole balance",
    "the minimum",
    "the minimum payment",
    "all of it",
)
_ONES = [word for word, value in UNITS.items() if value]


def _alts(words: Iterable[str]) -> str:
    return " | ".join(words)


def _jsgf_digits() -> str:
    # "oh" is left out on purpose: with PocketSphinx's en-us model it turned short silences
    # and breaths into inserted zeros (FSDD digit strings: 41% digit errors with it, 28% without).
    words = sorted(w for w in DIGIT_WORDS if w in UNITS)
    return (
        "#JSGF V1.0;\ngrammar digits;\npublic <answer> = <digits> | <anytime>;\n"
        f"<digits> = <digit>+;\n<digit> = {_alts(words)};\n<anytime> = {_alts(ANYTIME_PHRASES)};\n"
    )


def _jsgf_yes_no() -> str:
    return (
        "#JSGF V1.0;\ngrammar yes_no;\n"
        "public <answer> = <yes> | <no> | <backchannel> | [no] <anytime>;\n"
        f"<yes> = {_alts(YES_PHRASES)};\n"
        f"<no> = {_alts(NO_PHRASES)};\n"
        f"<backchannel> = {_alts(BACKCHANNEL_WORDS)};\n"
        f"<anytime> = {_alts(ANYTIME_PHRASES)};\n"
    )


def _jsgf_amount() -> str:
    return (
        "#JSGF V1.0;\ngrammar amount;\n"
        "public <answer> = <amount> | [no] <anytime>;\n"
        "<amount> = <money> | <special>;\n"
        "<money> = <number> [<dollars> [[and] <n99> <cents>]] | <n99> <cents>"
        " | <number> point <digit> [<digit>] [<dollars>];\n"
        f"<number> = {ZERO} | <n999> {THOUSAND} [[and] <n999>] | <n999>;\n"
        f"<n999> = (<digit> | a) {HUNDRED} [[and] <n99>] | <n99>;\n"
        f"<n99> = <digit> | {_alts(TEENS)} | <tens> [<digit>];\n"
        f"<tens> = {_alts(TENS)};\n"
        f"<digit> = {_alts(_ONES)};\n"
        "<dollars> = dollars | dollar | bucks;\n"
        "<cents> = cents | cent;\n"
        f"<special> = {_alts(AMOUNT_SPECIAL_PHRASES)};\n"
        f"<anytime> = {_alts(ANYTIME_PHRASES)};\n"
    )


def jsgf(expected: ExpectedInput | str) -> str | None:
    """Return the JSGF grammar for an expectation, or ``None`` for free speech."""
    builders = {
        ExpectedInput.DIGITS: _jsgf_digits,
        ExpectedInput.YES_NO: _jsgf_yes_no,
        ExpectedInput.AMOUNT: _jsgf_amount,
    }
    builder = builders.get(ExpectedInput.parse(expected))
    return builder() if builder else None


def _amount_phrases() -> list[str]:
    """Phrases whose bigrams cover spoken amounts ("... hundred forty two dollars and ...")."""
    small = [number_to_words(n) for n in range(1, 100)]
    phrases = [f"{w} dollars" for w in small] + [f"and {w} cents" for w in small]
    phrases += [f"{w} {HUNDRED}" for w in _ONES] + [f"{HUNDRED} {w}" for w in small]
    phrases += [f"{w} {THOUSAND}" for w in small] + [f"{THOUSAND} {w}" for w in small]
    phrases += ["one dollar", "one cent", "a hundred", "hundred dollars", "thousand dollars"]
    phrases += [f"{w} point" for w in small] + [f"point {w}" for w in _ONES]
    return phrases + list(AMOUNT_SPECIAL_PHRASES)


@lru_cache(maxsize=8)
def _vosk_phrases(expected: ExpectedInput) -> tuple[str, ...] | None:
    if expected is ExpectedInput.DIGITS:
        words = sorted(DIGIT_WORDS)
        return tuple(words + [f"{a} {b}" for a in words for b in words]) + ANYTIME_PHRASES
    if expected is ExpectedInput.YES_NO:
        return YES_PHRASES + NO_PHRASES + ANYTIME_PHRASES + tuple(
            f"no {p}" for p in ANYTIME_PHRASES
        )
    if expected is ExpectedInput.AMOUNT:
        return tuple(_amount_phrases()) + ANYTIME_PHRASES
    return None


def vosk_phrases(expected: ExpectedInput | str) -> list[str] | None:
    """Return the Vosk phrase list for an expectation (with ``[unk]``), or ``None`` for free.

    Digits are listed as every single word and every ordered pair, so the bigram Vosk builds
    is uniform over digit sequences of any length. ``[unk]`` lets noise and off-grammar
    words fall outside the phrase list instead of being forced onto it (vosk-api#1934).
    """
    phrases = _vosk_phrases(ExpectedInput.parse(expected))
    return None if phrases is None else [*phrases, "[unk]"]


def vosk_grammar_json(expected: ExpectedInput | str) -> str | None:
    """Return :func:`vosk_phrases` as the JSON string ``KaldiRecognizer`` expects."""
    phrases = vosk_phrases(expected)
    return None if phrases is None else json.dumps(phrases)


def vocabulary(expected: ExpectedInput | str) -> set[str]:
    """Return every word a grammar can produce (``[unk]`` excluded; empty for free)."""
    phrases = vosk_phrases(expected) or []
    words = {w for p in phrases for w in p.split() if w != "[unk]"}
    grammar = jsgf(expected)
    if grammar:
        body = grammar.split(";", 2)[2]
        words |= {w for w in _jsgf_words(body)}
    return words


def _jsgf_words(body: str) -> list[str]:
    """Return the terminal words in a JSGF rule body (rule names and operators dropped)."""
    cleaned = body
    for token in ("public", "=", "|", "(", ")", "[", "]", "+", "*", ";"):
        cleaned = cleaned.replace(token, " ")
    return [w for w in cleaned.split() if not w.startswith("<")]


def words_to_digits(text: str) -> str:
    """Map a digit-word transcript to digits: "four two oh seven" → "4207".

    Words that are not digit words are ignored; numerals pass through.
    """
    out = []
    for word in text.lower().split():
        if word in DIGIT_WORDS:
            out.append(DIGIT_WORDS[word])
        elif word.isdigit():
            out.append(word)
    return "".join(out)
