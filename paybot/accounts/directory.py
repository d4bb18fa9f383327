"""The customer directory: where the bot looks up who is calling and what they owe.

One interface, :class:`CustomerDirectory`, two implementations chosen by ``PAYBOT_CRM``:

* ``local`` — :class:`LocalDirectory`, the paybot database (accounts from the CSV import or
  the demo seed).
* ``http`` — :class:`paybot.accounts.crm.HttpDirectory`, a biller's CRM that speaks the JSON
  contract described there, behind :class:`paybot.accounts.mirror.MirroredDirectory`, which
  copies every account it returns into the database (payments need a local row).

Several accounts may share one phone number; every account is returned with its status
(active, closed or suspended) and the caller decides what to offer.

Failures raise :class:`DirectoryUnavailable` when trying again later may help (timeout,
connection refused, HTTP 429 or 5xx) and :class:`DirectoryError` otherwise. Messages name the
problem; they never contain a name or a phone number.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db import queries
from paybot.db.models import Account, AccountStatus
from paybot.parsing.card_numbers import contains_card_number
from paybot.phone import InvalidPhoneNumber, to_e164

if TYPE_CHECKING:
    from paybot.settings import Settings

log = logging.getLogger(__name__)


class DirectoryError(RuntimeError):
    """The directory could not answer properly (bad credentials, malformed answer, ...)."""


class DirectoryUnavailable(DirectoryError):
    """The directory is unreachable or failing for now (timeout, refused, 5xx); retry later."""


@dataclass(frozen=True)
class AccountRecord:
    """One customer account as the directory knows it. ``repr`` hides personal data."""

    account_number: str
    name: str = field(repr=False)
    phone: str | None = field(repr=False)
    billing_zip: str = field(repr=False)
    balance: Decimal = field(repr=False)
    minimum_payment: Decimal = field(repr=False)
    due_date: date | None
    currency: str
    status: str
    account_id: int | None = None
    service_address: str | None = field(default=None, repr=False)
    # False: the CRM did not answer, and this is the last copy the mirror kept
    # (paybot.accounts.mirror): the balance may be out of date and is not spoken.
    confirmed: bool = True

    @property
    def is_active(self) -> bool:
        """True unless the account is closed or suspended."""
        return self.status == AccountStatus.ACTIVE.value

    @classmethod
    def from_account(cls, account: Account, *, confirmed: bool = True) -> AccountRecord:
        """The record for a row of the ``accounts`` table."""
        return cls(
            confirmed=confirmed,
            account_number=account.account_number,
            name=account.name,
            phone=account.phone,
            billing_zip=account.billing_zip,
            balance=account.balance,
            minimum_payment=account.minimum_payment,
            due_date=account.due_date,
            currency=account.currency,
            status=account.status,
            account_id=account.id,
            service_address=account.service_address,
        )


def number_key(number: str) -> str | None:
    """The account number to look up, trimmed; None when empty or card-shaped (a card
    number is never an account number, and is never sent to a database or a CRM)."""
    key = number.strip()
    return None if not key or contains_card_number(key) else key


def phone_key(value: str) -> str | None:
    """``value`` in E.164, or None when it is no phone number (e.g. a withheld caller ID)."""
    try:
        return to_e164(value)
    except InvalidPhoneNumber:
        return None


class CustomerDirectory(abc.ABC):
    """Looks up customer accounts. Implementations are safe to share between tasks."""

    @abc.abstractmethod
    async def find_by_phone(self, e164: str) -> list[AccountRecord]:
        """Every account (any status) registered to ``e164``, by account number; [] if none."""

    @abc.abstractmethod
    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        """The account with this number (case-insensitive, trimmed), or None."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release connections; the directory must not be used afterwards."""

    async def __aenter__(self) -> CustomerDirectory:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class LocalDirectory(CustomerDirectory):
    """The paybot database as the directory; queries run in a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def find_by_phone(self, e164: str) -> list[AccountRecord]:
        phone = phone_key(e164)
        if phone is None:
            return []
        records = await asyncio.to_thread(self._by_phone, phone)
        log.debug("local directory: %d accounts for a phone lookup", len(records))
        return records

    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        key = number_key(number)
        if key is None:
            return None
        return await asyncio.to_thread(self._by_number, key)

    def _by_phone(self, phone: str) -> list[AccountRecord]:
        with Session(self._engine) as session:
            rows = queries.accounts_by_phone(session=session, phone=phone)
            return [AccountRecord.from_account(a) for a in rows]

    def _by_number(self, key: str) -> AccountRecord | None:
        with Session(self._engine) as session:
            row = queries.account_by_typed_number(session=session, account_number=key)
            return AccountRecord.from_account(row) if row is not None else None


def make_directory(settings: Settings, engine: Engine | None) -> CustomerDirectory:
    """The directory ``settings.crm`` names: ``local`` (needs ``engine``) or ``http``.

    Raises:
        paybot.settings.SettingsError: ``http`` without a usable ``PAYBOT_CRM_URL``, or an
            unknown ``PAYBOT_CRM``.
    """
    from paybot.accounts.crm import HttpDirectory
    from paybot.settings import SettingsError

    if settings.crm == "http":
        url = (settings.crm_url or "").strip()
        if not url.startswith(("http://", "https://")):
            raise SettingsError("PAYBOT_CRM=http needs PAYBOT_CRM_URL, an http(s):// base URL")
        token = settings.crm_token.get_secret_value() if settings.crm_token else None
        crm = HttpDirectory(url, token, settings.crm_timeout_s)
        if engine is None:
            return crm
        from paybot.accounts.mirror import MirroredDirectory

        return MirroredDirectory(crm, engine)
    if settings.crm == "local":
        if engine is None:
            raise ValueError("the local directory needs a database engine")
        return LocalDirectory(engine)
    raise SettingsError(f"PAYBOT_CRM must be 'local' or 'http', not {settings.crm!r}")
