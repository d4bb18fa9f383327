"""The REST channel turns a message holding a card number into the ``card_number_shared``
intent, so Rasa never sees the digits; other messages pass as they are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from paybot.dialog.channel import CARD_NUMBER_SHARED, SafeRestInput, screen_card_numbers
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED


def extract(message: object) -> str | None:
    return SafeRestInput()._extract_message(SimpleNamespace(json={"message": message}))


@pytest.mark.parametrize(
    "message",
    [
        "4000 0000 0000 0002",
        "/4000-0000-0000-0002",
        "my card is 4242424242424242, exp 12/30",
        "four two four two four two four two four two four two four two four two",
        "378282246310005",
        CARD_NUMBER_REMOVED,  # the bridge's mark for a card number it removed
    ],
)
def test_a_message_holding_a_card_number_becomes_the_intent(message):
    assert extract(message) == CARD_NUMBER_SHARED == "/card_number_shared"


@pytest.mark.parametrize(
    "message", ["100200300", "94107", "pay $1,234.56", "+1 (555) 555-0100", "the one ending 4242"]
)
def test_other_messages_pass(message):
    assert extract(message) == message
    assert screen_card_numbers(None) is None
