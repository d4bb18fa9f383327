"""What the latest message means to the payment form: its intent, its entities, a yes or a
no, and a request mixed into an answer ("no, what is my balance")."""

from __future__ import annotations

import re

from rasa_sdk import Tracker

from paybot.parsing import is_filler, parse_yes_no

# A balance question, with or without a yes or no in front of it: answered as one, whatever
# NLU made of the whole ("no, what is my balance" is no plain "no").
# A question, not an amount: "the full balance" is an answer.
_BALANCE = re.compile(
    r"\b(what(')?s|what is|tell me|check) (my|the)( current)? (balance|bill|due date)\b|"
    r"\bhow much (do|did) i owe\b|\bwhat do i owe\b|"
    r"\bwhen(')?s (it|my (bill|payment)|the payment) due\b|\bwhen is (it|my (bill|payment)) due\b",
    re.IGNORECASE,
)


# "Hold on", "wait a second": the caller is not answering yet, whatever NLU made of it.
_NOT_YET = re.compile(
    r"\b(hold on|hang on|wait|just a (sec|minute|moment)|give me a (sec|minute|moment)|"
    r"let me (think|check))\b",
    re.IGNORECASE,
)


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def yes_no(tracker: Tracker, text: str) -> bool | None:
    """Affirm/deny from NLU, else the keypad/keyword parser. A filler alone ("uh") or a
    request to wait ("uh, hold on") is neither: NLU may call it affirm, and nobody should pay
    on an "uh"."""
    if is_filler(text) or _NOT_YET.search(text):
        return None
    intent = latest_intent(tracker)
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    return parse_yes_no(text)


def explicit_yes(tracker: Tracker, text: str) -> bool:
    """A yes that may take money: NLU's ``affirm`` *and* a yes in the words themselves (or the
    keypad's 1). NLU alone has called gibberish ("ghfj ghfj") an affirm; asking again costs a
    turn, paying on it costs the customer."""
    return yes_no(tracker, text) is True and parse_yes_no(text) is True


def asks_balance(tracker: Tracker, text: str) -> bool:
    """Whether the message asks for the balance or the due date, on its own or mixed into a
    yes or no ("no, what is my balance")."""
    return latest_intent(tracker) == "ask_balance" or bool(_BALANCE.search(text))


def entity(tracker: Tracker, name: str) -> str | None:
    """The first value of entity ``name`` in the latest message."""
    return next(
        (
            e.get("value")
            for e in tracker.latest_message.get("entities", [])
            if e.get("entity") == name and e.get("value")
        ),
        None,
    )
