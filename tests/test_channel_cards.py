"""The REST channel turns a message holding a card number into the ``card_number_shared``
intent, so Rasa never sees the digits; other messages pass as they are.

The channel imports Rasa (and Sanic, which changes the process's event loop policy), so it
is exercised in a child process, leaving this one as the other tests expect it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED

REPO = Path(__file__).resolve().parents[1]
CARDS = [
    "4000 0000 0000 0002",
    "/4000-0000-0000-0002",
    "my card is 4242424242424242, exp 12/30",
    "four two four two four two four two four two four two four two four two",
    "378282246310005",
    CARD_NUMBER_REMOVED,  # the bridge's mark for a card number it removed
]
OTHERS = ["100200300", "94107", "pay $1,234.56", "+1 (555) 555-0100", "the one ending 4242"]
CHILD = """
import json, sys
from types import SimpleNamespace
from rasa_plugins.channel import SafeRestInput, screen_card_numbers
messages = json.loads(sys.stdin.read())
channel = SafeRestInput()
out = [channel._extract_message(SimpleNamespace(json={"message": m})) for m in messages]
print(json.dumps({"extracted": out, "none": screen_card_numbers(None)}))
"""


def extract(messages: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_card_numbers_become_the_intent_and_other_messages_pass():
    answer = extract(CARDS + OTHERS)
    assert answer["extracted"] == ["/card_number_shared"] * len(CARDS) + OTHERS
    assert answer["none"] is None
