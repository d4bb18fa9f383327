"""What an account may still pay: its balance less the principal of its open payments.

A ``pending`` or ``unknown`` payment may already have taken money, so it counts against the
balance until it settles. Read it inside :func:`paybot.db.engine.write_scope` after
:func:`lock_account`, so that two payments of one account are opened one after the other.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from sqlalchemy import bindparam, func, type_coerce
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select
from sqlmodel import Session, select

from paybot.db.models import Account, Payment
from paybot.db.types import Money
from paybot.payments.rules import PaymentRefused
from paybot.payments.settlement import OPEN

_LOCKED = "payable.locked_accounts"  # session.info: (transaction, ids of the accounts it locked)


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


def lock_for_payment(
    session: Session, account_id: int, idempotency_key: str
) -> tuple[Row, Decimal, int | None]:
    """:func:`lock_account` (the account as a row: id, status, currency, balance),
    :func:`held_amount` and the id of the payment already opened with ``idempotency_key`` (or
    None).

    The first time in a transaction on PostgreSQL, two statements: the lock, then the rest. A
    statement reads as of its start, so a sum taken by the statement that waited for the lock
    would miss the payment the lock's previous holder just committed. Once the transaction
    holds the lock (another payment of the account in the same group commit batch), or on
    SQLite (whose write lock is taken before any read), one statement reads it all. The
    statements are built once (:func:`_statements`); only their parameters change.
    """
    lock, held_and_key, all_at_once = _statements()
    params = {"account_id": account_id, "key": idempotency_key}
    if session.get_bind().dialect.name != "sqlite" and not _holds_lock(session, account_id):
        account = session.execute(lock, params).first()
        if account is None:
            raise PaymentRefused("unknown_account", "That account was not found.")
        amount, payment_id = session.execute(held_and_key, params).one()
        return account, amount, payment_id
    found = session.execute(all_at_once, params).first()
    if found is None:
        raise PaymentRefused("unknown_account", "That account was not found.")
    return found, found.held, found.existing


@lru_cache(maxsize=1)
def _statements() -> tuple[Select, Select, Select]:
    """(lock the account, held amount and key's payment id, all three in one) with the
    parameters ``account_id`` and ``key``. The account comes back as a row of the columns the
    amount rules read (id, status, currency, balance), not an ORM object."""
    account_id = bindparam("account_id")
    held = type_coerce(
        select(func.coalesce(func.sum(Payment.amount), 0))
        .where(Payment.account_id == account_id, Payment.status.in_(OPEN))  # type: ignore
        .scalar_subquery(),
        Money(),
    )
    existing = (
        select(Payment.id).where(Payment.idempotency_key == bindparam("key")).scalar_subquery()
    )
    accounts = Account.__table__
    columns = (accounts.c.id, accounts.c.status, accounts.c.currency, accounts.c.balance)
    lock = select(*columns).where(accounts.c.id == account_id).with_for_update()
    all_at_once = (
        select(*columns, held.label("held"), existing.label("existing"))
        .where(accounts.c.id == account_id)
        .with_for_update(of=accounts)
    )
    return lock, select(held, existing), all_at_once


def _holds_lock(session: Session, account_id: int) -> bool:
    """Whether this transaction already locked the account here (and note that it will)."""
    transaction = session.get_transaction()
    held = session.info.get(_LOCKED)
    if held is None or held[0] is not transaction:
        held = session.info[_LOCKED] = (transaction, set())
    if account_id in held[1]:
        return True
    held[1].add(account_id)
    return False
