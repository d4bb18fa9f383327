"""Queries on ``accounts`` and ``payment_methods``."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from paybot.db.models import Account, PaymentMethod


def account_by_number(*, session: Session, account_number: str) -> Account | None:
    """The account numbered exactly ``account_number``, if any."""
    query = select(Account).where(Account.account_number == account_number)
    return session.exec(query).first()


def account_by_typed_number(*, session: Session, account_number: str) -> Account | None:
    """The account a person means by ``account_number`` (trimmed by the caller): numbered
    exactly so or in upper case, the upper-case one first (the CSV import stores numbers
    upper-case; other writers may not have)."""
    upper = account_number.upper()
    query = select(Account).where(Account.account_number.in_({account_number, upper}))
    rows = session.exec(query).all()
    rows.sort(key=lambda account: account.account_number != upper)
    return rows[0] if rows else None


def accounts_by_phone(*, session: Session, phone: str) -> list[Account]:
    """Every account registered to ``phone`` (E.164), any status, by account number."""
    query = select(Account).where(Account.phone == phone).order_by(Account.account_number)
    return list(session.exec(query).all())


def count_accounts(*, session: Session) -> int:
    """How many accounts there are."""
    return session.exec(select(func.count()).select_from(Account)).one()


def default_payment_method(*, session: Session, account_id: int) -> PaymentMethod | None:
    """The account's default reusable, not deleted payment method (the newest of equals)."""
    query = (
        select(PaymentMethod)
        .where(PaymentMethod.account_id == account_id)
        .where(PaymentMethod.deleted_at.is_(None))  # type: ignore[union-attr]
        .where(PaymentMethod.reusable.is_(True))  # type: ignore[attr-defined]
        .where(PaymentMethod.saved_at.is_not(None))  # type: ignore[union-attr]
        .order_by(PaymentMethod.is_default.desc(), PaymentMethod.id.desc())  # type: ignore
    )
    return session.exec(query).first()
