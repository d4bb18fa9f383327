"""Sending a texter a secure pay link (paybot.paylinks) instead of taking card details by text.

A known, verified customer on SMS or chat who wants to pay with a new card or bank account gets
a one-time link for the amount they chose; the reply itself carries it. On SMS the link is
bound to the texting number, which gets the confirmation number by text once the bridge's pay
page has taken the payment.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal, InvalidOperation

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.anytime import anything_else
from actions.responses import say
from actions.services import services
from actions.wording import money
from paybot.paylinks import PayLinks

log = logging.getLogger(__name__)


async def send_pay_link(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Issue the link for the chosen amount and say it; then offer anything else."""
    svc = await services()
    record = await customer.current_account(svc, tracker)
    try:
        amount = Decimal(str(tracker.get_slot("payment_amount")))
    except InvalidOperation:
        amount = None
    if record is None or record.account_id is None or amount is None:
        say(dispatcher, tracker, "pay_link_failed")
        return customer.forget_payment() + anything_else(dispatcher, tracker)
    settings = svc.settings
    links = PayLinks.from_settings(settings, svc.engine)
    channel = tracker.get_slot("channel") or "chat"
    try:
        issued = await asyncio.to_thread(
            lambda: links.issue(
                account_id=record.account_id,
                amount=amount,
                channel=channel,
                base_url=settings.public_base_url,
                conversation_id=tracker.sender_id,
                notify_to=tracker.get_slot("caller_number") if channel == "sms" else None,
            )
        )
    except (LookupError, ValueError) as exc:
        log.warning(
            "conversation %s: no pay link (%s)", tracker.sender_id, type(exc).__name__
        )
        say(dispatcher, tracker, "pay_link_failed")
        return customer.forget_payment() + anything_else(dispatcher, tracker)
    fee = svc.ledger.fees.fee_for(amount)
    say(
        dispatcher,
        tracker,
        "pay_link_sent",
        amount=money(amount, record.currency),
        fee_note=f" (plus a {money(fee, record.currency)} convenience fee)" if fee else "",
        url=issued.url,
        minutes=str(max(1, settings.pay_link_ttl_s // 60)),
    )
    return customer.forget_payment() + anything_else(dispatcher, tracker)
