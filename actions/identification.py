"""The payment form's identification questions: who is calling, before anything about an
account is said.

- ``billing_zip`` then ``account_choice``: a caller known by number (the accounts on it are
  ``account_candidates``) first confirms one more factor, the billing ZIP or the stored
  method's last four (``PAYBOT_CALLER_ID_FACTOR``); then, when several accounts share the
  number, which one (the last digits, or the street of the service address)?
- ``account_number`` then ``billing_zip``: ID&V when the caller is not known by number.

A spoken account number, ZIP or last four heard with low confidence is read back before it
is used (:mod:`actions.recovery`): a misheard ZIP then costs the caller a "no", not a failed
verification.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import customer, recovery
from actions.intents import yes_no
from actions.recovery import HEARD
from actions.responses import say
from actions.services import Services, services
from paybot.accounts.directory import AccountRecord
from paybot.identity import Verification
from paybot.parsing import parse_digit_string
from paybot.parsing.addresses import pick_address
from paybot.parsing.card_numbers import contains_card_number, is_card_number

Slots = dict[str, Any]


class IdentificationValidation:
    """The identification validators of :class:`actions.payment_form.ValidatePaymentForm`."""

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
        return _settled(tracker, await self._account_number(value, dispatcher, tracker))

    async def validate_billing_zip(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> Slots:
        return _settled(tracker, await self._billing_zip(value, dispatcher, tracker))

    async def _account_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> Slots:
        digits = parse_digit_string(str(value))
        if contains_card_number(str(value)) or (digits and is_card_number(digits)):
            say(dispatcher, tracker, "card_number_not_account")  # never stored, never looked up
            return {"account_number": None}
        digits, slots = await self._heard_digits(
            "account_number", "not_understood_account", range(4, 33), value, dispatcher, tracker
        )
        if digits is None:
            return slots
        if not 4 <= len(digits) <= 32:
            say(dispatcher, tracker, "not_understood_account")
            recovery.failed(dispatcher, tracker, "account_number")
            return {"account_number": None}
        return {"account_number": digits}

    async def _billing_zip(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> Slots:
        candidates = tracker.get_slot("account_candidates") or []
        if candidates and not tracker.get_slot("account_number"):
            return await self._confirm_caller(value, dispatcher, tracker, candidates)
        digits, slots = await self._heard_digits(
            "billing_zip", "not_understood_zip", (5, 9), value, dispatcher, tracker
        )
        if digits is None:
            return slots
        if len(digits) not in (5, 9):
            say(dispatcher, tracker, "not_understood_zip")
            recovery.failed(dispatcher, tracker, "billing_zip")
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

    async def _heard_digits(
        self,
        slot: str,
        not_understood: str,
        lengths: Container[int],
        value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> tuple[str | None, Slots]:
        """The digits of an answer to ``slot``, once they can be used: the answer to a
        read-back (yes: the digits heard; no: try again), or a new answer, read back first
        when it was spoken and heard with low confidence (and has one of the ``lengths``
        wanted: a wrong length is simply wrong). ``(None, slots)`` when the form
        asks again (``slots`` says why)."""
        text = str(value)
        digits = parse_digit_string(text)
        pending = tracker.get_slot(HEARD)
        if pending and not digits:
            answer = yes_no(tracker, text)
            if answer is True:
                return pending, {}
            say(dispatcher, tracker, "read_back_wrong" if answer is False else "read_back_unclear")
            recovery.failed(dispatcher, tracker, slot)
            return None, {slot: None, HEARD: None}
        if digits is None:
            say(dispatcher, tracker, not_understood)
            recovery.failed(dispatcher, tracker, slot)
            return None, {slot: None}
        if len(digits) in lengths and not is_card_number(digits) and (
            await recovery.doubtful(tracker)
        ):
            return None, {slot: None, HEARD: digits}
        return digits, {}

    async def _confirm_caller(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, candidates: list
    ) -> Slots:
        """The one more factor of a caller known by number (the ZIP or the stored method's
        last four); a wrong one is a verification failure like a wrong ZIP."""
        svc = await services()
        records = await customer.records(svc, candidates)
        factor = await svc.verifier.caller_factor(records, svc.settings.caller_id_factor)
        not_understood = "not_understood_last4" if factor == "last4" else "not_understood_zip"
        lengths = (4,) if factor == "last4" else (5, 9)
        digits, slots = await self._heard_digits(
            "billing_zip", not_understood, lengths, value, dispatcher, tracker
        )
        if digits is None:
            return slots
        if factor == "last4" and len(digits) != 4:
            say(dispatcher, tracker, "not_understood_last4")
            recovery.failed(dispatcher, tracker, "billing_zip")
            return {"billing_zip": None}
        if factor == "zip" and len(digits) not in (5, 9):
            say(dispatcher, tracker, "not_understood_zip")
            recovery.failed(dispatcher, tracker, "billing_zip")
            return {"billing_zip": None}
        outcome = await svc.verifier.confirm_caller(
            records=records,
            answer=digits,
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
        # A misheard ZIP is the usual cause: the keypad, then an agent, as for any miss.
        slot = "billing_zip" if caller else "account_number"
        recovery.failed(dispatcher, tracker, slot, failures=failures)
        return {
            "account_number": None,
            "billing_zip": None,
            "idv_failures": float(failures),
        }

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


def _settled(tracker: Tracker, slots: Slots) -> Slots:
    """Digits waiting for a read-back are forgotten once the answer settles them."""
    if tracker.get_slot(HEARD) and HEARD not in slots:
        return {**slots, HEARD: None}
    return slots
