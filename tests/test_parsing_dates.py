"""Payment dates from speech and text (paybot.parsing.parse_date)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from paybot.parsing import parse_date

TODAY = date(2026, 6, 10)  # a Wednesday


def d(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


DATES = [
    # relative days
    ("today", d(6, 10)),
    ("Today.", d(6, 10)),
    ("tonight", d(6, 10)),
    ("right now", d(6, 10)),
    ("now", d(6, 10)),
    ("tomorrow", d(6, 11)),
    ("tomorrow morning", d(6, 11)),
    ("tomorrow please", d(6, 11)),
    ("day after tomorrow", d(6, 12)),
    ("the day after tomorrow", d(6, 12)),
    ("um tomorrow", d(6, 11)),
    ("I'd like to pay tomorrow", d(6, 11)),
    ("let's say tomorrow", d(6, 11)),
    # offsets
    ("in 3 days", d(6, 13)),
    ("in three days", d(6, 13)),
    ("in a day", d(6, 11)),
    ("in one day", d(6, 11)),
    ("in 0 days", d(6, 10)),
    ("in a week", d(6, 17)),
    ("in one week", d(6, 17)),
    ("in two weeks", d(6, 24)),
    ("in 2 weeks", d(6, 24)),
    ("in a fortnight", d(6, 24)),
    ("in ten days", d(6, 20)),
    ("in twenty one days", d(7, 1)),
    ("in a month", d(7, 10)),
    ("in two months", d(8, 10)),
    ("two weeks from now", d(6, 24)),
    ("a week from today", d(6, 17)),
    ("3 days from now", d(6, 13)),
    ("can I pay in five days", d(6, 15)),
    # weekdays (today is Wednesday June 10)
    ("Friday", d(6, 12)),
    ("friday", d(6, 12)),
    ("fri", d(6, 12)),
    ("on friday", d(6, 12)),
    ("this friday", d(6, 12)),
    ("this coming friday", d(6, 12)),
    ("on Friday please", d(6, 12)),
    ("friday afternoon", d(6, 12)),
    ("Wednesday", d(6, 17)),
    ("thursday", d(6, 11)),
    ("tuesday", d(6, 16)),
    ("sunday", d(6, 14)),
    ("saturday", d(6, 13)),
    ("monday", d(6, 15)),
    ("next friday", d(6, 19)),
    ("next thursday", d(6, 18)),
    ("next sunday", d(6, 21)),
    ("next monday", d(6, 15)),
    ("next wednesday", d(6, 17)),
    ("on next friday", d(6, 19)),
    ("friday next week", d(6, 19)),
    ("monday next week", d(6, 15)),
    ("I'll pay on friday", d(6, 12)),
    # day of the month
    ("on the 15th", d(6, 15)),
    ("the 15th", d(6, 15)),
    ("15th", d(6, 15)),
    ("the fifteenth", d(6, 15)),
    ("on the fifteenth", d(6, 15)),
    ("the 15", d(6, 15)),
    ("the fifteen", d(6, 15)),
    ("the 10th", d(6, 10)),
    ("the 3rd", d(7, 3)),
    ("the third", d(7, 3)),
    ("the first", d(7, 1)),
    ("the 1st", d(7, 1)),
    ("the 30th", d(6, 30)),
    ("the thirtieth", d(6, 30)),
    ("the 31st", d(7, 31)),
    ("the thirty first", d(7, 31)),
    ("the thirty-first", d(7, 31)),
    ("the twenty second", d(6, 22)),
    ("the 15th of this month", d(6, 15)),
    ("the 5th of this month", d(6, 5)),
    ("the 15th of next month", d(7, 15)),
    ("the 31st of next month", d(7, 31)),
    ("3rd", d(7, 3)),
    ("the first of next month", d(7, 1)),
    ("first of next month", d(7, 1)),
    ("the 1st of next month", d(7, 1)),
    ("the first of the month", d(7, 1)),
    ("the 20th of the month", d(6, 20)),
    # month and day
    ("December 3rd", d(12, 3)),
    ("december third", d(12, 3)),
    ("december the third", d(12, 3)),
    ("3rd of December", d(12, 3)),
    ("the third of december", d(12, 3)),
    ("Dec 3", d(12, 3)),
    ("dec. 3", d(12, 3)),
    ("december 3", d(12, 3)),
    ("december three", d(12, 3)),
    ("3 december", d(12, 3)),
    ("on december 3rd", d(12, 3)),
    ("December 3rd please", d(12, 3)),
    ("june 10", d(6, 10)),
    ("june tenth", d(6, 10)),
    ("june 9", d(6, 9, 2027)),
    ("january 5th", d(1, 5, 2027)),
    ("jan 5", d(1, 5, 2027)),
    ("sept 1", d(9, 1)),
    ("july twenty first", d(7, 21)),
    ("the twenty first of july", d(7, 21)),
    ("february 28th", d(2, 28, 2027)),
    ("march 1st", d(3, 1, 2027)),
    ("july 4th", d(7, 4)),
    ("august thirty first", d(8, 31)),
    ("may 1st", d(5, 1, 2027)),
    # with a year: as is, even in the past
    ("December 3rd 2026", d(12, 3)),
    ("december 3rd, 2026", d(12, 3)),
    ("december 3, 2026", d(12, 3)),
    ("3 december 2026", d(12, 3)),
    ("3rd of december 2026", d(12, 3)),
    ("december third twenty twenty six", d(12, 3)),
    ("december twenty first twenty twenty six", d(12, 21)),
    ("december third two thousand twenty six", d(12, 3)),
    ("december third two thousand and twenty six", d(12, 3)),
    ("january 5th 2027", d(1, 5, 2027)),
    ("january fifth twenty twenty seven", d(1, 5, 2027)),
    ("june 1st 2026", d(6, 1)),
    ("may 5th twenty oh nine", d(5, 5, 2009)),
    ("february 29th 2028", d(2, 29, 2028)),
    # numeric
    ("12/03", d(12, 3)),
    ("12/3", d(12, 3)),
    ("6/10", d(6, 10)),
    ("6/9", d(6, 9, 2027)),
    ("1/5", d(1, 5, 2027)),
    ("12/3/2026", d(12, 3)),
    ("12/03/2026", d(12, 3)),
    ("12/3/26", d(12, 3)),
    ("12-3-2026", d(12, 3)),
    ("2026-12-03", d(12, 3)),
    ("2026/12/03", d(12, 3)),
    ("2026-06-01", d(6, 1)),
    ("on 12/03", d(12, 3)),
    ("12/3/2026.", d(12, 3)),
    # month edges
    ("the end of the month", d(6, 30)),
    ("end of the month", d(6, 30)),
    ("end of month", d(6, 30)),
    ("the end of this month", d(6, 30)),
    ("the last day of the month", d(6, 30)),
    ("the end of next month", d(7, 31)),
    ("the last day of next month", d(7, 31)),
    ("the beginning of next month", d(7, 1)),
    ("the start of next month", d(7, 1)),
    # weekday agreeing with a date
    ("friday the 12th", d(6, 12)),
    ("friday june 12th", d(6, 12)),
    ("friday 6/12", d(6, 12)),
    ("Friday, December 4th", d(12, 4)),
    ("saturday the 13th", d(6, 13)),
]


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_parse_date(text, expected):
    assert parse_date(text, today=TODAY) == expected


# (today, phrase, expected): the weekday rules on every day of one week.
MONDAY = date(2026, 6, 8)
WEEKDAY_RULES = [
    (MONDAY, "friday", date(2026, 6, 12)),
    (MONDAY, "next friday", date(2026, 6, 19)),
    (MONDAY, "monday", date(2026, 6, 15)),
    (MONDAY, "next monday", date(2026, 6, 15)),
    (MONDAY + timedelta(days=4), "friday", date(2026, 6, 19)),  # Friday: today excluded
    (MONDAY + timedelta(days=4), "this friday", date(2026, 6, 19)),
    (MONDAY + timedelta(days=4), "next friday", date(2026, 6, 19)),
    (MONDAY + timedelta(days=4), "saturday", date(2026, 6, 13)),
    (MONDAY + timedelta(days=4), "next saturday", date(2026, 6, 20)),
    (MONDAY + timedelta(days=5), "friday", date(2026, 6, 19)),  # Saturday
    (MONDAY + timedelta(days=5), "next friday", date(2026, 6, 19)),
    (MONDAY + timedelta(days=5), "sunday", date(2026, 6, 14)),
    (MONDAY + timedelta(days=5), "next sunday", date(2026, 6, 21)),
    (MONDAY + timedelta(days=6), "monday", date(2026, 6, 15)),  # Sunday
    (MONDAY + timedelta(days=6), "next monday", date(2026, 6, 15)),
    (MONDAY + timedelta(days=6), "monday next week", date(2026, 6, 15)),
    (MONDAY + timedelta(days=6), "sunday", date(2026, 6, 21)),
]


@pytest.mark.parametrize(("today", "text", "expected"), WEEKDAY_RULES)
def test_weekday_rules(today, text, expected):
    assert parse_date(text, today=today) == expected


# Roll-over at month and year ends.
ROLLOVER = [
    (date(2026, 12, 20), "the 5th", date(2027, 1, 5)),
    (date(2026, 12, 20), "january 2nd", date(2027, 1, 2)),
    (date(2026, 12, 20), "12/25", date(2026, 12, 25)),
    (date(2026, 12, 20), "12/19", date(2027, 12, 19)),
    (date(2026, 12, 20), "the end of next month", date(2027, 1, 31)),
    (date(2026, 12, 20), "the first of next month", date(2027, 1, 1)),
    (date(2026, 12, 20), "in two weeks", date(2027, 1, 3)),
    (date(2026, 12, 31), "tomorrow", date(2027, 1, 1)),
    (date(2026, 12, 31), "the end of the month", date(2026, 12, 31)),
    (date(2027, 1, 31), "in a month", date(2027, 2, 28)),
    (date(2028, 1, 31), "in a month", date(2028, 2, 29)),
    (date(2027, 1, 31), "the end of next month", date(2027, 2, 28)),
    (date(2027, 2, 10), "the 30th", date(2027, 3, 30)),
    (date(2027, 2, 10), "the 29th", date(2027, 3, 29)),
    (date(2028, 2, 10), "the 29th", date(2028, 2, 29)),
    (date(2027, 4, 5), "the 31st", date(2027, 5, 31)),
    (date(2027, 3, 1), "february 29th", date(2028, 2, 29)),
    (date(2027, 3, 1), "the 30th of next month", date(2027, 4, 30)),
]


@pytest.mark.parametrize(("today", "text", "expected"), ROLLOVER)
def test_rollover(today, text, expected):
    assert parse_date(text, today=today) == expected


NOT_DATES = [
    "",
    "   ",
    "um",
    "agent",
    "I don't know",
    "yes",
    "no",
    "soon",
    "later",
    "next week",
    "this week",
    "next month",
    "this weekend",
    "someday",
    "whenever",
    "15",
    "fifteen",
    "the",
    "december",
    "the 32nd",
    "the 0th",
    "the thirty second",
    "February 30th",
    "february thirtieth",
    "april 31st",
    "feb 30",
    "february 29th",  # no leap day within a year of 2026-06-10
    "2/30",
    "13/1",
    "0/5",
    "2026-02-30",
    "2026-13-01",
    "12/3/2026/1",
    "the 31st of this month",
    "the 15th of last month",
    "friday the 13th",
    "thursday the 12th",
    "monday december 3rd",
    "next",
    "this",
    "next fri day",
    "last friday",
    "friday or saturday",
    "friday and monday",
    "in a couple of days",
    "in a few days",
    "in days",
    "in -3 days",
    "in three",
    "in 100000 days",
    "december twenty twenty six",
    "december 3rd 2026 2027",
    "december 3rd january 4th",
    "the third friday",
    "12.03",
    "03.12.2026",
    "tomorrow or the day after",
    "yesterday",
    "x" * 600,
]


@pytest.mark.parametrize("text", NOT_DATES)
def test_not_a_date(text):
    assert parse_date(text, today=TODAY) is None


def test_non_string_is_not_a_date():
    assert parse_date(None, today=TODAY) is None  # type: ignore[arg-type]


def test_datetime_today_is_reduced_to_its_date():
    now = datetime(2026, 6, 10, 23, 59)
    assert parse_date("the 10th", today=now) == date(2026, 6, 10)
    assert parse_date("friday", today=now) == date(2026, 6, 12)
