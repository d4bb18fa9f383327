"""Calendar dates named outright: "December 3rd", "the 15th", "12/3/2026", "2026-12-03".

The readers behind :func:`paybot.parsing.dates.parse_date` for absolute forms (see that
module for the rules); each takes lower-case tokens and the caller's ``today``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from paybot.spoken.months import MONTH_NUMBERS
from paybot.spoken.numbers import TEENS, TENS, UNITS, ZERO_WORDS

from .numbers import words_to_number, words_to_ordinal

_ISO = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")
_US = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})(?:/([0-9]{2}|[0-9]{4}))?|([0-9]{1,2})-([0-9]{1,2})-([0-9]{4})"
)
_TYPED_DAY = re.compile(r"0?[1-9]|[12][0-9]|3[01]")


def add_months(year: int, month: int, months: int) -> tuple[int, int]:
    """(year, month) ``months`` months after ``year``/``month``."""
    years, month0 = divmod(month - 1 + months, 12)
    return year + years, month0 + 1


def safe_date(year: int, month: int, day: int) -> date | None:
    """The date, or None when it does not exist (February 30th)."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


def first_on_or_after(today: date, candidates: Iterable[tuple[int, int, int]]) -> date | None:
    """The first valid (year, month, day) candidate that is not before ``today``."""
    for year, month, day in candidates:
        candidate = safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def read_numeric(tokens: list[str], today: date) -> date | None:
    """Read "2026-12-03", "12/3", "12/3/26", "12-3-2026"."""
    if len(tokens) != 1:
        return None
    iso = _ISO.fullmatch(tokens[0])
    if iso:
        return safe_date(int(iso[1]), int(iso[2]), int(iso[3]))
    us = _US.fullmatch(tokens[0])
    if us is None:
        return None
    month, day, year = (us[1], us[2], us[3]) if us[1] else (us[4], us[5], us[6])
    if year is None:
        return _next_month_day(today, int(month), int(day))
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    return safe_date(full_year, int(month), int(day))


def _next_month_day(today: date, month: int, day: int) -> date | None:
    """The next ``month``/``day`` on or after ``today``, this year or next."""
    return first_on_or_after(today, ((year, month, day) for year in (today.year, today.year + 1)))


def _day(tokens: list[str], *, cardinal: bool) -> int | None:
    """A day of the month, 1-31: an ordinal, or (when ``cardinal``) a plain number."""
    value = words_to_ordinal(tokens)
    if value is None and cardinal:
        if len(tokens) == 1 and _TYPED_DAY.fullmatch(tokens[0]):
            return int(tokens[0])
        value = words_to_number(tokens)
    return value if value is not None and 1 <= value <= 31 else None


def read_day_of_month(tokens: list[str], today: date) -> date | None:
    """Read "the 15th", "the fifteenth", "the 15", "the first of next month"."""
    words = list(tokens)
    had_the = words[:1] == ["the"]
    words = words[1:] if had_the else words
    which = None
    if len(words) > 3 and words[-3] == "of" and words[-1] == "month":
        which, words = words[-2], words[:-3]
        if which not in ("this", "next", "the"):
            return None
    day = _day(words, cardinal=had_the or which is not None) if words else None
    if day is None:
        return None
    if which in ("this", "next"):
        year, month = add_months(today.year, today.month, int(which == "next"))
        return safe_date(year, month, day)
    months = (add_months(today.year, today.month, offset) for offset in range(13))
    return first_on_or_after(today, ((year, month, day) for year, month in months))


def _year(tokens: list[str]) -> int | None:
    """A year: typed ("2026"), or spoken within 2000-2099.

    Spoken forms: "two thousand (and) twenty six", "twenty twenty six", "twenty oh five".
    """
    if len(tokens) == 1 and re.fullmatch(r"[0-9]{4}", tokens[0]):
        return int(tokens[0])
    value = words_to_number(tokens)
    if value is not None and 2000 <= value <= 2099:
        return value
    if len(tokens) < 2 or TENS.get(tokens[0]) != 20:  # "twenty twenty six"
        return None
    rest = tokens[1:]
    if len(rest) == 2 and rest[0] in ZERO_WORDS and UNITS.get(rest[1]):
        return 2000 + UNITS[rest[1]]
    tail = words_to_number(rest)
    if tail is None or not 10 <= tail <= 99 or not (rest[0] in TENS or rest[0] in TEENS):
        return None
    return 2000 + tail


def read_month_day(tokens: list[str], today: date) -> date | None:
    """Read "december 3rd", "3rd of december", "december third twenty twenty six"."""
    months = [i for i, t in enumerate(tokens) if t in MONTH_NUMBERS]
    if len(months) != 1:
        return None
    at = months[0]
    before, after = tokens[:at], tokens[at + 1 :]
    if before[:1] == ["the"]:
        before = before[1:]
    if before[-1:] == ["of"]:
        before = before[:-1]
    if before:
        heads, tails = [before], [after]
    else:
        after = after[1:] if after[:1] == ["the"] else after
        heads = [after[:i] for i in range(1, len(after) + 1)]
        tails = [after[i:] for i in range(1, len(after) + 1)]
    readings = set()
    for head, tail in zip(heads, tails, strict=True):
        day, year = _day(head, cardinal=True), _year(tail) if tail else 0
        if day is not None and year is not None:
            readings.add((day, year))
    if len(readings) != 1:
        return None
    day, year = readings.pop()
    month = MONTH_NUMBERS[tokens[at]]
    return safe_date(year, month, day) if year else _next_month_day(today, month, day)
