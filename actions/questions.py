"""The payment form's questions (``action_ask_<slot>``).

Each question is a response from ``bot/responses.yml``, filled with fresh values from the
database, plus a ``listen`` instruction that tells the voice bridge what kind of answer to
expect (digits, yes/no, an amount, a date or free speech) so it can tune end-of-turn detection
and ASR, and whether the caller may interrupt the question (not while a fee is disclosed).
"""

from __future__ import annotations

import abc
import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.recovery import HEARD, READ_BACK, spaced
from actions.responses import prepare, render_known, say
from actions.services import services
from actions.wording import day, method_label, money
from paybot.dialog.payloads import Listen, to_dict
from paybot.payments.rules import PaymentRefused

YES_NO = Listen("yes_no")


class AskAction(Action, abc.ABC):
    """Asks for one slot: a response plus what to listen for."""

    slot: str
    listen = Listen("free")

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    @abc.abstractmethod
    async def values(self, tracker: Tracker) -> dict[str, Any]:
        """The placeholders of the question (``response`` picks another response, ``listen``
        another instruction, ``prepare`` what the bot will probably say after the answer, for
        the voice bridge to synthesise ahead)."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        heard = tracker.get_slot(HEARD) if self.slot in READ_BACK else None
        if heard:  # what the caller said, read back before it is used (actions/recovery.py)
            values = {"response": "read_back", "digits": spaced(heard), "listen": YES_NO}
        else:
            values = await self.values(tracker)
        response = values.pop("response", f"ask_{self.slot}")
        listen = values.pop("listen", self.listen)
        likely_next = values.pop("prepare", [])
        say(dispatcher, tracker, response, **values)
        dispatcher.utter_message(json_message=to_dict(listen))
        prepare(dispatcher, tracker, *likely_next)
        return []


async def _account_values(tracker: Tracker) -> dict[str, Any]:
    svc = await services()
    record = await customer.current_account(svc, tracker)
    if record is None:
        return {}
    return {
        "first_name": tracker.get_slot("customer_first_name") or "",
        "balance": money(record.balance, record.currency),
        "minimum": money(record.minimum_payment, record.currency),
        "due": day(record.due_date),
    }


class AskReadyToPay(AskAction):
    slot = "ready_to_pay"
    listen = Listen("yes_no")

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        return await _account_values(tracker)


class AskAccountChoice(AskAction):
    """Several accounts on the caller's number: "the account ending 0300 at 12 Oak Street and
    the account ending 0399 at 48 Pine Avenue"; the answer may be digits or the street."""

    slot = "account_choice"
    listen = Listen("digits", min_digits=3, max_digits=12)

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        numbers = tracker.get_slot("account_candidates") or []
        addresses = await customer.service_addresses(await services(), numbers)
        described = [
            f"the account ending {n[-4:]}" + (f" at {addresses[n]}" if addresses.get(n) else "")
            for n in numbers
        ]
        values: dict[str, Any] = {"count": len(numbers), "choices": _and_list(described)}
        if any(addresses.values()):
            values["listen"] = Listen("free")  # a street name is not digits
        else:
            values["response"] = "ask_account_choice_by_digits"
        return values


def _and_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


class AskAccountNumber(AskAction):
    slot = "account_number"
    listen = Listen("digits", min_digits=4, max_digits=20, timeout_s=10.0)

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        return {}


class AskBillingZip(AskAction):
    """The ZIP after the account number; for a caller known by number, the one more factor
    (the ZIP, or the stored method's last four) before anything about the account is said."""

    slot = "billing_zip"
    listen = Listen("digits", min_digits=5, max_digits=9)

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        candidates = tracker.get_slot("account_candidates") or []
        if not candidates or tracker.get_slot("account_number"):
            return {}
        svc = await services()
        records = await customer.records(svc, candidates)
        if await svc.verifier.caller_factor(records, svc.settings.caller_id_factor) == "zip":
            return {"response": "ask_caller_zip"}
        return {"response": "ask_caller_last4", "listen": Listen("digits", 4, 4)}


class AskPaymentAmount(AskAction):
    slot = "payment_amount"
    listen = Listen("amount")

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        if (tracker.latest_message.get("intent") or {}).get("name") != "other_amount":
            return await _account_values(tracker)
        svc = await services()  # "another amount": just ask how much
        record = await customer.current_account(svc, tracker)
        if record is None:
            return await _account_values(tracker)
        low, high = svc.ledger.rules.allowed_range_for(record.balance)
        return {
            "response": "ask_other_amount",
            "low": money(low, record.currency),
            "high": money(high, record.currency) if high is not None else "any amount",
        }


class AskPaymentDate(AskAction):
    slot = "payment_date"
    listen = Listen("date")

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        return await _account_values(tracker)


class AskPaymentMethod(AskAction):
    slot = "payment_method"

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        svc = await services()
        record = await customer.current_account(svc, tracker)
        method = await customer.stored_method(svc, record.account_id if record else None)
        if method is None or tracker.get_slot("method_offer") == "new" or record is None:
            return {}
        values: dict[str, Any] = {
            "response": "ask_payment_method_stored",
            "method_label": method_label(method.brand, method.last4),
        }
        if tracker.get_slot("channel") != "voice":
            return values
        # Most callers take the stored method: the confirmation comes next.
        confirm = await confirmation_values(tracker, "stored")
        if confirm and confirm.get("response", "ask_confirm_payment") == "ask_confirm_payment":
            values["prepare"] = [render_known(tracker, "ask_confirm_payment", **confirm)]
        return values


class AskBankAccountType(AskAction):
    slot = "bank_account_type"

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        return {}


class AskConfirmPayment(AskAction):
    slot = "confirm_payment"
    listen = Listen("yes_no")

    async def values(self, tracker: Tracker) -> dict[str, Any]:
        return await confirmation_values(tracker, tracker.get_slot("payment_method"))


async def confirmation_values(tracker: Tracker, choice: str | None) -> dict[str, Any]:
    """The confirmation question's placeholders for paying by ``choice`` (``stored``,
    ``card``, ``bank``), and what the bot says once the caller agrees (``prepare``)."""
    svc = await services()
    record = await customer.current_account(svc, tracker)
    amount_slot = tracker.get_slot("payment_amount")
    if record is None or record.account_id is None or amount_slot is None:
        return {}
    amount = Decimal(amount_slot)
    scheduled = tracker.get_slot("payment_timing") == "scheduled"
    try:
        quote = await asyncio.to_thread(svc.ledger.quote, record.account_id, amount)
    except PaymentRefused as refused:
        return {"response": "payment_refused", "reason": str(refused)}
    disclosure = quote.disclosure()
    when = date.fromisoformat(tracker.get_slot("payment_date")) if scheduled else None
    if scheduled:
        disclosure = f"Your payment is {money(amount, record.currency)}."
    values: dict[str, Any] = {
        "disclosure": disclosure,
        "method_label": await _method_words(tracker, record.account_id, choice),
        "date": day(when) if when else "",
    }
    if quote.fee and not scheduled:
        # A fee disclosure must be heard in full: the caller cannot talk over it.
        values["listen"] = Listen("yes_no", barge_in=False)
    if when is not None:
        values["prepare"] = [render_known(
            tracker, "payment_scheduled", amount=money(amount, record.currency), date=day(when)
        )]
    elif choice == "stored":
        values["prepare"] = [render_known(
            tracker, "payment_succeeded", total=money(quote.total, record.currency)
        )]
    else:
        what = "bank account" if choice == "bank" else "card"
        values["prepare"] = [render_known(tracker, "secure_capture", what=what)]
    return values


async def _method_words(tracker: Tracker, account_id: int, choice: str | None) -> str:
    if choice == "stored":
        svc = await services()
        method = await customer.stored_method(svc, account_id)
        if method is not None:
            return method_label(method.brand, method.last4)
    if choice == "bank":
        return f"{tracker.get_slot('bank_account_type') or 'bank'} account"
    return "new card, which you'll key in next"
