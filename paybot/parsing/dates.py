"""Payment dates from speech or text, relative to the caller's ``today``.

Forms and rules (anything else, or an impossible date such as "February 30th", is None):

* "today", "tonight", "now", "tomorrow", "the day after tomorrow".
* "in 3 days", "in three days", "in a week", "in two weeks", "in a fortnight", "in a month",
  "two weeks from now"/"from today". Months keep the day of the month, clamped to the month's
  end (January 31 + 1 month = February 28/29).
* Weekdays ("friday", "fri", "on friday", "this friday", "this coming friday"): the first
  such day *after* today - today itself is excluded, so "friday" said on a Friday is a week
  later. "next friday": the same day, plus 7 days when it falls in the current Monday-Sunday
  week (said on a Monday, "next friday" is 11 days away; said on a Saturday, 6 days away).
  "friday next week": that weekday in next Monday-Sunday week.
* Day of the month ("the 15th", "on the fifteenth", "15th", "the 15"): the next such day on
  or after today - "the 3rd" said on the 10th is next month's 3rd, and "the 31st" said in
  April is May 31st. "the 15th of this month" / "of next month" name the month (this month's
  is returned as is, even if already past). A bare number ("15", "fifteen") is refused.
* Month and day ("December 3rd", "december third", "3rd of December", "the third of
  december", "Dec 3", "3 december") and "12/03", "12/3" (US order: month first): without a
  year, the next occurrence on or after today within a year ("February 29th" with no leap
  day in that time is None); with a year ("December 3rd 2026", "december third twenty twenty
  six", "12/3/2026", "12/3/26", "2026-12-03") the date is returned as is, even if past: the
  caller validates the range.
* "the end of the month", "the last day of the month", "the end of next month", "the first
  of next month", "the beginning of next month".
* A weekday before a date ("friday the 15th", "friday december 3rd") must agree with it.

Leading filler ("um", "I'd like to pay on", "let's say", "how about") and trailing filler
("please", "morning", "if that's ok") are ignored.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from paybot.spoken.fillers import HESITATIONS

from ._text import normalize, phrases, strip_affixes
from .calendar_dates import add_months, read_day_of_month, read_month_day, read_numeric
from .numbers import words_to_number

_WEEKDAY_NAMES = ("monday mon", "tuesday tue tues", "wednesday wed weds",
                  "thursday thu thur thurs", "friday fri", "saturday sat",
                  "sunday sun")  # fmt: skip
WEEKDAYS = {name: i for i, names in enumerate(_WEEKDAY_NAMES) for name in names.split()}
RELATIVE_DAYS = {
    "today": 0, "tonight": 0, "now": 0, "right now": 0, "tomorrow": 1, "tmrw": 1,
    "day after tomorrow": 2, "the day after tomorrow": 2,
}  # fmt: skip
PREFIXES = phrases(
    *sorted(HESITATIONS), "so", "well", "ok", "okay", "yeah", "yes", "sure",
    "let's say", "let's do", "let's", "lets", "how about", "what about", "make it",
    "i'd like to pay", "id like to pay", "i would like to pay", "i want to pay", "i'll pay",
    "i will pay", "i can pay", "can i pay", "could i pay", "i'd like to do it",
    "i'd like it", "i'll do it", "i can do it", "let's do it", "do it", "pay", "pay it",
    "schedule it for", "schedule the payment for", "schedule it", "schedule for",
    "schedule", "on", "for", "just",
)  # fmt: skip
SUFFIXES = phrases(
    "please", "thanks", "thank you", "if that's ok", "if that's okay", "if possible",
    "morning", "afternoon", "evening", "night", "in the morning", "in the afternoon",
    "in the evening", "at night", "then", "instead",
)  # fmt: skip

_MAX_OFFSET_DAYS = 3660
_OFFSET = re.compile(
    r"in (?P<n>.+?) (?P<unit>days?|weeks?|months?|fortnights?)"
    r"|(?P<n2>.+?) (?P<unit2>days?|weeks?|months?|fortnights?) from (?:now|today)"
)
_EDGES = {
    "end of month": (0, True), "end of the month": (0, True), "end of this month": (0, True),
    "last day of the month": (0, True), "last day of this month": (0, True),
    "end of next month": (1, True), "last day of next month": (1, True),
    "beginning of next month": (1, False), "start of next month": (1, False),
}  # fmt: skip


def _tokens(text: str) -> list[str] | None:
    """Tokens without commas, end punctuation or filler; None for unusable input."""
    normalized = normalize(text)
    if normalized is None:
        return None
    tokens = [t.rstrip(".!?") for t in normalized.replace(",", " ").split()]
    tokens = [t for t in tokens if t]
    return strip_affixes(tokens, PREFIXES, SUFFIXES) if tokens else None


def _monday(day: date) -> date:
    """The Monday starting the week of ``day``."""
    return day - timedelta(days=day.weekday())


def _count(words: str) -> int | None:
    """How many units: "a", "an", "3", "three"."""
    if words in ("a", "an"):
        return 1
    return words_to_number(words.split())


def _offset(tokens: list[str], today: date) -> date | None:
    """Read "in 3 days", "two weeks from now", "in a month"."""
    match = _OFFSET.fullmatch(" ".join(tokens))
    if match is None:
        return None
    count = _count(match.group("n") or match.group("n2"))
    unit = (match.group("unit") or match.group("unit2")).removesuffix("s")
    if count is None:
        return None
    if unit == "month":
        if count > _MAX_OFFSET_DAYS // 30:
            return None
        year, month = add_months(today.year, today.month, count)
        return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    days = count * {"day": 1, "week": 7, "fortnight": 14}[unit]
    return today + timedelta(days=days) if days <= _MAX_OFFSET_DAYS else None


def _after(today: date, weekday: int) -> date:
    """The first ``weekday`` strictly after ``today``."""
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _weekday(tokens: list[str], today: date) -> date | None:
    """Read "friday", "this friday", "next friday", "friday next week"."""
    words = list(tokens)
    if words[-2:] == ["next", "week"] and len(words) == 3 and words[0] in WEEKDAYS:
        return _monday(today) + timedelta(days=7 + WEEKDAYS[words[0]])
    if len(words) < 1 or words[-1] not in WEEKDAYS:
        return None
    plain = _after(today, WEEKDAYS[words[-1]])
    qualifier = " ".join(words[:-1])
    if qualifier in ("", "this", "coming", "this coming", "the coming"):
        return plain
    if qualifier == "next":
        return plain + timedelta(days=7) if _monday(plain) == _monday(today) else plain
    return None


def _edge(tokens: list[str], today: date) -> date | None:
    """Read "the end of the month", "the beginning of next month"."""
    phrase = " ".join(tokens).removeprefix("the ")
    if phrase not in _EDGES:
        return None
    months, last = _EDGES[phrase]
    year, month = add_months(today.year, today.month, months)
    return date(year, month, calendar.monthrange(year, month)[1] if last else 1)


def _relative(tokens: list[str], today: date) -> date | None:
    """Read "today", "tomorrow", "the day after tomorrow"."""
    offset = RELATIVE_DAYS.get(" ".join(tokens))
    return None if offset is None else today + timedelta(days=offset)


_READERS: tuple[Callable[[list[str], date], date | None], ...] = (
    _relative, _offset, _weekday, _edge, read_numeric, read_day_of_month, read_month_day,
)  # fmt: skip


def _read(tokens: list[str], today: date) -> date | None:
    """The first reading any form gives, or None."""
    for reader in _READERS:
        result = reader(tokens, today)
        if result is not None:
            return result
    return None


def parse_date(text: str, *, today: date) -> date | None:
    """Understand a payment date.

    Args:
        text: the caller's words or typed text ("next friday", "the 15th", "12/3").
        today: the caller's current date, which relative forms count from (a ``datetime``
            is reduced to its date).

    Returns:
        The date, or None when the text is not clearly one valid date.
    """
    tokens = _tokens(text)
    if not tokens:
        return None
    if isinstance(today, datetime):
        today = today.date()
    if len(tokens) > 1 and tokens[0] in WEEKDAYS:
        result = _read(tokens[1:], today)
        if result is not None:
            return result if result.weekday() == WEEKDAYS[tokens[0]] else None
    return _read(tokens, today)
