"""Recovery when an answer to the payment form is not understood, or may be misheard.

Speech recognition is often wrong about digits, so the form never just asks again:

- after the first failed answer at a digits question (account number, ZIP, last four, amount,
  date), a caller who spoke (or said nothing) is told the keypad works too ("you can also
  type it on your keypad");
- after the second failed answer at any question, an agent is offered;
- a question already asked three times in a row is not asked a fourth time: the form ends
  (``form_outcome`` ``stuck``) and ``action_complete_payment`` hands over to an agent
  (``ValidatePaymentForm.run``);
- a spoken account number, ZIP or last four heard with low confidence (or from an engine that
  gives none) is read back ("I heard 9 4 1 0 7. Is that right?") before it is used: the
  digits wait in the ``heard_digits`` slot. A read-back is not another ask of the question;
  a "no" to it is a failed answer like any other. Keyed answers are never read back.

How a turn was heard comes from the bridge's vouched metadata (:mod:`paybot.dialog.vouch`):
``input`` (``speech`` or ``keypad``) and ``confidence``.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from actions.responses import say
from actions.services import services

# The most times in a row the bot asks one question; the next time it changes tack.
MAX_ASKS = 3
# Questions answered with digits: the keypad is offered after a spoken answer fails.
KEYPAD_SLOTS = ("account_number", "billing_zip", "account_choice", "payment_amount", "payment_date")
# Questions whose spoken answers are read back when the engine is unsure.
READ_BACK = ("account_number", "billing_zip")
HEARD = "heard_digits"


def asked_in_a_row(tracker: Tracker, slot: str) -> int:
    """In how many turns in a row before this one the form asked for ``slot`` (it sets
    ``requested_slot`` each time it asks; another question, the form ending, or a failed
    verification breaks the run). A turn that read back what was heard is no ask."""
    count, in_turn, read_back, this_turn = 0, False, False, True
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            count += in_turn and not read_back and not this_turn
            in_turn, read_back, this_turn = False, False, False
        elif kind == "slot" and event.get("name") == "idv_failures":
            break  # a wrong account number or ZIP: the verification's own count governs
        elif this_turn:
            continue
        elif kind == "slot" and event.get("name") == HEARD and event.get("value"):
            read_back = True
        elif kind == "slot" and event.get("name") == REQUESTED_SLOT:
            if event.get("value") != slot:
                break
            in_turn = True
        elif kind == "active_loop" and event.get("name") is None:
            break
    return count + (in_turn and not read_back)


def answered_since_message(tracker: Tracker) -> bool:
    """Whether another action ran since the latest message (an interruption rule, or what
    activated the form). Rasa gives the validation a tracker that ends with the form's own
    action, so ``latest_action_name`` cannot tell."""
    for event in reversed(tracker.events):
        kind, name = event.get("event"), event.get("name")
        if kind == "user":
            return False
        if kind == "action" and name not in ("payment_form", "action_extract_slots"):
            return True
    return False


def heard(tracker: Tracker) -> dict[str, Any]:
    """How the bridge heard the latest message (``input``, ``confidence``; empty off a call)."""
    metadata = tracker.latest_message.get("metadata") or {}
    return metadata if isinstance(metadata, dict) else {}


def spoken(tracker: Tracker) -> bool:
    """Whether the latest message was spoken on a call (not keyed, not typed)."""
    return tracker.get_slot("channel") == "voice" and heard(tracker).get("input") == "speech"


async def doubtful(tracker: Tracker) -> bool:
    """Whether the latest message was spoken and heard with low (or no) confidence."""
    if not spoken(tracker):
        return False
    confidence = heard(tracker).get("confidence")
    svc = await services()
    try:
        return confidence is None or float(confidence) < svc.settings.readback_confidence
    except (TypeError, ValueError):
        return True


def keyed(tracker: Tracker) -> bool:
    """Whether the latest message was keyed on the phone's keypad."""
    return heard(tracker).get("input") == "keypad"


def failed(
    dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, failures: int | None = None
) -> None:
    """After the validation said what was wrong with an answer to ``slot`` (or the caller
    said nothing): on the first failure, a caller who did not key is told about the keypad
    (digits questions); on the second, an agent is offered. ``failures`` defaults to the
    asks so far (each ask, one answer)."""
    count = asked_in_a_row(tracker, slot) if failures is None else failures
    if count >= MAX_ASKS:
        return  # the form hands over now: no advice for a next try
    keypad = slot in KEYPAD_SLOTS and tracker.get_slot("channel") == "voice"
    if count <= 1:
        if keypad and not keyed(tracker):
            say(
                dispatcher,
                tracker,
                "keypad_hint_amount" if slot == "payment_amount"
                else "keypad_hint_date" if slot == "payment_date"
                else "keypad_hint",
            )
        return
    say(dispatcher, tracker, "agent_offer_keypad" if keypad else "agent_offer")


def spaced(digits: str) -> str:
    """Digits for speech, one by one: "9 4 1 0 7"."""
    return " ".join(digits)
