"""Listing and cancelling scheduled payments."""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.anytime import anything_else
from actions.conversation import begin
from actions.responses import say
from actions.services import services
from actions.wording import day, money
from paybot.dialog.payloads import Listen, to_dict
from paybot.payments.scheduling import Scheduler


async def _scheduled(tracker: Tracker):
    svc = await services()
    record = await customer.current_account(svc, tracker)
    if record is None or record.account_id is None:
        return svc, None, []
    items = await asyncio.to_thread(Scheduler(svc.ledger).list_scheduled, record.account_id)
    return svc, record, items


async def list_scheduled(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Say which payments are scheduled, soonest first."""
    _svc, _record, items = await _scheduled(tracker)
    if not items:
        say(dispatcher, tracker, "no_scheduled")
    else:
        described = [f"{money(p.amount, p.currency)} on {day(p.scheduled_for)}" for p in items]
        count = "one payment" if len(items) == 1 else f"{len(items)} payments"
        say(dispatcher, tracker, "scheduled_list", count=count, items="; ".join(described))
    return anything_else(dispatcher, tracker)


async def cancel_scheduled_offer(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType]:
    """Offer to cancel the soonest scheduled payment; a yes/no follows."""
    _svc, _record, items = await _scheduled(tracker)
    if not items:
        say(dispatcher, tracker, "no_scheduled")
        return anything_else(dispatcher, tracker)
    target = items[0]
    say(
        dispatcher,
        tracker,
        "ask_cancel_scheduled",
        amount=money(target.amount, target.currency),
        date=day(target.scheduled_for),
    )
    dispatcher.utter_message(json_message=to_dict(Listen("yes_no")))
    return [
        SlotSet("scheduled_target", float(target.payment_id)),
        SlotSet("stage", "cancel_scheduled"),
    ]


class ActionListScheduled(Action):
    def name(self) -> str:
        return "action_list_scheduled"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if not tracker.get_slot("identified"):
            return [
                *await begin(dispatcher, tracker, "list_scheduled"),
                FollowupAction("payment_form"),
            ]
        return await list_scheduled(dispatcher, tracker)


class ActionCancelScheduled(Action):
    """Offer to cancel the soonest scheduled payment (action_yes_no carries out the answer)."""

    def name(self) -> str:
        return "action_cancel_scheduled"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if not tracker.get_slot("identified"):
            return [
                *await begin(dispatcher, tracker, "cancel_scheduled"),
                FollowupAction("payment_form"),
            ]
        return await cancel_scheduled_offer(dispatcher, tracker)


async def answer_cancel_scheduled(
    dispatcher: CollectingDispatcher, tracker: Tracker, cancel: bool
) -> list[EventType]:
    """The caller's yes or no to "shall I cancel the payment of $50 on Friday?"."""
    svc, record, items = await _scheduled(tracker)
    target_id = int(tracker.get_slot("scheduled_target") or 0)
    target = next((p for p in items if p.payment_id == target_id), None)
    events: list[EventType] = [SlotSet("scheduled_target", None)]
    if target is None or record is None or record.account_id is None:
        say(dispatcher, tracker, "no_scheduled")
    elif cancel and await asyncio.to_thread(
        lambda: Scheduler(svc.ledger).cancel(
            target_id, account_id=record.account_id, conversation_id=tracker.sender_id
        )
    ):
        say(
            dispatcher,
            tracker,
            "scheduled_cancelled",
            amount=money(target.amount, target.currency),
            date=day(target.scheduled_for),
        )
    else:
        say(dispatcher, tracker, "scheduled_kept")
    return events + anything_else(dispatcher, tracker)
