"""Queries on ``payments``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlmodel import Session, select

from paybot.db.models import Payment, PaymentMethod, PaymentStatus

SCHEDULED = PaymentStatus.SCHEDULED.value


def payment_by_key(*, session: Session, idempotency_key: str) -> Payment | None:
    """The payment opened with ``idempotency_key``, if any (keys are unique)."""
    query = select(Payment).where(Payment.idempotency_key == idempotency_key)
    return session.exec(query).first()


def scheduled_payments(*, session: Session, account_id: int) -> list[Payment]:
    """The account's payments still ``scheduled``, soonest first."""
    query = (
        select(Payment)
        .where(Payment.account_id == account_id, Payment.status == SCHEDULED)
        .order_by(Payment.scheduled_for, Payment.id)
    )
    return list(session.exec(query).all())


def due_scheduled_payment_ids(*, session: Session, today: date) -> list[int]:
    """The ids of the ``scheduled`` payments whose day is ``today`` or earlier, oldest first."""
    query = (
        select(Payment.id)
        .where(Payment.status == SCHEDULED, Payment.scheduled_for <= today)
        .order_by(Payment.id)
    )
    return list(session.exec(query).all())


def payments_awaiting_gateway(
    *, session: Session, statuses: Iterable[str], gateway: str, updated_before: datetime
) -> list[tuple[int, str, datetime]]:
    """``(id, idempotency_key, updated_at)`` of ``gateway``'s payments in ``statuses`` last
    touched at or before ``updated_before``: the ones to ask that gateway about (a payment
    Twilio ``<Pay>`` took is not the gateway's to judge)."""
    query = (
        select(Payment.id, Payment.idempotency_key, Payment.updated_at)
        .where(Payment.status.in_(list(statuses)))  # type: ignore[attr-defined]
        .where(Payment.gateway == gateway)
        .where(Payment.updated_at <= updated_before)
        .order_by(Payment.id)
    )
    return [(row[0], row[1], row[2]) for row in session.exec(query).all()]


def unclaimed_payment_ids(*, session: Session, updated_before: datetime) -> list[int]:
    """``pending`` payments no gateway call was ever counted for (``attempts`` 0), last
    touched at or before ``updated_before``: a token made and never charged (the call went),
    or a crash before the first call."""
    query = (
        select(Payment.id)
        .where(Payment.status == PaymentStatus.PENDING.value, Payment.attempts == 0)
        .where(Payment.updated_at <= updated_before)
        .order_by(Payment.id)
    )
    return list(session.exec(query).all())


def used_token_payment_ids(*, session: Session) -> list[int]:
    """Payments past their charge whose token, made for them, is neither kept nor deleted."""
    query = (
        select(Payment.id)
        .join(PaymentMethod, PaymentMethod.id == Payment.payment_method_id)  # type: ignore
        .where(PaymentMethod.saved_at.is_(None), PaymentMethod.deleted_at.is_(None))  # type: ignore
        .where(Payment.status != PaymentStatus.PENDING.value)
        .order_by(Payment.id)
    )
    return list(session.exec(query).all())
