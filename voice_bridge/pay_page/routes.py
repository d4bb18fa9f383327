"""``GET /pay/{token}`` and ``POST /pay/{token}``: the hosted page of a secure pay link.

GET shows the link's amount (fixed: the link is bound to it) and the card and bank forms,
each carrying a nonce signed for this rendering. POST checks, in order: the link (unknown,
forged or tampered with: 404; used or expired: 410), the form nonce (400), the amount posted
against the link's (changed: 400), the typed fields with the keypad capture's rules (400, the
form again with each error tied to its field). Then the link is consumed in one conditional
update (a second submit racing it gets 410) and paid through the ledger under the link's one
idempotency key; a success queues the text confirmation in the outbox for the number the link
was sent to. Every answer is ``no-store`` with a strict CSP, no referrer and no framing.

The typed card or bank details live only in the POST handler's memory (the form, then
:mod:`voice_bridge.secure_capture.web_form`): never logged, never stored, never echoed back.
Logs carry the link and payment ids.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from aiohttp import web
from sqlalchemy.engine import Engine

from paybot.money import format_amount
from paybot.paylinks import LinkRefused, LinkView, PayLinks
from paybot.paylinks.tokens import form_nonce_valid, new_form_nonce
from paybot.payments.ledger import Ledger
from paybot.payments.profile import load_profile
from paybot.payments.rules import PaymentRefused
from paybot.payments.settlement import PaymentOutcome
from paybot.receipts import queue_receipt
from paybot.settings import Settings
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.pay_page import page
from voice_bridge.runtime import RUNTIME
from voice_bridge.secure_capture.web_form import FormInvalid, FormPayment, read_form

log = logging.getLogger(__name__)
PAY_PAGE_PATH = "/pay/{token}"
MAX_FORM_BYTES = 16 * 1024  # a pay form is a few hundred bytes

REFUSALS: dict[str, tuple[int, str, str]] = {
    "unknown": (404, "Link not valid",
                "This payment link isn't valid. Please ask us for a new one."),
    "used": (410, "Link already used",
             "This payment link has already been used, so it can't take another payment."),
    "expired": (410, "Link expired",
                "This payment link has expired. Please text us and we'll send you a new one."),
    "stale": (400, "Page out of date",
              "This page is out of date. Please open your payment link again."),
    "amount": (400, "Amount can't change",
               "The amount of this payment link can't be changed. No payment was taken."),
    "unreadable": (400, "Form not understood",
                   "We couldn't read the form. Please open your payment link again."),
}


def add_pay_page_routes(app: web.Application) -> None:
    """Register the pay page (needs ``SETTINGS``, ``DB_ENGINE`` and the voice runtime's
    ledger)."""
    app.router.add_get(PAY_PAGE_PATH, show_pay_page)
    app.router.add_post(PAY_PAGE_PATH, submit_pay_page)


async def _find(request: web.Request) -> tuple[PayLinks, LinkView | web.Response]:
    """The links, and the valid link the request's token opens (or the refusal page)."""
    links = PayLinks.from_settings(request.app[SETTINGS], request.app[DB_ENGINE])
    try:
        return links, await asyncio.to_thread(links.find, request.match_info["token"])
    except LinkRefused as refused:
        return links, refusal(refused.code)


async def show_pay_page(request: web.Request) -> web.Response:
    """The form of a valid link; the refusal page of any other."""
    _, link = await _find(request)
    return link if isinstance(link, web.Response) else _form(request.app, link, 200)


async def submit_pay_page(request: web.Request) -> web.Response:
    """Check the link, the nonce, the amount and the fields; consume the link; pay once."""
    links, link = await _find(request)
    if isinstance(link, web.Response):
        return link
    settings = request.app[SETTINGS]
    form = await _read(request)
    if form is None:
        return refusal("unreadable")
    secret = settings.pay_link_secret.get_secret_value()
    if not form_nonce_valid(secret, link.token_hash, form.get("nonce"), settings.pay_link_ttl_s):
        return refusal("stale")
    if not _same_amount(form.get("amount"), link.amount):
        log.warning("pay link %s: a different amount was posted; refused", link.link_id)
        return refusal("amount")
    method = form.get("method") if form.get("method") in ("card", "bank") else "card"
    profile = await asyncio.to_thread(load_profile, settings)  # cached after the first read
    today = datetime.now(timezone.utc).date()
    try:
        payment = read_form(form, allowed_brands=profile.accepted_brands, today=today)
    except FormInvalid as invalid:
        log.info("pay link %s: form refused (%s)", link.link_id, invalid)
        account_type = form.get("account_type")
        return _form(request.app, link, 400, invalid.errors, method, account_type)
    del form  # the typed details now live in ``payment`` only
    try:
        await asyncio.to_thread(links.claim, link)
    except LinkRefused as refused:
        log.info("pay link %s: refused at submit (%s)", link.link_id, refused.code)
        return refusal(refused.code)
    ledger, engine = request.app[RUNTIME].ledger, request.app[DB_ENGINE]
    try:  # shielded: a payer who closes the page does not stop the payment half way
        outcome = await asyncio.shield(
            asyncio.to_thread(_pay_once, links, ledger, engine, link, payment)
        )
    except PaymentRefused as refused:
        log.info("pay link %s: the ledger refused the payment (%s)", link.link_id, refused.code)
        return _message(409, "Payment not taken", f"{refused} No payment was taken.")
    except Exception as exc:  # the link stays used: its key may have reached the gateway
        log.error("pay link %s: payment error %s", link.link_id, type(exc).__name__)
        return _message(
            503, "Something went wrong",
            "We couldn't finish your payment. Please text us before trying again.",
        )  # fmt: skip
    finally:
        del payment
    log.info("pay link %s: payment %s %s", link.link_id, outcome.payment_id, outcome.status)
    return _outcome(settings, link, outcome)


def _pay_once(
    links: PayLinks, ledger: Ledger, engine: Engine, link: LinkView, payment: FormPayment
) -> PaymentOutcome:
    """Pay the claimed link (blocking), record the payment on it and, for a success, queue
    the text confirmation to the number the link was sent to; a refusal before any charge
    gives the link back.

    Raises:
        PaymentRefused: the ledger's rules refused the payment.
    """
    try:
        outcome = payment.pay(ledger, link)
    except PaymentRefused:
        links.release(link)
        raise
    links.finish(link, outcome.payment_id)
    if outcome.succeeded and link.notify_to:
        queue_receipt(engine, payment_id=outcome.payment_id, to=link.notify_to)
    return outcome


async def _read(request: web.Request) -> dict[str, str] | None:
    """The posted fields (the first value of each), or None for a body that is not a
    reasonable urlencoded form."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    if request.content_length is None or request.content_length > MAX_FORM_BYTES:
        return None  # browsers send the length of a form; a larger one is not ours
    try:
        raw = await request.read()
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _same_amount(posted: str | None, amount: Decimal) -> bool:
    if posted is None or len(posted) > 20:
        return False
    try:
        value = Decimal(posted.strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return False
    return value.is_finite() and value == amount


def _outcome(settings: Settings, link: LinkView, outcome: PaymentOutcome) -> web.Response:
    if outcome.succeeded:
        texted = bool(link.notify_to)
        total = format_amount(outcome.total, outcome.currency)
        return _respond(200, lambda nonce: page.paid_page(
            business=settings.business_name, total=total,
            confirmation=outcome.confirmation_number or "", texted=texted, style_nonce=nonce,
        ))  # fmt: skip
    if outcome.status == "declined":
        return _message(
            402, "Payment declined",
            "Your payment was declined and nothing was charged. This link can't be used "
            "again: please text us for a new one, or use another way to pay.",
        )  # fmt: skip
    if outcome.status in ("pending", "unknown"):
        return _message(
            202, "Confirming your payment",
            "We're confirming your payment with the bank. Please don't pay again; we'll "
            "let you know by text.",
        )  # fmt: skip
    return _message(
        502, "Payment not taken",
        "We couldn't take your payment and nothing was charged. Please text us for a new link.",
    )  # fmt: skip


def _form(
    app: web.Application,
    link: LinkView,
    status: int,
    errors: Mapping[str, str] | None = None,
    method: str = "card",
    account_type: str | None = None,
) -> web.Response:
    settings = app[SETTINGS]
    form_nonce = new_form_nonce(settings.pay_link_secret.get_secret_value(), link.token_hash)
    kind = account_type if account_type in ("checking", "savings") else "checking"
    fee = app[RUNTIME].ledger.fees.fee_for(link.amount)
    return _respond(status, lambda nonce: page.form_page(
        link, business=settings.business_name, form_nonce=form_nonce, style_nonce=nonce,
        fee=fee, errors=errors, method=method, account_type=kind,
    ))  # fmt: skip


def refusal(code: str) -> web.Response:
    """The refusal page for ``code`` (no detail beyond what the payer can act on)."""
    status, title, message = REFUSALS[code]
    return _message(status, title, message)


def _message(status: int, title: str, message: str) -> web.Response:
    return _respond(status, lambda nonce: page.message_page(title, message, nonce))


def _respond(status: int, render: Callable[[str], str]) -> web.Response:
    """``render(style_nonce)`` as an HTML response with the page's security headers."""
    style_nonce = secrets.token_urlsafe(16)
    response = web.Response(
        status=status, text=render(style_nonce), content_type="text/html", charset="utf-8"
    )
    response.headers.update(
        {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'nonce-{style_nonce}'; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'"
            ),
            "Cache-Control": "no-store, max-age=0",
            "Pragma": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }
    )
    return response
