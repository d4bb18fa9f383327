"""Receipts by text message: written to the outbox, sent by whoever works through it."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import Account, OutboundMessage, Payment, PaymentStatus
from paybot.money import format_amount
from paybot.payments.confirmation import grouped


class ReceiptRefused(Exception):
    """There is no successful payment to send a receipt for."""


def receipt_text(payment: Payment, account: Account) -> str:
    """The receipt: amounts, method and confirmation number; never more than a last four."""
    total = format_amount(payment.total, payment.currency)
    fee = (
        f" (including a {format_amount(payment.fee, payment.currency)} fee)" if payment.fee else ""
    )
    method = f"{(payment.method_brand or 'card').title()} ending {payment.method_last4}"
    when = (payment.completed_at or payment.created_at).strftime("%b %d, %Y")
    number = grouped(payment.confirmation_number or "", "-")
    return (
        f"Payment received: {total}{fee} for account ending {account.account_number[-4:]}, "
        f"paid with {method} on {when}. Confirmation {number}."
    )


def queue_receipt(engine: Engine, *, payment_id: int, to: str) -> OutboundMessage:
    """Queue a receipt for a successful payment (once: a second request returns the first)."""
    with session_scope(engine) as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.status != PaymentStatus.SUCCEEDED.value:
            raise ReceiptRefused("no successful payment to send a receipt for")
        existing = queries.receipt_message(session=session, payment_id=payment_id)
        if existing is not None:
            return existing
        account = session.get(Account, payment.account_id)
        assert account is not None
        message = OutboundMessage(
            to=to, kind="receipt", body=receipt_text(payment, account), payment_id=payment_id
        )
        session.add(message)
        audit.record(
            session,
            "receipt.queued",
            account_id=account.id,
            payment_id=payment_id,
            conversation_id=payment.conversation_id,
        )
        return message
