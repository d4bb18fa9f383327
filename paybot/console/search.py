"""Payment search for the console: by confirmation number, account number or a date range
(UTC days of ``created_at``), newest first, a page at a time; and one payment's detail.
Brand and last four only: the tables hold nothing more. Blocking: run in a thread."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.models import Account, Payment, Refund
from paybot.payments.refunds import refunded_total

PAGE_SIZE = 25


@dataclass(frozen=True)
class PaymentQuery:
    """What to look for; every part given must match."""

    confirmation: str | None = None
    account_number: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive

    @property
    def empty(self) -> bool:
        return not (self.confirmation or self.account_number or self.date_from or self.date_to)


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    account_number: str
    account_name: str


@dataclass(frozen=True)
class Page:
    rows: list[PaymentRow]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    account_number: str
    account_name: str
    refunds: list[Refund]
    refunded: Decimal

    @property
    def refundable(self) -> Decimal:
        """What an admin may still give back (zero unless the payment succeeded)."""
        if self.payment.status != "succeeded":
            return Decimal("0.00")
        return max(self.payment.total - self.refunded, Decimal("0.00"))


def search_payments(engine: Engine, query: PaymentQuery, page: int = 1) -> Page:
    """One page (from 1) of the payments matching ``query``."""
    conditions = []
    if query.confirmation:
        conditions.append(Payment.confirmation_number == query.confirmation.strip())
    if query.account_number:
        conditions.append(Account.account_number == query.account_number.strip())
    if query.date_from:
        conditions.append(Payment.created_at >= _start_of(query.date_from))
    if query.date_to:
        conditions.append(Payment.created_at < _start_of(query.date_to + timedelta(days=1)))
    with Session(engine, expire_on_commit=False) as session:
        base = select(Payment, Account).join(Account, Account.id == Payment.account_id)
        count = select(func.count()).select_from(Payment).join(
            Account, Account.id == Payment.account_id
        )
        for condition in conditions:
            base, count = base.where(condition), count.where(condition)
        total = session.exec(count).one()
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(max(1, page), pages)
        found = session.exec(
            base.order_by(Payment.created_at.desc(), Payment.id.desc())  # type: ignore[union-attr]
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        ).all()
    rows = [PaymentRow(p, a.account_number, a.name) for p, a in found]
    return Page(rows=rows, total=total, page=page, pages=pages)


def payment_detail(engine: Engine, payment_id: int) -> PaymentDetail | None:
    with Session(engine, expire_on_commit=False) as session:
        found = session.exec(
            select(Payment, Account)
            .join(Account, Account.id == Payment.account_id)
            .where(Payment.id == payment_id)
        ).first()
        if found is None:
            return None
        payment, account = found
        refunds = list(session.exec(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        ).all())
        refunded = refunded_total(session, payment_id)
    return PaymentDetail(payment, account.account_number, account.name, refunds, refunded)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)
