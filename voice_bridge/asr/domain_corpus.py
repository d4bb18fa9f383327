"""The conversation's own words, as training sentences for the free-speech language model.

Sources: the Rasa NLU examples (``nlu_data/*.yml``: intent examples and synonyms, entity markup
stripped) and the phrases of the per-turn grammars in :mod:`voice_bridge.asr.grammars`. Each
example is rewritten the way a caller would *say* it: lower case, ``$150.50`` as "one hundred
fifty dollars and fifty cents", ``12/3`` as "december third", ``15th`` as "fifteenth", digit runs
of four or more read digit by digit, common text abbreviations ("acct", "pls", "w/") expanded.
Words the recogniser's dictionary lacks split a sentence in two, so the model never learns a
word pair that was not really adjacent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import yaml

from paybot.spoken.months import ABBREVIATIONS as MONTH_ABBREVIATIONS
from paybot.spoken.months import MONTHS
from paybot.spoken.numbers import number_to_words, ordinal_to_words, year_to_words
from voice_bridge.asr.grammars import (
    AMOUNT_SPECIAL_PHRASES,
    NO_PHRASES,
    YES_PHRASES,
    ExpectedInput,
    vosk_phrases,
)
from voice_bridge.tts.normalize import amount_to_words

Sentence = tuple[tuple[str, ...], float]
"""A sentence's words and its weight (an NLU example counts 1)."""

GRAMMAR_LIST_WEIGHT = 0.1
"""Weight of each phrase in the combinatorial grammar lists (digit pairs, amount pieces).

Those lists are there for coverage ("... forty two dollars"), not frequency: at full weight
their few hundred phrases would outweigh the NLU examples and make "dollars" and digits the
most likely words of all. Measured in ``bench/bench_asr.py``.
"""

_ENTITY_RE = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
_MONEY_RE = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)|(\d[\d,]*(?:\.\d{1,2})?)\s?\$")
_DATE_RE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d{1,2})\b")
_GROUPED_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_RE = re.compile(r"\d+")
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
_ABBREVIATIONS = {
    "acct": "account",
    "amt": "amount",
    "pmt": "payment",
    "pmts": "payments",
    "sched": "schedule",
    "echeck": "e check",
    "msg": "message",
    "txt": "text",
    "wk": "week",
    "tmrw": "tomorrow",
    "rn": "right now",
    "nvm": "never mind",
    "smth": "something",
    "wut": "what",
    "ovr": "over",
    "tnx": "thanks",
    "tysm": "thank you so much",
    "cya": "see you",
    "ttyl": "talk to you later",
    "helo": "hello",
    "thats": "that's",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "ty": "thank you",
    "ur": "your",
    "u": "you",
    "r": "are",
    "w": "west",
    "st": "street",
    "ave": "avenue",
    "rd": "road",
    "ach": "a c h",
    "cc": "c c",
    "id": "i'd",
    "im": "i'm",
    "ill": "i'll",
    "whats": "what's",
    "dont": "don't",
    "cant": "can't",
    "wanna": "want to",
    "gonna": "going to",
    "tue": "tuesday",
    "tues": "tuesday",
    "thu": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    **MONTH_ABBREVIATIONS,
}


def nlu_examples(paths: Iterable[Path]) -> Iterator[str]:
    """Yield the plain text of every intent and synonym example in Rasa 3 NLU YAML files.

    Regexes and lookup tables are skipped, and so are ``EXTERNAL:`` system events (the bridge
    sends those; no caller says them). Entity markup is removed: ``[4242](last4)`` → ``4242``.

    Raises:
        ValueError: If a file is not valid YAML.
        OSError: If a file cannot be read.
    """
    for path in sorted(paths):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path.name} is not valid YAML: {exc}") from exc
        for item in data.get("nlu") or []:
            if not isinstance(item, dict) or not ({"intent", "synonym"} & item.keys()):
                continue
            for line in str(item.get("examples") or "").splitlines():
                text = line.strip()
                if text.startswith("- ") and not text[2:].lstrip().startswith("EXTERNAL:"):
                    yield strip_entities(text[2:].strip())


def strip_entities(text: str) -> str:
    """Remove Rasa entity markup: ``pay [50](amount)`` and ``[x]{"entity": ...}`` keep the text."""
    return _ENTITY_RE.sub(r"\1", text)


def spoken_words(text: str) -> list[str]:
    """Rewrite one written example as the lower-case words a caller would say."""
    text = text.lower().replace("w/", "with ").replace("&", " and ").replace("#", " number ")
    text = _MONEY_RE.sub(lambda m: " " + amount_to_words(m.group(1) or m.group(2)) + " ", text)
    text = _DATE_RE.sub(_date, text)
    text = _ORDINAL_RE.sub(lambda m: " " + ordinal_to_words(int(m.group(1))) + " ", text)
    text = _DECIMAL_RE.sub(lambda m: " " + amount_to_words(m.group(0)) + " ", text)
    text = _GROUPED_RE.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _NUMBER_RE.sub(lambda m: " " + _number(m.group(0)) + " ", text)
    words: list[str] = []
    for token in _TOKEN_RE.findall(text.replace("-", " ")):
        words += _ABBREVIATIONS.get(token, token).split()
    return words


def _date(match: re.Match[str]) -> str:
    month, day, year = int(match.group(1)), int(match.group(2)), match.group(3)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0).replace("/", " ")
    spoken = f"{MONTHS[month - 1]} {ordinal_to_words(day)}"
    if year:
        spoken += " " + year_to_words(int(year))
    return f" {spoken} "


def _number(digits: str) -> str:
    """Short numbers as a number ("forty eight"), longer ones digit by digit, as read aloud."""
    if len(digits) >= 4 or (len(digits) > 1 and digits.startswith("0")):
        return " ".join(number_to_words(int(d)) for d in digits)
    return number_to_words(int(digits))


def split_on_unknown(words: Iterable[str], known: Callable[[str], bool]) -> list[tuple[str, ...]]:
    """Split a word sequence at words ``known`` rejects, dropping them and empty pieces."""
    pieces: list[tuple[str, ...]] = []
    current: list[str] = []
    for word in words:
        if known(word):
            current.append(word)
        elif current:
            pieces.append(tuple(current))
            current = []
    if current:
        pieces.append(tuple(current))
    return pieces


def grammar_sentences() -> list[Sentence]:
    """The per-turn grammars' phrases: yes/no and special amounts in full, lists lightly."""
    sentences: list[Sentence] = [
        (tuple(p.split()), 1.0) for p in (*YES_PHRASES, *NO_PHRASES, *AMOUNT_SPECIAL_PHRASES)
    ]
    for expected in (ExpectedInput.DIGITS, ExpectedInput.AMOUNT):
        phrases = [p for p in vosk_phrases(expected) or [] if p != "[unk]"]
        sentences += [(tuple(p.split()), GRAMMAR_LIST_WEIGHT) for p in phrases]
    return sentences


def domain_sentences(nlu_files: Iterable[Path], known: Callable[[str], bool]) -> list[Sentence]:
    """Every training sentence: NLU examples as spoken, plus the grammar phrases.

    Args:
        nlu_files: Rasa NLU YAML files.
        known: Whether the recogniser's dictionary has a word; other words split sentences.
    """
    sentences: list[Sentence] = []
    for example in nlu_examples(nlu_files):
        sentences += [(piece, 1.0) for piece in split_on_unknown(spoken_words(example), known)]
    for words, weight in grammar_sentences():
        sentences += [(piece, weight) for piece in split_on_unknown(words, known)]
    return sentences
