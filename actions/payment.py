"""Taking the payment once the form is complete, and hearing back from the secure capture.

Every result the caller hears is read from the database (the ledger's payment row), never
from a message: the capture result event only says "look now".
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from decimal import Decimal
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlmodel import Session

from actions import customer
from actions.anytime import anything_else, transfer
from actions.conversation import is_system_event
from actions.limits import at_limit, failed_captures
from actions.pay_link import send_pay_link
from actions.responses import say
from actions.scheduled import cancel_scheduled_offer, list_scheduled
from actions.services import Services, services
from actions.wording import REFUSALS, confirmation_spoken, day, decline_reason, money
from paybot.db import queries
from paybot.dialog.payloads import Listen, SecureCapture, to_dict
from paybot.payments.delegated import NOT_SUBMITTED
from paybot.payments.rules import PaymentRefused
from paybot.payments.scheduling import Scheduler
from paybot.payments.settlement import PaymentOutcome
from paybot.payments.style import payment_choice
from paybot.sms.consent import may_text

log = logging.getLogger(__name__)
ENDED_WITHOUT_PAYMENT = (
    "declined_to_pay", "nothing_owed", "not_confirmed", "text_no_card", "balance_unconfirmed"
)


class ActionCompletePayment(Action):
    """Runs when the payment form ends: pay, schedule, capture, transfer or wrap up."""

    def name(self) -> str:
        return "action_complete_payment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        outcome = tracker.get_slot("form_outcome")
        pending = tracker.get_slot("pending_request")
        if outcome in ("idv_failed", "idv_locked", "idv_busy"):
            return transfer(dispatcher, tracker, reason=outcome)
        if outcome == "stuck":  # one question asked three times in a row, still no answer
            say(dispatcher, tracker, "stuck")
            return customer.forget_payment() + transfer(dispatcher, tracker, reason="stuck")
        if pending in ("list_scheduled", "cancel_scheduled") and tracker.get_slot("identified"):
            events = [SlotSet("pending_request", None), SlotSet("form_outcome", None)]
            if pending == "list_scheduled":
                return events + await list_scheduled(dispatcher, tracker)
            return events + await cancel_scheduled_offer(dispatcher, tracker)
        if outcome == "pay_link" and tracker.get_slot("identified"):
            return await send_pay_link(dispatcher, tracker)
        if tracker.get_slot("confirm_payment") is not True or outcome:
            return customer.forget_payment() + anything_else(dispatcher, tracker)
        svc = await services()
        record = await customer.current_account(svc, tracker)
        if record is None or record.account_id is None:
            say(dispatcher, tracker, "payment_failed")
            return customer.forget_payment() + anything_else(dispatcher, tracker)
        if tracker.get_slot("payment_timing") == "scheduled":
            return await self._schedule(svc, dispatcher, tracker, record.account_id)
        if tracker.get_slot("payment_method") == "stored":
            return await self._pay_stored(svc, dispatcher, tracker, record.account_id)
        return self._secure_capture(
            svc, dispatcher, tracker, record.account_number, record.currency
        )

    async def _pay_stored(
        self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, account_id: int
    ) -> list[EventType]:
        method = await customer.stored_method(svc, account_id)
        if method is None:
            say(dispatcher, tracker, "payment_failed")
            return customer.forget_payment() + anything_else(dispatcher, tracker)
        try:
            outcome = await asyncio.to_thread(
                lambda: svc.ledger.pay_with_stored_method(
                    account_id=account_id,
                    payment_method_id=method.id,
                    amount=Decimal(tracker.get_slot("payment_amount")),
                    channel=tracker.get_slot("channel") or "chat",
                    conversation_id=tracker.sender_id,
                    idempotency_key=tracker.get_slot("payment_key"),
                )
            )
        except PaymentRefused as refused:
            dispatcher.utter_message(text=str(refused))
            return customer.forget_payment() + anything_else(dispatcher, tracker)
        return await respond(svc, dispatcher, tracker, outcome)

    async def _schedule(
        self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, account_id: int
    ) -> list[EventType]:
        method = await customer.stored_method(svc, account_id)
        amount = Decimal(tracker.get_slot("payment_amount"))
        try:
            if method is None:
                raise PaymentRefused("unknown_method", "There's no payment method on file.")
            outcome = await asyncio.to_thread(
                lambda: Scheduler(svc.ledger).schedule(
                    account_id=account_id,
                    payment_method_id=method.id,
                    amount=amount,
                    pay_on=date.fromisoformat(tracker.get_slot("payment_date")),
                    channel=tracker.get_slot("channel") or "chat",
                    conversation_id=tracker.sender_id,
                    idempotency_key=tracker.get_slot("payment_key"),
                )
            )
        except PaymentRefused as refused:
            dispatcher.utter_message(text=str(refused))
            return customer.forget_payment() + anything_else(dispatcher, tracker)
        say(
            dispatcher,
            tracker,
            "payment_scheduled",
            amount=money(outcome.amount, outcome.currency),
            date=day(outcome.scheduled_for),
            confirmation=_confirmation_words(tracker, outcome.confirmation_number or ""),
        )
        return [
            SlotSet("confirmation_number", outcome.confirmation_number),
            *customer.forget_payment(),
            *anything_else(dispatcher, tracker),
        ]

    def _secure_capture(
        self,
        svc: Services,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        account_number: str,
        currency: str,
    ) -> list[EventType]:
        method = tracker.get_slot("payment_method")
        mode = payment_choice(svc.settings).capture_mode
        instruction = SecureCapture(
            method="bank" if method == "bank" else "card",
            account_number=account_number,
            amount=str(tracker.get_slot("payment_amount")),
            currency=currency,
            idempotency_key=tracker.get_slot("payment_key"),
            bank_account_type=tracker.get_slot("bank_account_type") if method == "bank" else None,
            mode=mode,
            offer_save=mode == "tokenize",  # two steps: the caller may keep it on file
            allowed_brands=list(svc.profile.accepted_brands),
        )
        what = "bank account" if method == "bank" else "card"
        say(dispatcher, tracker, "secure_capture", what=what)
        dispatcher.utter_message(json_message=to_dict(instruction))
        return [SlotSet("stage", "capture")]


class ActionCaptureResult(Action):
    """The bridge finished a secure capture: read what happened from the payment row."""

    def name(self) -> str:
        return "action_capture_result"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if not is_system_event(tracker):  # words NLU mistook for the bridge's event
            say(dispatcher, tracker, "ask_rephrase")
            return []
        svc = await services()
        key = tracker.get_slot("payment_key")
        payment = await asyncio.to_thread(_payment_by_key, svc, key) if key else None
        if payment is not None and payment.status == "pending":  # two steps: charge the token
            payment = await asyncio.to_thread(svc.ledger.tokens.charge, payment.payment_id)
        # A <Pay> that ended before any charge (cancelled, too many attempts) left a failed
        # row: the caller hears what a keypad capture that ended so would have said.
        ended = payment is not None and payment.status == "failed"
        if ended and payment.decline_code in NOT_SUBMITTED:
            status = NOT_SUBMITTED[payment.decline_code]
        elif payment is not None:
            return await respond(svc, dispatcher, tracker, payment)
        else:
            status = next(
                (
                    e.get("value")
                    for e in tracker.latest_message.get("entities", [])
                    if e.get("entity") == "capture_status"
                ),
                None,
            )
        if status == "cancelled":
            say(dispatcher, tracker, "capture_cancelled")
            return another_method()
        say(dispatcher, tracker, "capture_failed" if status == "failed" else "payment_failed")
        limit = svc.profile.limits.failed_captures
        count = failed_captures(tracker)
        return at_limit(dispatcher, tracker, limit, count, "capture_failed") or another_method()


def _payment_by_key(svc: Services, key: str) -> PaymentOutcome | None:
    with Session(svc.engine) as session:
        row = queries.payment_by_key(session=session, idempotency_key=key)
        return PaymentOutcome.of(row) if row is not None else None


def _confirmation_words(tracker: Tracker, number: str) -> str:
    if tracker.get_slot("channel") == "voice":
        return confirmation_spoken(number)
    return "-".join(number[i : i + 3] for i in range(0, len(number), 3))


def another_method() -> list[EventType]:
    """Back to the payment method question, offering a new card or bank account."""
    return [
        SlotSet("payment_method", None),
        SlotSet("bank_account_type", None),
        SlotSet("confirm_payment", None),
        SlotSet("payment_key", None),
        SlotSet("method_offer", "new"),
        SlotSet("stage", None),
        FollowupAction("payment_form"),
    ]


async def respond(
    svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, outcome: PaymentOutcome
) -> list[EventType]:
    """Tell the payer what the database says happened to their payment (and offer a caller
    a text receipt, unless their number opted out of texts)."""
    log.info(
        "conversation %s: payment %s %s", tracker.sender_id, outcome.payment_id, outcome.status
    )
    events: list[EventType] = [SlotSet("payment_id", float(outcome.payment_id))]
    if outcome.succeeded:
        number = outcome.confirmation_number or ""
        say(
            dispatcher,
            tracker,
            "payment_succeeded",
            total=money(outcome.total, outcome.currency),
            confirmation=_confirmation_words(tracker, number),
            confirmation_spoken=confirmation_spoken(number),
        )
        events += [SlotSet("confirmation_number", number), *customer.forget_payment()]
        if tracker.get_slot("channel") != "voice":  # a texter has the confirmation already
            return events + anything_else(dispatcher, tracker)
        caller = tracker.get_slot("caller_number")
        if caller and not await asyncio.to_thread(may_text, svc.engine, caller):
            return events + anything_else(dispatcher, tracker)
        say(dispatcher, tracker, "ask_receipt")
        dispatcher.utter_message(json_message=to_dict(Listen("yes_no")))
        return events + [SlotSet("stage", "receipt")]
    if outcome.status == "declined":
        say(dispatcher, tracker, "payment_declined", reason=decline_reason(outcome.decline_code))
        declines = int(tracker.get_slot("decline_count") or 0) + 1
        events.append(SlotSet("decline_count", float(declines)))
        limit = svc.profile.limits.declines
        limited = at_limit(dispatcher, tracker, limit, declines, "declined")
        return events + (limited or another_method())
    if outcome.status == "failed" and outcome.decline_code in REFUSALS:
        say(dispatcher, tracker, "payment_declined", reason=REFUSALS[outcome.decline_code])
        return events + another_method()
    if outcome.status in ("unknown", "pending"):
        say(dispatcher, tracker, "payment_unknown")
    else:
        say(dispatcher, tracker, "payment_failed")
    return events + customer.forget_payment() + anything_else(dispatcher, tracker)
