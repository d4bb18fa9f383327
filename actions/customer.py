"""The caller's account as the actions see it: looked up fresh, never trusted from slots.

Slots remember *which* account the conversation is about (its number, once identified); the
balance, the due date and the stored payment method are always read again from the
directory and the database before they are spoken or used.
"""

from __future__ import annotations

import asyncio

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.responses import say
from actions.services import Services
from paybot.accounts.directory import AccountRecord
from paybot.accounts.methods import StoredMethod, default_method


async def current_account(svc: Services, tracker: Tracker) -> AccountRecord | None:
    """The identified account, fresh from the directory; None before identification."""
    number = tracker.get_slot("account_number")
    if not tracker.get_slot("identified") or not number:
        return None
    return await svc.directory.find_by_account_number(number)


async def stored_method(svc: Services, account_id: int | None) -> StoredMethod | None:
    """The account's default reusable payment method, if any."""
    if account_id is None:
        return None
    return await asyncio.to_thread(default_method, svc.engine, account_id)


async def records(svc: Services, numbers: list[str]) -> list[AccountRecord]:
    """The accounts with these numbers, fresh from the directory (unknown ones left out)."""
    found = await asyncio.gather(*(svc.directory.find_by_account_number(n) for n in numbers))
    return [r for r in found if r is not None]


async def service_addresses(svc: Services, numbers: list[str]) -> dict[str, str | None]:
    """The service address of each account (None if not on record), fresh from the directory."""
    records = await asyncio.gather(*(svc.directory.find_by_account_number(n) for n in numbers))
    return {n: r.service_address if r else None for n, r in zip(numbers, records, strict=True)}


async def identify(svc: Services, record: AccountRecord, how: str) -> list[SlotSet]:
    """Slots that say the conversation is about ``record`` (found by ``how``)."""
    method = await stored_method(svc, record.account_id)
    return [
        SlotSet("identified", True),
        SlotSet("identified_by", how),
        SlotSet("account_number", record.account_number),
        SlotSet("customer_first_name", record.name.split()[0] if record.name else ""),
        SlotSet("stored_method_id", float(method.id) if method else None),
    ]


def payable_check(
    svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, record: AccountRecord
) -> list[SlotSet]:
    """When the account cannot take a payment (closed, nothing owed, or its CRM not answering
    so the balance cannot be confirmed): say so, end the form."""
    if not record.confirmed:
        say(dispatcher, tracker, "balance_unconfirmed")
        return [SlotSet("form_outcome", "balance_unconfirmed")]
    if not record.is_active:
        say(dispatcher, tracker, "account_closed")
        return [SlotSet("form_outcome", "nothing_owed")]
    if record.balance <= 0 and not svc.settings.allow_overpayment:
        first = record.name.split()[0] if record.name else ""
        say(dispatcher, tracker, "nothing_owed", first_name=first)
        return [SlotSet("form_outcome", "nothing_owed")]
    return []


def forget_identity() -> list[SlotSet]:
    """Slots reset when the caller says the account is not theirs."""
    return [
        SlotSet(name, None)
        for name in (
            "identified",
            "identified_by",
            "account_number",
            "billing_zip",
            "account_choice",
            "customer_first_name",
            "stored_method_id",
            "account_candidates",
            "ready_to_pay",
            "heard_digits",
        )
    ]


def forget_payment() -> list[SlotSet]:
    """Slots reset to take a payment afresh (keeping who the caller is)."""
    return [
        SlotSet(name, None)
        for name in (
            "ready_to_pay",
            "payment_amount",
            "payment_date",
            "payment_method",
            "method_offer",
            "bank_account_type",
            "confirm_payment",
            "payment_key",
            "payment_timing",
            "form_outcome",
        )
    ]
