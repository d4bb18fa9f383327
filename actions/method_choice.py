"""Which payment method an answer to the method question names: the stored one, a new card,
a bank account (with its type), or none understood.

Asked "Would you like to use your Visa ending 4242?", a yes is the stored method, also with
words around it ("yes, use that card"): only a new or different card, or a bank account,
is something else.
"""

from __future__ import annotations

import re

from rasa_sdk import Tracker

from actions import customer
from actions.intents import entity, yes_no
from actions.services import services
from paybot.parsing import parse_digit_string

CARD_WORDS = ("card", "credit", "debit", "visa", "mastercard", "amex", "discover")
BANK_WORDS = ("bank", "checking", "savings", "account", "ach", "check", "echeck")
STORED_WORDS = (
    "on file", "saved", "same", "usual", "stored", "that one", "the one", "that card",
    "this card",
)
_NEW = re.compile(r"\b(new|different|another|other)\b")
_YES_FIRST = re.compile(r"^\W*(yes|yeah|yep|yup|sure|ok|okay)\b")


def method_choice(tracker: Tracker, text: str) -> tuple[str | None, str | None]:
    """``(choice, account_type)``: choice is ``stored``, ``card``, ``bank``,
    ``decline_stored`` (a no to the stored method) or None (not understood)."""
    lowered = text.lower()
    account_type = entity(tracker, "account_type") or next(
        (t for t in ("checking", "savings") if t in lowered), None
    )
    offered_stored = tracker.get_slot("stored_method_id") and (
        tracker.get_slot("method_offer") != "new"
    )
    answer = yes_no(tracker, text)
    if answer is None and _YES_FIRST.match(lowered):
        answer = True  # "yes, use that card": NLU heard a method, the caller said yes to it
    chosen = entity(tracker, "method")
    other = bool(_NEW.search(lowered)) or chosen == "bank" or any(w in lowered for w in BANK_WORDS)
    if offered_stored and answer is True and not other:
        return "stored", account_type  # "yes", "yes, use that card"
    if chosen in ("card", "bank", "stored"):
        return chosen, account_type
    if any(word in lowered for word in STORED_WORDS):
        return "stored", account_type
    if any(word in lowered for word in BANK_WORDS):
        return "bank", account_type
    if any(word in lowered for word in CARD_WORDS):
        return "card", account_type
    if offered_stored and answer is False:
        return "decline_stored", account_type
    return None, account_type


async def names_stored(tracker: Tracker, text: str) -> bool:
    """Whether ``text`` names the stored method by its brand or its last four digits."""
    svc = await services()
    record = await customer.current_account(svc, tracker)
    method = await customer.stored_method(svc, record.account_id if record else None)
    if method is None:
        return False
    words = text.lower().replace("master card", "mastercard")
    _, _, after = words.partition("ending")
    digits = parse_digit_string(after.removeprefix(" in ")) if after else None
    return method.brand.lower() in words or digits == method.last4
