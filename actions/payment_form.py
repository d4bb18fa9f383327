"""``validate_payment_form``: which questions the payment form still needs, and what answers mean.

The form's questions, in order (``required_slots`` drops the ones that do not apply):

1. Identification (:mod:`actions.identification`): ``billing_zip`` then ``account_choice``
   for a caller known by number; ``account_number`` then ``billing_zip`` otherwise.
2. ``ready_to_pay``: "are you ready to make your payment of $321.72 now?" (yes takes the
   full balance straight to the payment method).
3. ``payment_amount``: the minimum, the balance, or another amount, said any way.
4. ``payment_date``: only for a scheduled payment.
5. ``payment_method`` (and ``bank_account_type`` for a bank account).
6. ``confirm_payment``: one confirmation with amount, fee, total and method.

Each slot is filled with the raw text (see the domain's ``from_text`` mappings) and parsed
here by :mod:`paybot.parsing`. Setting ``form_outcome`` ends the form early; the
``action_complete_payment`` action then says what happens next. An answer not understood
gets the keypad, then an agent, offered; no question is asked a fourth time
(:mod:`actions.recovery`). A balance question mixed into an answer ("no, what is my
balance") is answered as one, and the question asked again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date
from decimal import Decimal
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction

from actions import customer, recovery
from actions.anytime import tell_balance
from actions.identification import IdentificationValidation
from actions.intents import asks_balance, entity, explicit_yes, latest_intent, yes_no
from actions.method_choice import method_choice, names_stored
from actions.responses import say
from actions.services import Services, services
from actions.wording import day, money
from paybot.accounts.directory import AccountRecord
from paybot.parsing import is_filler, parse_amount, parse_date
from paybot.payments.ledger import new_idempotency_key
from paybot.payments.rules import PaymentRefused

log = logging.getLogger(__name__)
Slots = dict[str, Any]
_KEYED_DATE = re.compile(r"^(\d{1,2})(\d{2})$")  # "1215" on the keypad: December 15th


class ValidatePaymentForm(IdentificationValidation, FormValidationAction):
    """Validates the payment form's answers and decides its next question."""

    def name(self) -> str:
        return "validate_payment_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[str]:
        s = tracker.slots
        if s.get("form_outcome"):
            return []
        if not s.get("identified"):
            if not s.get("account_candidates"):
                return ["account_number", "billing_zip"]
            svc = await services()  # known by number: one more factor, then which account
            factor = [] if svc.settings.caller_id_factor == "none" else ["billing_zip"]
            return [*factor, "account_choice"]
        if s.get("pending_request") in ("list_scheduled", "cancel_scheduled"):
            return []
        scheduled = s.get("payment_timing") == "scheduled"
        wanted = [] if scheduled else ["ready_to_pay"]
        wanted.append("payment_amount")
        if scheduled:
            wanted.append("payment_date")
        wanted.append("payment_method")
        if s.get("payment_method") == "bank":
            wanted.append("bank_account_type")
        wanted.append("confirm_payment")
        return wanted

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """The validation, then the next question; but a question already asked three times
        in a row is not asked a fourth time: the form ends (``form_outcome`` ``stuck``) and
        ``action_complete_payment`` hands over to an agent."""
        events = await super().run(dispatcher, tracker, domain)
        asking = next(
            (e.get("value") for e in reversed(events) if e.get("name") == REQUESTED_SLOT), None
        )
        # Right after the message, with nothing taken from it, Rasa rejects the form and an
        # interruption rule answers first (help, balance, silence); the form asks afterwards.
        will_ask = recovery.answered_since_message(tracker) or any(
            e.get("event") == "slot" and e.get("name") != REQUESTED_SLOT for e in events
        )
        # Reading back what was heard is no new ask of the question.
        reading_back = any(e.get("name") == recovery.HEARD and e.get("value") for e in events)
        if (
            will_ask
            and asking
            and not reading_back
            and recovery.asked_in_a_row(tracker, asking) >= recovery.MAX_ASKS
        ):
            log.info("conversation %s: %s asked too often", tracker.sender_id, asking)
            return [*events[:-1], SlotSet("form_outcome", "stuck"), SlotSet(REQUESTED_SLOT, None)]
        return events

    # --- amount ---------------------------------------------------------------------
    async def validate_ready_to_pay(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        if isinstance(value, bool):  # kept from earlier in the form (it is re-activated)
            return {"ready_to_pay": value}
        if is_filler(str(value)):  # "hmm": no answer (and no amount either)
            say(dispatcher, tracker, "yes_no_not_understood")
            recovery.failed(dispatcher, tracker, "ready_to_pay")
            return {"ready_to_pay": None}
        if asks_balance(tracker, str(value)):  # "no, what is my balance"
            return await self._balance_first(dispatcher, tracker, "ready_to_pay")
        answer = yes_no(tracker, str(value))
        if answer is True:
            svc = await services()
            record = await customer.current_account(svc, tracker)
            if record is None:
                return {"ready_to_pay": None}
            checked = await self._check_amount(svc, dispatcher, tracker, record, record.balance)
            return {"ready_to_pay": checked.get("payment_amount") is not None, **checked}
        if answer is False:
            return {"ready_to_pay": False}
        if latest_intent(tracker) in ("inform", "make_payment", "other_amount", "nlu_fallback"):
            amount = await self.validate_payment_amount(value, dispatcher, tracker, domain)
            if amount.get("payment_amount") or amount.get("form_outcome"):
                return {"ready_to_pay": True, **amount}
            return {"ready_to_pay": False}
        say(dispatcher, tracker, "yes_no_not_understood")
        recovery.failed(dispatcher, tracker, "ready_to_pay")
        return {"ready_to_pay": None}

    async def validate_payment_amount(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        svc = await services()
        record = await customer.current_account(svc, tracker)
        if record is None:
            return {"payment_amount": None}
        if asks_balance(tracker, str(value)):
            return await self._balance_first(dispatcher, tracker, "payment_amount")
        if latest_intent(tracker) == "deny":
            return {"payment_amount": None, "form_outcome": "declined_to_pay"}
        if latest_intent(tracker) == "other_amount":
            return {"payment_amount": None}
        parsed = parse_amount(str(value), balance=record.balance, minimum=record.minimum_payment)
        if parsed.kind == "fraction" and parsed.amount is not None:
            share = f"{int((parsed.fraction or 0) * 100)} percent"
            say(dispatcher, tracker, "fraction_offer", share=share, amount=money(parsed.amount))
            return {"payment_amount": None}
        if parsed.amount is None:
            say(dispatcher, tracker, "amount_not_understood")
            recovery.failed(dispatcher, tracker, "payment_amount")
            return {"payment_amount": None}
        checked = await self._check_amount(svc, dispatcher, tracker, record, parsed.amount)
        if checked.get("payment_amount") is None and not checked.get("form_outcome"):
            recovery.failed(dispatcher, tracker, "payment_amount")  # misheard, perhaps
        return checked

    async def _balance_first(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str
    ) -> Slots:
        """A balance question instead of (or mixed into) an answer: answer it; the form
        then asks its question again."""
        svc = await services()
        record = await customer.current_account(svc, tracker)
        if record is not None:
            tell_balance(dispatcher, tracker, record)
        return {slot: None}

    async def _check_amount(
        self,
        svc: Services,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        record: AccountRecord,
        amount: Decimal,
    ) -> Slots:
        assert record.account_id is not None
        try:
            await asyncio.to_thread(svc.ledger.quote, record.account_id, amount)
        except PaymentRefused as refused:
            if refused.code != "amount_out_of_range":
                dispatcher.utter_message(text=str(refused))
                return {"payment_amount": None, "form_outcome": refused.code}
            low, high = svc.ledger.rules.allowed_range_for(record.balance)
            say(
                dispatcher,
                tracker,
                "amount_out_of_range",
                low=money(low, record.currency),
                high=money(high, record.currency) if high is not None else "any amount",
            )
            return {"payment_amount": None}
        return {"payment_amount": str(amount)}

    async def validate_payment_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        svc = await services()
        record = await customer.current_account(svc, tracker)
        if record is None:
            return {"payment_date": None}
        today = date.today()
        text = str(value).strip()
        keyed = _KEYED_DATE.match(text)  # month and day on the keypad
        when = parse_date(f"{keyed[1]}/{keyed[2]}" if keyed else text, today=today)
        if when is None:
            say(dispatcher, tracker, "date_not_understood")
            recovery.failed(dispatcher, tracker, "payment_date")
            return {"payment_date": None}
        if when <= today or (record.due_date and when > record.due_date):
            say(dispatcher, tracker, "date_out_of_range", due=day(record.due_date))
            recovery.failed(dispatcher, tracker, "payment_date")
            return {"payment_date": None}
        return {"payment_date": when.isoformat()}

    # --- method and confirmation ----------------------------------------------------------
    async def validate_payment_method(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        if asks_balance(tracker, str(value)):
            return await self._balance_first(dispatcher, tracker, "payment_method")
        choice, account_type = method_choice(tracker, str(value))
        stored = tracker.get_slot("stored_method_id")
        if choice in ("card", None) and stored and await names_stored(tracker, str(value)):
            choice = "stored"  # "use my Visa", "the one ending 4242"
        if choice is None:
            say(dispatcher, tracker, "method_not_understood")
            recovery.failed(dispatcher, tracker, "payment_method")
            return {"payment_method": None}
        if choice == "decline_stored":
            return {"payment_method": None, "method_offer": "new"}
        if choice == "stored" and not stored:
            choice = "card"
        if choice != "stored":
            return self._new_method(dispatcher, tracker, choice, account_type, bool(stored))
        return {"payment_method": "stored"}

    def _new_method(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        choice: str,
        account_type: str | None,
        has_stored: bool,
    ) -> Slots:
        if tracker.get_slot("payment_timing") == "scheduled":
            say(dispatcher, tracker, "schedule_needs_stored_method")
            return {"payment_method": None, "payment_timing": "now", "payment_date": None}
        if tracker.get_slot("channel") != "voice":
            # No card details by text: action_complete_payment sends a secure pay link for
            # the amount chosen (paybot.paylinks) instead.
            return {"payment_method": None, "form_outcome": "pay_link"}
        slots: Slots = {"payment_method": choice}
        if choice == "bank":
            slots["bank_account_type"] = account_type
        return slots

    async def validate_bank_account_type(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        text = str(value).lower()
        kind = entity(tracker, "account_type") or next(
            (t for t in ("checking", "savings") if t in text), None
        )
        if kind is None:
            say(dispatcher, tracker, "bank_type_not_understood")
            recovery.failed(dispatcher, tracker, "bank_account_type")
        return {"bank_account_type": kind}

    async def validate_confirm_payment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        if isinstance(value, bool):
            return {"confirm_payment": value}
        if asks_balance(tracker, str(value)):
            return await self._balance_first(dispatcher, tracker, "confirm_payment")
        answer = yes_no(tracker, str(value))
        if answer is False:
            say(dispatcher, tracker, "payment_not_confirmed")
            return {"confirm_payment": False, "form_outcome": "not_confirmed"}
        if answer is None or not explicit_yes(tracker, str(value)):
            say(dispatcher, tracker, "yes_no_not_understood")
            recovery.failed(dispatcher, tracker, "confirm_payment")
            return {"confirm_payment": None}
        # One key per confirmed request: a repeated "yes" can never charge twice.
        key = tracker.get_slot("payment_key") or new_idempotency_key()
        return {"confirm_payment": True, "payment_key": key}
