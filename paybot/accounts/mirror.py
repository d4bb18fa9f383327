"""Accounts of an HTTP CRM mirrored into the database, so that every flow works in CRM mode.

Payments, stored methods, scheduled payments and the voice capture all need an ``accounts``
row; a CRM account has none until it is looked up. :class:`MirroredDirectory` wraps the CRM
directory: every account a look-up returns is written to (or refreshed in) ``accounts``, keyed
by account number, and comes back with its ``account_id``.

What the mirror takes from the CRM on every look-up: name, phone, billing ZIP, service address,
minimum payment, due date, currency, status, and the balance, with one exception. A payment
taken here lowers the local balance at once, and the CRM only learns of it later (from the
biller's own posting, or a reconciliation file). So the balance the CRM reports is kept in
``crm_balance``: while the CRM still reports the same balance, the local one (less the
payments taken since) stands; once the CRM's balance changes, the CRM has posted what it was
going to and its balance is taken as it is. Without that, a caller who just paid in full would
be offered the same balance again.

When the CRM is down (:class:`DirectoryUnavailable`), accounts it answered for before come
from the mirror, marked ``confirmed=False``: the bot identifies the customer but says it cannot
confirm the balance now (actions/customer.py). An account never mirrored still raises.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from paybot.accounts.directory import (
    AccountRecord,
    CustomerDirectory,
    DirectoryUnavailable,
    number_key,
    phone_key,
)
from paybot.db import queries
from paybot.db.engine import write_scope
from paybot.db.models import Account
from paybot.db.types import utcnow

log = logging.getLogger(__name__)
# Fields copied from the CRM as they are (the balance has its own rule, above).
COPIED = ("name", "phone", "billing_zip", "service_address", "minimum_payment", "due_date",
          "currency", "status")  # fmt: skip
# A look-up that changes nothing rewrites the sync time at most this often.
RESYNC_AFTER = timedelta(minutes=1)


class MirroredDirectory(CustomerDirectory):
    """A CRM directory whose accounts are copied into the database on every look-up."""

    def __init__(self, crm: CustomerDirectory, engine: Engine) -> None:
        self._crm = crm
        self._engine = engine

    async def find_by_phone(self, e164: str) -> list[AccountRecord]:
        try:
            records = await self._crm.find_by_phone(e164)
        except DirectoryUnavailable:
            phone = phone_key(e164)
            kept = await asyncio.to_thread(self._kept_by_phone, phone) if phone else []
            if not kept:
                raise
            log.warning("CRM unavailable: %d mirrored accounts used, unconfirmed", len(kept))
            return kept
        return [await asyncio.to_thread(mirror, self._engine, r) for r in records]

    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        try:
            record = await self._crm.find_by_account_number(number)
        except DirectoryUnavailable:
            key = number_key(number)
            kept = await asyncio.to_thread(self._kept_by_number, key) if key else None
            if kept is None:
                raise
            log.warning("CRM unavailable: the mirrored account used, unconfirmed")
            return kept
        return None if record is None else await asyncio.to_thread(mirror, self._engine, record)

    async def close(self) -> None:
        await self._crm.close()

    def _kept_by_phone(self, phone: str) -> list[AccountRecord]:
        with Session(self._engine) as session:
            rows = queries.accounts_by_phone(session=session, phone=phone)
            return [AccountRecord.from_account(a, confirmed=False) for a in rows if a.crm_synced_at]

    def _kept_by_number(self, key: str) -> AccountRecord | None:
        with Session(self._engine) as session:
            row = queries.account_by_typed_number(session=session, account_number=key)
            if row is None or row.crm_synced_at is None:
                return None
            return AccountRecord.from_account(row, confirmed=False)


def mirror(engine: Engine, record: AccountRecord, now: datetime | None = None) -> AccountRecord:
    """Create or refresh the row of the CRM's ``record``; the record as the bot should see it
    (with its ``account_id``; blocking: run it in a thread)."""
    now = now or utcnow()
    with Session(engine) as session:
        row = queries.account_by_number(session=session, account_number=record.account_number)
        if row is not None and not _stale(row, record, now):
            return AccountRecord.from_account(row)
    for _ in range(3):  # a concurrent first look-up of the same account inserted it
        try:
            with write_scope(engine) as session:
                return AccountRecord.from_account(_write(session, record, now))
        except IntegrityError:
            continue
    raise DirectoryUnavailable("could not mirror the CRM account")  # pragma: no cover


def _stale(row: Account, record: AccountRecord, now: datetime) -> bool:
    """Whether the row needs writing: the CRM says something else, or it is time to note
    that the CRM still answers for it."""
    if any(getattr(row, name) != getattr(record, name) for name in COPIED):
        return True
    if row.crm_balance != record.balance:
        return True
    return row.crm_synced_at is None or now - row.crm_synced_at >= RESYNC_AFTER


def _write(session: Session, record: AccountRecord, now: datetime) -> Account:
    query = select(Account).where(Account.account_number == record.account_number)
    row = session.exec(query.with_for_update()).first()
    if row is None:
        row = Account(account_number=record.account_number, name=record.name,
                      billing_zip=record.billing_zip, balance=record.balance,
                      minimum_payment=record.minimum_payment, created_at=now)  # fmt: skip
        session.add(row)
        log.info("CRM account mirrored for the first time")
    elif row.crm_balance != record.balance:
        row.balance = record.balance  # the CRM's balance moved: it has posted what it will
    for name in COPIED:
        setattr(row, name, getattr(record, name))
    row.crm_balance = record.balance
    row.crm_synced_at = row.updated_at = now
    session.flush()
    return row
