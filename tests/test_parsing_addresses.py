"""Choosing one of a caller's accounts by its service address: "the one on Oak Street"."""

from __future__ import annotations

import pytest

from paybot.parsing.addresses import pick_address

SAM = {"0700": "12 Oak Street", "0711": "48 Pine Avenue"}
TWIN_STREETS = {"a": "12 Oak Street", "b": "48 Oak Avenue", "c": None}


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("the one on Oak Street", "0700"),
        ("oak street", "0700"),
        ("Oak St.", "0700"),
        ("oak", "0700"),
        ("uh it's the oak one", "0700"),
        ("twelve oak street", "0700"),
        ("12", "0700"),
        ("twelve", "0700"),
        ("the pine avenue account", "0711"),
        ("Pine Ave", "0711"),
        ("forty eight", "0711"),
        ("48 Pine", "0711"),
        ("four eight pine", "0711"),
        ("the one on elm", None),
        ("the one on the street", None),  # a street type alone tells nothing
        ("the other one", None),
        ("the first one", None),
        ("yes", None),
        ("", None),
    ],
)
def test_pick_by_street_or_number(said, expected):
    assert pick_address(said, SAM) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("oak", None),  # both are on an Oak: ask again rather than guess
        ("oak street", "a"),
        ("the one on oak ave", "b"),
        ("forty eight oak", "b"),
        ("twelve", "a"),
    ],
)
def test_ties_are_no_answer_and_the_street_type_breaks_them(said, expected):
    assert pick_address(said, TWIN_STREETS) == expected


def test_numbered_streets_and_abbreviations():
    addresses = {"a": "7 W 21st St", "b": "100 Fifth Avenue", "c": "100 Lake Shore Drive"}
    assert pick_address("twenty first street", addresses) == "a"
    assert pick_address("the one on 5th", addresses) == "b"
    assert pick_address("lake shore", addresses) == "c"
    assert pick_address("one hundred", addresses) is None  # b and c are both number 100


def test_long_input_is_no_answer():
    assert pick_address("oak " * 200, SAM) is None
