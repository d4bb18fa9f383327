"""The payment profile's limits in a conversation: declined payments and failed captures.

At a limit the profile says what happens (``limits`` in the profile): ``agent`` (a transfer
with a reason code: ``declined`` or ``capture_failed``), ``goodbye`` (the bot says why and
ends the call) or ``retry`` (back to the payment method question, as before the limit).

Failed captures are counted from the conversation's own events, the bridge's
``capture_result`` system events with status ``failed`` since the session began, so the count
needs no slot of its own and survives nothing the conversation does not.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.anytime import goodbye, transfer
from actions.responses import say
from paybot.payments.profile import Limit


def failed_captures(tracker: Tracker) -> int:
    """Secure captures that failed (too many attempts, timeouts) in this session."""
    count = 0
    for event in tracker.events:
        if event.get("event") == "session_started":
            count = 0
        elif _failed_capture(event):
            count += 1
    return count


def _failed_capture(event: dict[str, Any]) -> bool:
    if event.get("event") != "user":
        return False
    if (event.get("metadata") or {}).get("is_external") is not True:
        return False  # only the bridge's system events, never a caller's words
    parse = event.get("parse_data") or {}
    if (parse.get("intent") or {}).get("name") != "capture_result":
        return False
    return any(
        e.get("entity") == "capture_status" and e.get("value") == "failed"
        for e in parse.get("entities") or []
    )


def at_limit(
    dispatcher: CollectingDispatcher, tracker: Tracker, limit: Limit, count: int, reason: str
) -> list[EventType] | None:
    """What the profile says to do once ``count`` has reached ``limit``; None to go on as
    before (under the limit, no limit, or ``retry``)."""
    if limit.max is None or count < limit.max or limit.then == "retry":
        return None
    if limit.then == "agent":
        return customer.forget_payment() + transfer(dispatcher, tracker, reason=reason)
    say(dispatcher, tracker, "payment_limit_goodbye")
    return customer.forget_payment() + goodbye(dispatcher, tracker)
