"""What the caller is expected to say next, as grammars for each ASR engine.

The bot tells the bridge what it listens for (free speech, digits, yes/no, an amount). Each
expectation becomes a JSGF grammar for PocketSphinx and a phrase list for Vosk's runtime
grammar (Vosk turns the list into a bigram model, so phrases are a bias, not a hard limit).
``FREE`` has no grammar: engines use their full language model.
"""

from __future__ import annotations

import json
from enum import Enum
from functools import lru_cache

from voice_bridge.tts.normalize import number_to_words


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


DIGIT_WORDS: dict[str, str] = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# What a listening caller says over the bot ("mhm"): heard as such, not forced into yes or no.
BACKCHANNEL_WORDS: tuple[str, ...] = ("mm", "hmm", "mhm", "uh-huh", "um", "uh")
YES_PHRASES: tuple[str, ...] = (
    "yes",
    "yeah",
    "yep",
    "yes please",
    "yes it is",
    "yes that's right",
    "that's right",
    "that is right",
    "correct",
    "that's correct",
    "right",
    "sure",
    "okay",
    "absolutely",
    "go ahead",
    "of course",
)
NO_PHRASES: tuple[str, ...] = (
    "no",
    "nope",
    "no thanks",
    "no thank you",
    "no it isn't",
    "no it's not",
    "not now",
    "not yet",
    "that's wrong",
    "wrong",
    "incorrect",
    "not right",
)
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
_ONES = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _alts(words: tuple[str, ...] | list[str]) -> str:
    return " | ".join(words)


def _jsgf_digits() -> str:
    # "oh" is left out on purpose: with PocketSphinx's en-us model it turned short silences
    # and breaths into inserted zeros (FSDD digit strings: 41% digit errors with it, 28% without).
    words = sorted(w for w in DIGIT_WORDS if w != "oh")
    return (
        "#JSGF V1.0;\ngrammar digits;\npublic <digits> = <digit>+ | <anytime>;\n"
        f"<digit> = {_alts(words)};\n<anytime> = {_alts(ANYTIME_PHRASES)};\n"
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
        "public <amount> = <money> | <special> | [no] <anytime>;\n"
        "<money> = <number> [<dollars>] [[and] <number> <cents>] | <number> <cents>"
        " | <number> point <digit> [<digit>] [<dollars>];\n"
        "<number> = <n999> thousand [[and] <n999>] | <n999>;\n"
        "<n999> = (<digit> | a) hundred [[and] <n99>] | <n99>;\n"
        f"<n99> = zero | <digit> | {_alts(_TEENS)} | <tens> [<digit>];\n"
        f"<tens> = {_alts(_TENS)};\n"
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
    phrases += [f"{w} hundred" for w in _ONES] + [f"hundred {w}" for w in small]
    phrases += [f"{w} thousand" for w in small] + [f"thousand {w}" for w in small]
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
