"""Agent-assisted payment from the console (docs/console.md): on a live call with an agent on
it, "Request payment" opens a form (account, item, amount with tax and shipping), which the
agent may cancel or send; sent, the request goes onto the call's command queue in the
live-calls registry (:meth:`~voice_bridge.live_calls.LiveCalls.request_payment`) and the agent
is taken back to the live calls, where the steps tick and the ending shows as a notification.
Agents and up, the CSRF token on the POST (:func:`~voice_bridge.console.guard.requires`).
"""

from __future__ import annotations

import asyncio
import unicodedata
from decimal import Decimal, InvalidOperation

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db import queries
from paybot.db.models import ConsoleRole
from paybot.payments.factory import amount_rules
from paybot.payments.payable import held_amount
from paybot.payments.rules import PaymentRefused
from paybot.settings import Settings
from voice_bridge.agent_payments import ITEM_MAX, PayRefused, PayRequest
from voice_bridge.console.guard import ACTIVE, Handler, requires
from voice_bridge.console.render import page
from voice_bridge.keys import DB_ENGINE, LIVE_CALLS, SETTINGS

MAX_AMOUNT = Decimal("100000.00")
CENT = Decimal("0.01")


def agent_pay_routes() -> list[tuple[str, str, Handler]]:
    """The routes to add under ``/console``."""
    return [
        ("GET", "/calls/{call_sid:CA[0-9a-f]{32}}/pay", pay_form),
        ("POST", "/calls/{call_sid:CA[0-9a-f]{32}}/pay", send_to_pay),
    ]


@requires(ConsoleRole.AGENT)
async def pay_form(request: web.Request) -> web.StreamResponse:
    return _form(request)


@requires(ConsoleRole.AGENT)
async def send_to_pay(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {name: str(form.get(name, "")).strip() for name in ("account", "item", "amount")}
    call_sid = request.match_info["call_sid"]
    try:
        amount = parse_amount(values["amount"])
        item = clean_item(values["item"])
        await asyncio.to_thread(_check_account, request.config_dict[SETTINGS],
                                request.config_dict[DB_ENGINE], values["account"], amount)
        pay = PayRequest(agent=request[ACTIVE].name, account_number=values["account"],
                         item=item, amount=amount)
        request.config_dict[LIVE_CALLS].request_payment(call_sid, pay)
    except PayRefused as exc:
        return _form(request, values, str(exc), 422)
    raise web.HTTPSeeOther(f"/console/calls?paying={call_sid}")


def _form(request: web.Request, values: dict[str, str] | None = None,
          message: str | None = None, status: int = 200) -> web.Response:
    call_sid = request.match_info["call_sid"]
    call = next((c for c in request.config_dict[LIVE_CALLS].snapshot()
                 if c.call_sid == call_sid), None)
    if call is None:
        raise web.HTTPNotFound()
    return page("agent_pay.html", status=status, title="Request payment", me=request[ACTIVE],
                call=call, values=values or {}, message=message, item_max=ITEM_MAX)


def parse_amount(text: str) -> Decimal:
    """Dollars and cents, tax and shipping included."""
    try:
        amount = Decimal(text.lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise PayRefused("The amount is not a number.") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise PayRefused("The amount must be more than zero, in dollars and cents.")
    if amount > MAX_AMOUNT:
        raise PayRefused(f"The amount may be at most {MAX_AMOUNT}.")
    return amount


def clean_item(text: str) -> str:
    """The product or invoice reference: printable, one line, at most ``ITEM_MAX`` long."""
    item = " ".join(text.split())
    if not item:
        raise PayRefused("Say what is being paid for: a product or an invoice reference.")
    if len(item) > ITEM_MAX or any(unicodedata.category(ch).startswith("C") for ch in item):
        raise PayRefused(f"The item must be plain text of at most {ITEM_MAX} characters.")
    if sum(ch.isdigit() for ch in item) >= 12:
        raise PayRefused("The item looks like a card number: use a product or invoice reference.")
    return item


def _check_account(settings: Settings, engine: Engine, number: str, amount: Decimal) -> None:
    """The account exists and may pay ``amount`` now (the ledger's rules, checked again when
    the card is charged): told to the agent before the caller is asked anything."""
    with Session(engine) as session:
        account = queries.account_by_number(session=session, account_number=number)
        if account is None or account.id is None:
            raise PayRefused("There is no account with that number.")
        try:
            amount_rules(settings).check(account, amount, held=held_amount(session, account.id))
        except PaymentRefused as exc:
            raise PayRefused(f"That account cannot pay this: {exc}") from None
