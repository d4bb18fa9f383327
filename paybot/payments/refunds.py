"""Refunds of succeeded payments, asked for by a console admin with a reason.

A refund row is written (with its idempotency key, the amount and the reason) in the same
transaction that checks what is left to refund, with the payment locked; then the gateway is
asked, under that key, so submitting the same form twice refunds once. Pending and
succeeded refunds count against the payment's total: two admins at once cannot give back
more than was paid. A gateway timeout leaves the refund pending: the same key asks again.
When the whole total is back the payment becomes ``refunded``; the principal given back is
added to the account's balance again. Every step is in the audit log. Blocking: run in a
thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot import audit
from paybot.db.engine import write_scope
from paybot.db.models import Account, Payment, PaymentStatus, Refund, RefundStatus
from paybot.db.types import utcnow
from paybot.gateway.base import ChargeResult, Gateway, GatewayError, GatewayTimeout

log = logging.getLogger(__name__)
REFUNDABLE_GATEWAYS = ("sandbox", "stripe")
COUNTED = (RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value)
CENT = Decimal("0.01")


class RefundRefused(ValueError):
    """The refund cannot be made as asked; ``code`` names why, the message says it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RefundResult:
    refund_id: int
    status: str
    amount: Decimal
    error_code: str | None = None


def refunded_total(session: Session, payment_id: int) -> Decimal:
    """What pending and succeeded refunds of the payment add up to."""
    total = session.exec(
        select(func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.payment_id == payment_id, Refund.status.in_(COUNTED))  # type: ignore[attr-defined]
    ).one()
    return Decimal(str(total)).quantize(CENT)


def parse_amount(text: str | None) -> Decimal | None:
    """A refund amount typed in a form: blank for everything left, else dollars and cents."""
    if text is None or not text.strip():
        return None
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise RefundRefused("bad_amount", "the amount is not a number") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise RefundRefused("bad_amount", "the amount must be positive, in dollars and cents")
    return amount


def refund_payment(
    engine: Engine,
    gateway_for: Callable[[str], Gateway],
    *,
    payment_id: int,
    amount: Decimal | None,
    reason: str,
    actor: str,
    idempotency_key: str,
) -> RefundResult:
    """Refund ``amount`` (None: everything left) of payment ``payment_id``.

    Raises:
        RefundRefused: No reason, a payment that cannot be refunded, more than is left, or
            the key already used for another payment.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise RefundRefused("no_reason", "a refund needs a reason")
    if not 8 <= len(idempotency_key) <= 64:
        raise RefundRefused("bad_key", "the refund form is stale: open it again")
    with Session(engine) as session:
        paid = session.get(Payment, payment_id)
        if paid is None:
            raise RefundRefused("no_payment", "there is no such payment")
        name = paid.gateway
    try:
        gateway = gateway_for(name) if name in REFUNDABLE_GATEWAYS else None
    except Exception as exc:  # e.g. Stripe is no longer configured
        log.warning("refund of payment %s: no %s gateway (%s)", payment_id, name,
                    type(exc).__name__)
        gateway = None
    if gateway is None:
        raise RefundRefused("not_refundable", f"the {name} gateway takes no refunds here")
    refund, payment = _open(engine, payment_id, amount, reason[:500], actor, idempotency_key)
    if refund.status != RefundStatus.PENDING.value:
        return _result(refund)
    assert refund.id is not None and payment.gateway_transaction_id is not None
    try:
        answer = gateway.refund(
            payment.gateway_transaction_id, refund.amount, idempotency_key=idempotency_key
        )
    except GatewayTimeout:
        log.warning("refund %s of payment %s: the gateway did not answer", refund.id, payment_id)
        return _result(refund)
    except GatewayError as exc:
        return _result(_finish(engine, refund.id, None, exc.code))
    return _result(_finish(engine, refund.id, answer, None))


def _open(
    engine: Engine, payment_id: int, amount: Decimal | None, reason: str, actor: str, key: str
) -> tuple[Refund, Payment]:
    with write_scope(engine) as session:
        payment = session.exec(
            select(Payment).where(Payment.id == payment_id).with_for_update()
        ).first()
        if payment is None:
            raise RefundRefused("no_payment", "there is no such payment")
        existing = session.exec(select(Refund).where(Refund.idempotency_key == key)).first()
        if existing is not None:
            if existing.payment_id != payment_id:
                raise RefundRefused("bad_key", "the refund form is stale: open it again")
            return existing, payment
        if payment.status != PaymentStatus.SUCCEEDED.value:
            raise RefundRefused("not_refundable", f"a {payment.status} payment cannot be refunded")
        if payment.gateway not in REFUNDABLE_GATEWAYS or not payment.gateway_transaction_id:
            raise RefundRefused("not_refundable", "this payment's gateway takes no refunds here")
        left = payment.total - refunded_total(session, payment_id)
        chosen = left if amount is None else amount
        if chosen <= 0 or chosen > left:
            raise RefundRefused("too_much", f"at most {left} {payment.currency} is left to refund")
        refund = Refund(
            payment_id=payment_id, amount=chosen, currency=payment.currency, reason=reason,
            actor=actor, idempotency_key=key,
        )
        session.add(refund)
        session.flush()
        audit.record(session, "refund_requested", account_id=payment.account_id,
                     payment_id=payment_id, actor=actor, refund_id=refund.id, amount=chosen,
                     reason=reason)
        session.expunge(payment)
        return refund, payment


def _finish(
    engine: Engine, refund_id: int, answer: ChargeResult | None, error: str | None
) -> Refund:
    """Record the gateway's answer once; the payment is ``refunded`` when all of it is."""
    ok = answer is not None and answer.approved
    with write_scope(engine) as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None
        if refund.status != RefundStatus.PENDING.value:
            return refund
        payment = session.exec(
            select(Payment).where(Payment.id == refund.payment_id).with_for_update()
        ).one()
        refund.status = (RefundStatus.SUCCEEDED if ok else RefundStatus.FAILED).value
        refund.gateway_transaction_id = answer.transaction_id if answer else None
        refund.error_code = None if ok else (error or "declined")[:64]
        refund.completed_at = utcnow()
        session.add(refund)
        session.flush()
        if ok:
            _give_back(session, payment, refund)
        audit.record(
            session, "refund_succeeded" if ok else "refund_failed",
            account_id=payment.account_id, payment_id=payment.id, actor=refund.actor,
            refund_id=refund.id, amount=refund.amount, error=refund.error_code,
        )
        session.expunge(refund)
        return refund


def _give_back(session: Session, payment: Payment, refund: Refund) -> None:
    """The principal part of the refund goes back on the balance (the fee is refunded last);
    the whole total back makes the payment ``refunded``."""
    succeeded = session.exec(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status == RefundStatus.SUCCEEDED.value
        )
    ).one()
    back = Decimal(str(succeeded)).quantize(CENT)
    before = back - refund.amount
    principal = min(back, payment.amount) - min(before, payment.amount)
    if principal > 0:
        session.execute(
            update(Account)
            .where(Account.id == payment.account_id)
            .values(balance=Account.balance + principal, updated_at=utcnow())
        )
    if back >= payment.total:
        payment.status = PaymentStatus.REFUNDED.value
        payment.updated_at = utcnow()
        session.add(payment)


def _result(refund: Refund) -> RefundResult:
    assert refund.id is not None
    return RefundResult(refund.id, refund.status, refund.amount, refund.error_code)

