"""Which of a few service addresses a caller means: "the one on Oak Street", "Oak", "twelve".

Each address becomes a set of features: its house number, the words of its street name
("oak", "5" for "5th") and its street type ("street" for "St."). The caller's words become the
same kind of features (spoken numbers read as digits, abbreviations expanded). The address
that shares the most features with the answer wins, if it is the only one with that many and
at least one shared feature is a house number or a street-name word: a street type alone
("the one on the street") or a tie ("Oak" for Oak Street and Oak Avenue) is no answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from paybot.spoken.numbers import is_number_word

from ._text import normalize
from .digits import parse_digit_string
from .numbers import words_to_number, words_to_ordinal

K = TypeVar("K")

STREET_TYPES: dict[str, str] = {
    "st": "street", "str": "street", "street": "street",
    "ave": "avenue", "av": "avenue", "avenue": "avenue",
    "rd": "road", "road": "road", "dr": "drive", "drive": "drive",
    "ln": "lane", "lane": "lane", "blvd": "boulevard", "boulevard": "boulevard",
    "ct": "court", "court": "court", "pl": "place", "place": "place", "way": "way",
    "cir": "circle", "circle": "circle", "ter": "terrace", "terrace": "terrace",
    "hwy": "highway", "highway": "highway", "pkwy": "parkway", "parkway": "parkway",
    "sq": "square", "square": "square", "trl": "trail", "trail": "trail",
}  # fmt: skip
# Words of an address that do not tell one street from another.
_NOT_NAMES = frozenset(
    {"n", "s", "e", "w", "north", "south", "east", "west", "ne", "nw", "se", "sw",
     "apt", "apartment", "unit", "suite", "ste", "floor", "fl", "the", "of", "and"}
)  # fmt: skip
# "the one on Oak", "that one": "one" here is no house number.
_DETERMINERS = frozenset({"the", "that", "this", "which", "other"})
_TOKEN = re.compile(r"[a-z0-9]+")
_ORDINAL = re.compile(r"([0-9]+)(?:st|nd|rd|th)")

Feature = tuple[str, str]  # ("number", "12"), ("name", "oak"), ("type", "street")


def _tokens(text: str) -> list[str]:
    normalized = normalize(text)
    return _TOKEN.findall(normalized.replace("'", "")) if normalized else []


def _spoken_number(run: list[str]) -> str | None:
    """ "forty eight" -> "48", "one two" -> "12"."""
    value = words_to_number(run)
    if value is not None:
        return str(value)
    return parse_digit_string(" ".join(run))


def _features(tokens: list[str], *, spoken: bool) -> set[Feature]:
    """Features of an address (``spoken=False``) or of a caller's answer."""
    found: set[Feature] = set()
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if spoken and word == "one" and i and tokens[i - 1] in _DETERMINERS:
            i += 1
            continue
        if spoken and is_number_word(word):
            j = i
            while j < len(tokens) and (is_number_word(tokens[j]) or tokens[j] == "and"):
                j += 1
            nth = words_to_ordinal(tokens[i : j + 1]) if j < len(tokens) else None
            if nth is not None:  # "twenty first street"
                found.add(("name", str(nth)))
                i = j + 1
                continue
            if (number := _spoken_number(tokens[i:j])) is not None:
                found.add(("number", number))
            i = j
            continue
        if typed := _ORDINAL.fullmatch(word):  # "21st"
            found.add(("name", typed.group(1)))
        elif word.isascii() and word.isdigit():
            found.add(("number", word.lstrip("0") or "0"))
        elif word in STREET_TYPES:
            found.add(("type", STREET_TYPES[word]))
        elif (nth := words_to_ordinal([word])) is not None:  # "fifth"
            found.add(("name", str(nth)))
        elif word not in _NOT_NAMES and (not spoken or len(word) > 1):
            found.add(("name", word))
        i += 1
    return found


def pick_address(text: str, addresses: Mapping[K, str | None]) -> K | None:
    """The key of the one address ``text`` points at, or None when it points at none or at
    several.

    Args:
        text: the caller's answer ("the one on Oak Street", "forty eight pine").
        addresses: candidates by key (e.g. account number); None for no address on record.
    """
    said = _features(_tokens(text), spoken=True)
    scores = []
    for key, address in addresses.items():
        shared = said & _features(_tokens(address or ""), spoken=False)
        if any(kind != "type" for kind, _ in shared):
            scores.append((len(shared), key))
    if not scores:
        return None
    scores.sort(key=lambda pair: pair[0], reverse=True)
    if len(scores) > 1 and scores[0][0] == scores[1][0]:
        return None
    return scores[0][1]
