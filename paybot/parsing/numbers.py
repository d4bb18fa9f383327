"""English cardinal and ordinal number words, strictly parsed.

:func:`words_to_number` accepts this grammar (tokens are lower-cased words; anything else
gives None rather than a guess)::

    number   := "zero" | DIGITS | [group "billion"] [group "million"] [group "thousand"]
                [["and"] group]
    group    := head "hundred" [["and"] below100] | below100 | "a"   (the last only before a
                scale word: "a thousand")
    head     := "a" | 1..9 | 10..99  (10..99 only for a whole number such as "twelve hundred")
    below100 := unit | teen | tens [unit]

The words come from :mod:`paybot.spoken.numbers`. Scale words must descend ("one thousand
one million" is rejected), "two one" is not a number, and "zero" only stands alone. Typed
digits may stand for a group ("2 thousand", "5 hundred").

:func:`words_to_ordinal` accepts the same with an ordinal last word ("twenty first",
"thirty-first", "one hundredth") or a typed ordinal ("21st", "3rd").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from paybot.spoken.numbers import HUNDRED, ORDINALS, SCALES, TEENS, TENS, UNITS, ZERO

# Typed digits stop at 18: longer runs are no number a caller means (and int() of a few
# thousand digits raises).
_DIGITS = re.compile(r"0|[1-9][0-9]{0,17}")
_TYPED_ORDINAL = re.compile(r"([1-9][0-9]{0,17})(?:st|nd|rd|th)")


def _split(tokens: Sequence[str]) -> list[str]:
    """Lower-case tokens and split hyphenated words ("twenty-one")."""
    out: list[str] = []
    for token in tokens:
        parts = token.lower().split("-")
        out.extend(parts if all(part.isalpha() for part in parts) else [token.lower()])
    return out


def _below_hundred(tokens: Sequence[str], i: int) -> tuple[int, int] | None:
    """Parse 1..99 spelled out at ``tokens[i]``; return (value, next index)."""
    if i >= len(tokens):
        return None
    token = tokens[i]
    if token in TEENS:
        return TEENS[token], i + 1
    if token in UNITS:
        return (UNITS[token], i + 1) if UNITS[token] else None
    if token not in TENS:
        return None
    following = tokens[i + 1] if i + 1 < len(tokens) else None
    if following in UNITS and UNITS[following]:
        return TENS[token] + UNITS[following], i + 2
    return TENS[token], i + 1


def _group_head(tokens: Sequence[str], i: int) -> tuple[int, int, bool] | None:
    """Parse what starts a group; return (value, next index, complete-without-hundred)."""
    word = tokens[i]
    following = tokens[i + 1] if i + 1 < len(tokens) else None
    if word == "a":
        if following == HUNDRED:
            return 1, i + 1, False
        return (1, i + 1, True) if following in SCALES else None
    if _DIGITS.fullmatch(word):
        value = int(word)
        if not 0 < value <= 999:
            return None
        return value, i + 1, following != HUNDRED or value > 99
    parsed = _below_hundred(tokens, i)
    if parsed is None:
        return None
    value, j = parsed
    return value, j, j >= len(tokens) or tokens[j] != HUNDRED


def _group(tokens: Sequence[str], i: int) -> tuple[int, int] | None:
    """Parse one group (below a thousand, or "<10-99> hundred ...") starting at ``i``."""
    head = _group_head(tokens, i)
    if head is None:
        return None
    value, j, complete = head
    if complete:
        return value, j
    j += 1  # past "hundred"
    k = j + 1 if j < len(tokens) and tokens[j] == "and" else j
    rest = _below_hundred(tokens, k)
    if rest is None:
        return value * 100, j
    return value * 100 + rest[0], rest[1]


def words_to_number(tokens: list[str]) -> int | None:
    """Parse a cardinal number written as words, up to the billions.

    Args:
        tokens: words such as ``["one", "million", "two", "hundred", "thousand", "and",
            "five"]``; hyphenated words ("twenty-one") and typed digit groups ("2",
            "thousand") are accepted.

    Returns:
        The number (``1200005`` above), or None when the tokens are not exactly one
        well-formed cardinal number.
    """
    toks = _split(tokens)
    if len(toks) == 1 and toks[0] == ZERO:
        return 0
    if len(toks) == 1 and _DIGITS.fullmatch(toks[0]):
        return int(toks[0])
    total, i, last_scale = 0, 0, 0
    while i < len(toks):
        if toks[i] == "and":
            if not last_scale:
                return None
            i += 1
        parsed = _group(toks, i) if i < len(toks) else None
        if parsed is None:
            return None
        value, j = parsed
        scale = SCALES.get(toks[j]) if j < len(toks) else None
        if scale is None:
            if j != len(toks) or (last_scale and value > 999):
                return None
            return total + value
        if value > 999 or (last_scale and scale >= last_scale):
            return None
        total, i, last_scale = total + value * scale, j + 1, scale
    return total if last_scale else None


def words_to_ordinal(tokens: list[str]) -> int | None:
    """Parse an ordinal number: "first", "twenty first", "thirty-first", "21st", "3rd".

    Args:
        tokens: the words of one ordinal number.

    Returns:
        Its value (at least 1), or None when the tokens are not one well-formed ordinal.
        Typed ordinals accept any of the suffixes st/nd/rd/th ("3th" is still 3).
    """
    toks = _split(tokens)
    if not toks:
        return None
    if len(toks) == 1:
        match = _TYPED_ORDINAL.fullmatch(toks[0])
        if match:
            return int(match.group(1))
    if toks[-1] not in ORDINALS:
        return None
    value = words_to_number([*toks[:-1], ORDINALS[toks[-1]]])
    return value if value else None
