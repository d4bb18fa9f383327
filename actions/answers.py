"""Yes and no outside the payment form: the answer to whatever the bot asked last.

The question is remembered in the ``stage`` slot (``receipt``, ``anything_else``,
``how_can_i_help``, ``cancel_scheduled``); one action answers them all, so the rules stay two
lines long. A filler ("uh", "hmm") is no answer, whatever NLU made of it: the question is
asked again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.anytime import anything_else, asks_again, goodbye, not_an_answer
from actions.conversation import begin
from actions.responses import render, say
from actions.scheduled import answer_cancel_scheduled
from actions.services import services
from paybot.parsing import is_filler
from paybot.receipts import ReceiptRefused, queue_receipt


class ActionYesNo(Action):
    def name(self) -> str:
        return "action_yes_no"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        yes = (tracker.latest_message.get("intent") or {}).get("name") == "affirm"
        stage = tracker.get_slot("stage")
        if is_filler(tracker.latest_message.get("text") or ""):
            return not_an_answer(dispatcher, tracker)
        if stage == "receipt":
            return await receipt(dispatcher, tracker, yes)
        if stage == "cancel_scheduled":
            return await answer_cancel_scheduled(dispatcher, tracker, yes)
        if stage in ("anything_else", "how_can_i_help") and not yes:
            return goodbye(dispatcher, tracker)  # "no, that's all"
        if stage == "how_can_i_help":  # "yes" to "what can I help you with?": the options
            say(dispatcher, tracker, "what_next")
            return [SlotSet("stage", None)]
        if tracker.get_slot("identified") or stage == "anything_else":
            text = render(tracker, "how_can_i_help")
            if asks_again(tracker, text):
                say(dispatcher, tracker, "what_next")
                return [SlotSet("stage", None)]
            dispatcher.utter_message(text=text)
            return [SlotSet("stage", "how_can_i_help")]
        return [*await begin(dispatcher, tracker), FollowupAction("payment_form")]


async def receipt(
    dispatcher: CollectingDispatcher, tracker: Tracker, wanted: bool
) -> list[EventType]:
    """Queue a text receipt to the caller's number when wanted; then, anything else?"""
    payment_id = tracker.get_slot("payment_id")
    to = tracker.get_slot("caller_number")
    if wanted and payment_id and not to:
        say(
            dispatcher,
            tracker,
            "receipt_no_number",
            confirmation=tracker.get_slot("confirmation_number"),
        )
    elif wanted and payment_id:
        svc = await services()
        try:
            await asyncio.to_thread(queue_receipt, svc.engine, payment_id=int(payment_id), to=to)
            say(dispatcher, tracker, "receipt_sent", last4=to[-4:])
        except ReceiptRefused:
            say(dispatcher, tracker, "payment_failed")
    return anything_else(dispatcher, tracker)
