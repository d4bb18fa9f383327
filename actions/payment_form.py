"""``validate_payment_form``: which questions the payment form still needs, and what answers mean.

The form's questions, in order (``required_slots`` drops the ones that do not apply):

1. ``billing_zip`` then ``account_choice``: a caller known by number (the accounts on it are
   ``account_candidates``) first confirms one more factor, the billing ZIP or the stored
   method's last four (``PAYBOT_CALLER_ID_FACTOR``); then, when several accounts share the
   number, which one (the last digits, or the street of the service address)?
2. ``account_number`` then ``billing_zip``: ID&V when the caller is not known by number.
3. ``ready_to_pay``: "are you ready to make your payment of $321.72 now?" (yes takes the
   full balance straight to the payment method).
4. ``payment_amount``: the minimum, the balance, or another amount, said any way.
5. ``payment_date``: only for a scheduled payment.
6. ``payment_method`` (and ``bank_account_type`` for a bank account).
7. ``confirm_payment``: one confirmation with amount, fee, total and method.

Each slot is filled with the raw text (see the domain's ``from_text`` mappings) and parsed
here by :mod:`paybot.parsing`. Setting ``form_outcome`` ends the form early; the
``action_complete_payment`` action then says what happens next.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from decimal import Decimal
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction

from actions import customer
from actions.anytime import MAX_ASKS
from actions.responses import say
from actions.services import Services, services
from actions.wording import day, money
from paybot.accounts.directory import AccountRecord
from paybot.identity import Verification
from paybot.parsing import (
    is_filler,
    parse_amount,
    parse_date,
    parse_digit_string,
    parse_yes_no,
)
from paybot.parsing.addresses import pick_address
from paybot.parsing.card_numbers import contains_card_number, is_card_number
from paybot.payments.ledger import new_idempotency_key
from paybot.payments.rules import PaymentRefused

log = logging.getLogger(__name__)
Slots = dict[str, Any]

CARD_WORDS = ("card", "credit", "debit", "visa", "mastercard", "amex", "discover")
BANK_WORDS = ("bank", "checking", "savings", "account", "ach", "check", "echeck")
STORED_WORDS = ("on file", "saved", "same", "usual", "stored", "that one", "the one")


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def yes_no(tracker: Tracker, text: str) -> bool | None:
    """Affirm/deny from NLU, else the keypad/keyword parser. A filler alone ("uh") is
    neither: NLU may call it affirm, and nobody should pay on an "uh"."""
    if is_filler(text):
        return None
    intent = latest_intent(tracker)
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    return parse_yes_no(text)


def asked_in_a_row(tracker: Tracker, slot: str) -> int:
    """In how many turns in a row before this one the form asked for ``slot`` (it sets
    ``requested_slot`` each time it asks; another question, the form ending, or a failed
    verification breaks the run)."""
    count, in_turn, this_turn = 0, False, True
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            count, in_turn = count + (in_turn and not this_turn), False
            this_turn = False
        elif kind == "slot" and event.get("name") == "idv_failures":
            break  # a wrong account number or ZIP: the verification's own count governs
        elif this_turn:
            continue
        elif kind == "slot" and event.get("name") == REQUESTED_SLOT:
            if event.get("value") != slot:
                break
            in_turn = True
        elif kind == "active_loop" and event.get("name") is None:
            break
    return count + in_turn


def _answered_since_message(tracker: Tracker) -> bool:
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


class ValidatePaymentForm(FormValidationAction):
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
        will_ask = _answered_since_message(tracker) or any(
            e.get("event") == "slot" and e.get("name") != REQUESTED_SLOT for e in events
        )
        if will_ask and asking and asked_in_a_row(tracker, asking) >= MAX_ASKS:
            log.info("conversation %s: %s asked %d times", tracker.sender_id, asking, MAX_ASKS)
            return [*events[:-1], SlotSet("form_outcome", "stuck"), SlotSet(REQUESTED_SLOT, None)]
        return events

    # --- identification -------------------------------------------------------------
    async def validate_account_choice(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        digits = parse_digit_string(str(value)) or ""
        candidates = tracker.get_slot("account_candidates") or []
        matches = [n for n in candidates if len(digits) >= 3 and n.endswith(digits)]
        svc = await services()
        if not matches:  # "the one on Oak Street", "Oak", "forty eight"
            addresses = await customer.service_addresses(svc, candidates)
            chosen = pick_address(str(value), addresses)
            matches = [chosen] if chosen else []
        if len(matches) == 1:
            record = await svc.directory.find_by_account_number(matches[0])
            if record is not None:
                return await self._identified(svc, dispatcher, tracker, record, "caller_id")
        say(dispatcher, tracker, "account_choice_not_understood")
        # After a miss, fall back to the full account number and ZIP.
        return {"account_choice": None, "account_candidates": [], "billing_zip": None}

    async def validate_account_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        digits = parse_digit_string(str(value))
        if contains_card_number(str(value)) or (digits and is_card_number(digits)):
            say(dispatcher, tracker, "card_number_not_account")  # never stored, never looked up
            return {"account_number": None}
        if digits is None or not 4 <= len(digits) <= 32:
            say(dispatcher, tracker, "not_understood_account")
            return {"account_number": None}
        return {"account_number": digits}

    async def validate_billing_zip(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        candidates = tracker.get_slot("account_candidates") or []
        if candidates and not tracker.get_slot("account_number"):
            return await self._confirm_caller(value, dispatcher, tracker, candidates)
        digits = parse_digit_string(str(value))
        if digits is None or len(digits) not in (5, 9):
            say(dispatcher, tracker, "not_understood_zip")
            return {"billing_zip": None}
        svc = await services()
        outcome = await svc.verifier.verify(
            account_number=tracker.get_slot("account_number") or "",
            billing_zip=digits,
            caller_phone=tracker.get_slot("caller_number"),
            conversation_id=tracker.sender_id,
        )
        if outcome.result is Verification.VERIFIED and outcome.record is not None:
            return await self._identified(svc, dispatcher, tracker, outcome.record, "account")
        return self._failed_verification(svc, dispatcher, tracker, outcome.result)

    async def _confirm_caller(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, candidates: list
    ) -> Slots:
        """The one more factor of a caller known by number (the ZIP or the stored method's
        last four); a wrong one is a verification failure like a wrong ZIP."""
        svc = await services()
        records = await customer.records(svc, candidates)
        factor = await svc.verifier.caller_factor(records, svc.settings.caller_id_factor)
        digits = parse_digit_string(str(value))
        if factor == "last4" and (digits is None or len(digits) != 4):
            say(dispatcher, tracker, "not_understood_last4")
            return {"billing_zip": None}
        if factor == "zip" and (digits is None or len(digits) not in (5, 9)):
            say(dispatcher, tracker, "not_understood_zip")
            return {"billing_zip": None}
        outcome = await svc.verifier.confirm_caller(
            records=records,
            answer=digits or "",
            factor=factor,
            caller_phone=tracker.get_slot("caller_number") or "",
            conversation_id=tracker.sender_id,
        )
        if outcome.result is not Verification.VERIFIED:
            return self._failed_verification(svc, dispatcher, tracker, outcome.result, caller=True)
        if len(outcome.records) == 1:
            return await self._identified(svc, dispatcher, tracker, outcome.record, "caller_id")
        matched = [r.account_number for r in outcome.records]
        return {"billing_zip": "caller_id", "account_candidates": matched}

    def _failed_verification(
        self,
        svc: Services,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        result: Verification,
        *,
        caller: bool = False,
    ) -> Slots:
        failures = int(tracker.get_slot("idv_failures") or 0) + 1
        if result is Verification.THROTTLED:
            say(dispatcher, tracker, "idv_busy")
            return {"form_outcome": "idv_busy"}
        if result is Verification.LOCKED:
            say(dispatcher, tracker, "idv_locked")
            return {"form_outcome": "idv_locked", "idv_failures": float(failures)}
        if failures >= svc.settings.idv_max_attempts:
            say(dispatcher, tracker, "idv_transfer")
            return {"form_outcome": "idv_failed", "idv_failures": float(failures)}
        say(dispatcher, tracker, "caller_factor_failed" if caller else "idv_failed")
        return {"account_number": None, "billing_zip": None, "idv_failures": float(failures)}

    async def _identified(
        self,
        svc: Services,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        record: AccountRecord,
        how: str,
    ) -> Slots:
        events = await customer.identify(svc, record, how)
        events += customer.payable_check(svc, dispatcher, tracker, record)
        slots = {e["name"]: e["value"] for e in events}
        slots["account_choice"] = record.account_number[-4:]
        slots["billing_zip"] = "verified" if how == "account" else "caller_id"
        return slots

    # --- amount ---------------------------------------------------------------------
    async def validate_ready_to_pay(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        if isinstance(value, bool):  # kept from earlier in the form (it is re-activated)
            return {"ready_to_pay": value}
        if is_filler(str(value)):  # "hmm": no answer (and no amount either)
            say(dispatcher, tracker, "yes_no_not_understood")
            return {"ready_to_pay": None}
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
        return {"ready_to_pay": None}

    async def validate_payment_amount(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        svc = await services()
        record = await customer.current_account(svc, tracker)
        if record is None:
            return {"payment_amount": None}
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
            return {"payment_amount": None}
        return await self._check_amount(svc, dispatcher, tracker, record, parsed.amount)

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
        when = parse_date(str(value), today=today)
        if when is None:
            say(dispatcher, tracker, "date_not_understood")
            return {"payment_date": None}
        if when <= today or (record.due_date and when > record.due_date):
            say(dispatcher, tracker, "date_out_of_range", due=day(record.due_date))
            return {"payment_date": None}
        return {"payment_date": when.isoformat()}

    # --- method and confirmation ----------------------------------------------------------
    async def validate_payment_method(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        choice, account_type = self._method_choice(tracker, str(value))
        stored = tracker.get_slot("stored_method_id")
        if choice in ("card", None) and stored and await self._names_stored(tracker, str(value)):
            choice = "stored"  # "use my Visa", "the one ending 4242"
        if choice is None:
            say(dispatcher, tracker, "method_not_understood")
            return {"payment_method": None}
        if choice == "decline_stored":
            return {"payment_method": None, "method_offer": "new"}
        if choice == "stored" and not stored:
            choice = "card"
        if choice != "stored":
            return self._new_method(dispatcher, tracker, choice, account_type, bool(stored))
        return {"payment_method": "stored"}

    async def _names_stored(self, tracker: Tracker, text: str) -> bool:
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

    def _method_choice(self, tracker: Tracker, text: str) -> tuple[str | None, str | None]:
        lowered = text.lower()
        account_type = entity(tracker, "account_type") or next(
            (t for t in ("checking", "savings") if t in lowered), None
        )
        chosen = entity(tracker, "method")
        if chosen in ("card", "bank", "stored"):
            return chosen, account_type
        offered_stored = tracker.get_slot("stored_method_id") and (
            tracker.get_slot("method_offer") != "new"
        )
        answer = yes_no(tracker, text)
        if offered_stored and answer is True:
            return "stored", account_type
        if any(word in lowered for word in STORED_WORDS):
            return "stored", account_type
        if any(word in lowered for word in BANK_WORDS):
            return "bank", account_type
        if any(word in lowered for word in CARD_WORDS):
            return "card", account_type
        if offered_stored and answer is False:
            return "decline_stored", account_type
        return None, account_type

    def _new_method(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        choice: str,
        account_type: str | None,
        has_stored: bool,
    ) -> Slots:
        if tracker.get_slot("channel") != "voice":
            say(dispatcher, tracker, "text_no_card")
            if has_stored:
                return {"payment_method": None, "method_offer": "stored"}
            return {"payment_method": None, "form_outcome": "text_no_card"}
        if tracker.get_slot("payment_timing") == "scheduled":
            say(dispatcher, tracker, "schedule_needs_stored_method")
            return {"payment_method": None, "payment_timing": "now", "payment_date": None}
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
        return {"bank_account_type": kind}

    async def validate_confirm_payment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        if isinstance(value, bool):
            return {"confirm_payment": value}
        answer = yes_no(tracker, str(value))
        if answer is None:
            say(dispatcher, tracker, "yes_no_not_understood")
            return {"confirm_payment": None}
        if answer is False:
            say(dispatcher, tracker, "payment_not_confirmed")
            return {"confirm_payment": False, "form_outcome": "not_confirmed"}
        # One key per confirmed request: a repeated "yes" can never charge twice.
        key = tracker.get_slot("payment_key") or new_idempotency_key()
        return {"confirm_payment": True, "payment_key": key}
