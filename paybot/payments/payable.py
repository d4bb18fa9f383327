"""What an account may still pay: its balance less the principal of its open payments.

A ``pending`` or ``unknown`` payment may already have taken money, so it counts against the
balance until it settles. Read it inside :func:`paybot.db.engine.write_scope` after
:func:`lock_account`, so that two payments of one account are opened one after the other.
"""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, select

from paybot.db.models import Account, Payment
from paybot.payments.rules import PaymentRefused
from paybot.payments.settlement import OPEN


def lock_account(session: Session, account_id: int) -> Account:
    """The account, its row locked until the transaction ends (``FOR UPDATE`` on PostgreSQL;
    SQLite ignores it and relies on the write lock of ``write_scope``)."""
    account = session.exec(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if account is None:
        raise PaymentRefused("unknown_account", "That account was not found.")
    return account


def held_amount(session: Session, account_id: int, *, exclude: int | None = None) -> Decimal:
    """The principal of the account's open payments (all but ``exclude``)."""
    query = select(Payment.amount).where(
        Payment.account_id == account_id,
        Payment.status.in_(OPEN),  # type: ignore[attr-defined]
    )
    if exclude is not None:
        query = query.where(Payment.id != exclude)
    return sum(session.exec(query).all(), Decimal("0.00"))
