"""Starting a conversation: who is calling, and what they came for.

``action_session_start`` copies the channel and the caller's number from the metadata of the
message that opened the session: the REST channel keeps them only when the bridge vouched for
them (SMS), so a chat has no caller number. ``action_start_conversation`` runs on the first
request (the voice bridge's ``session_begin`` system event, a greeting, "I want to pay",
"what's my balance"...): it looks the caller's number up and notes the accounts on it as
candidates (the payment form then asks one more factor before anything about them is said,
unless ``PAYBOT_CALLER_ID_FACTOR=none``), notes what was asked for, and hands over to the
payment form.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.responses import say
from actions.services import services
from actions.wording import money
from paybot.contact_centre import sessions
from paybot.dialog.metadata import CHANNELS, sanitize_metadata
from paybot.parsing import parse_date

log = logging.getLogger(__name__)
REQUESTS = {
    "ask_balance": "balance",
    "list_scheduled": "list_scheduled",
    "cancel_scheduled": "cancel_scheduled",
}
SCHEDULE_REQUESTS = frozenset({"list_scheduled", "cancel_scheduled"})


def channel_of(tracker: Tracker) -> str:
    """voice, sms or chat: from the slot (set from vouched metadata or a system event)."""
    channel = tracker.get_slot("channel")
    return channel if channel in CHANNELS else "chat"


class ActionSessionStart(Action):
    """Start a session; fill ``channel`` and ``caller_number`` from the message metadata
    (which the REST channel kept only when the bridge vouched for it)."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        metadata = sanitize_metadata(tracker.get_slot("session_started_metadata"))
        events: list[EventType] = [
            SessionStarted(),
            SlotSet("channel", metadata["channel"]),
            SlotSet("caller_number", metadata.get("from")),
            ActionExecuted("action_listen"),
        ]
        return events


def is_system_event(tracker: Tracker) -> bool:
    """Whether the latest message came through Rasa's token-protected ``trigger_intent`` API
    (the bridge's system events), which marks it external. NLU knows the system intents by
    their recorded text, so it could in principle give one to a user's words; those carry no
    such mark (the REST channel keeps only the ``channel`` and ``from`` metadata)."""
    return (tracker.latest_message.get("metadata") or {}).get("is_external") is True


def _system_entities(tracker: Tracker) -> dict[str, str]:
    """Entities of the ``session_begin`` system event (only the bridge can send it)."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent != "session_begin" or not is_system_event(tracker):
        return {}
    return {
        e["entity"]: e["value"]
        for e in tracker.latest_message.get("entities", [])
        if isinstance(e.get("value"), str)
    }


async def begin(
    dispatcher: CollectingDispatcher, tracker: Tracker, request: str | None = None
) -> list[EventType]:
    """Look the caller up by number (unless already identified) and note the request.

    A number only the bridge can vouch for (the ``session_begin`` system event, or vouched
    SMS metadata) is a hint: its accounts become ``account_candidates`` and the payment form
    asks one more factor before it says or uses anything about them
    (``PAYBOT_CALLER_ID_FACTOR``; with ``none`` a single account is identified at once)."""
    entities = _system_entities(tracker)
    system = sanitize_metadata({"channel": entities.get("channel"), "from": entities.get("caller")})
    caller = system.get("from") or tracker.get_slot("caller_number")
    channel = system["channel"] if entities.get("channel") else channel_of(tracker)
    events: list[EventType] = [SlotSet("channel", channel), SlotSet("caller_number", caller)]
    if request:
        events.append(SlotSet("pending_request", request))
    if tracker.get_slot("identified"):
        # A later request in the same conversation: the account may have been paid off or
        # closed since it was identified, so it is checked again before any amount is offered.
        if request not in SCHEDULE_REQUESTS:
            record = await customer.current_account(await services(), tracker)
            if record is not None:
                events += customer.payable_check(await services(), dispatcher, tracker, record)
        return events
    if entities:  # the call's first turn: was it transferred with a payment session?
        session_events = await _payment_session(dispatcher, tracker)
        if session_events is not None:
            return events + session_events
    if not caller:
        return events
    if tracker.get_slot("billing_zip") == "caller_id" and tracker.get_slot("account_candidates"):
        return events  # the factor is confirmed; the form asks which account
    svc = await services()
    records = await svc.directory.find_by_phone(caller)
    active = [r for r in records if r.is_active] or records
    if len(active) == 1 and svc.settings.caller_id_factor == "none":
        events += await customer.identify(svc, active[0], "caller_id")
        events += customer.payable_check(svc, dispatcher, tracker, active[0])
    elif active:  # the factor (billing_zip), then which account when there are several
        events.append(SlotSet("account_candidates", [r.account_number for r in active]))
        events.append(SlotSet("billing_zip", None))
    log.info("conversation %s: %d accounts on the caller's number", tracker.sender_id, len(active))
    return events


async def _payment_session(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType] | None:
    """For a call a contact centre transferred with a payment session (docs/contact-centre.md):
    the account it vouched for identified and the session's amount fixed, so the form goes
    straight to the payment method. None for any other conversation."""
    kind, _, call_sid = tracker.sender_id.partition(":")
    if kind != "call" or not call_sid:
        return None
    svc = await services()
    found = await asyncio.to_thread(sessions.for_call, svc.engine, call_sid)
    if found is None:
        return None
    record = await svc.directory.find_by_account_number(found.account_number)
    if record is None:
        return None
    log.info("conversation %s: payment session %s", tracker.sender_id, found.public_id)
    events: list[EventType] = list(await customer.identify(svc, record, "contact_centre"))
    refused = customer.payable_check(svc, dispatcher, tracker, record)
    if refused:
        return events + refused
    first = record.name.split()[0] if record.name else ""
    say(dispatcher, tracker, "contact_centre_payment", first_name=first,
        amount=money(found.amount, record.currency))
    return [*events, SlotSet("ready_to_pay", True), SlotSet("payment_amount", str(found.amount))]


class ActionStartConversation(Action):
    """The first turn of a request: identify by caller ID when possible, then the form."""

    def name(self) -> str:
        return "action_start_conversation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        events = customer.forget_payment()
        events += await begin(dispatcher, tracker, REQUESTS.get(intent))
        if intent == "schedule_payment":
            events.append(SlotSet("payment_timing", "scheduled"))
            when = parse_date(tracker.latest_message.get("text") or "", today=date.today())
            if when is not None and when > date.today():
                events.append(SlotSet("payment_date", when.isoformat()))
        identified = tracker.get_slot("identified") or any(
            isinstance(e, dict) and e.get("name") == "identified" and e.get("value") for e in events
        )
        if not identified:
            say(dispatcher, tracker, "welcome")
        return events
