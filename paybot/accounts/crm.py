"""The customer directory: where the bot looks up who is calling and what they owe.

One interface, :class:`CustomerDirectory`, two implementations chosen by ``PAYBOT_CRM``:

* ``local`` — :class:`LocalDirectory`, the paybot database (accounts from the CSV import or
  the demo seed).
* ``http`` — :class:`HttpDirectory`, a biller's CRM that speaks the JSON contract below.

Several accounts may share one phone number; every account is returned with its status
(active, closed or suspended) and the caller decides what to offer.

HTTP CRM contract (``{base}`` is ``PAYBOT_CRM_URL``; every request carries
``Authorization: Bearer <PAYBOT_CRM_TOKEN>`` when a token is set, and
``Accept: application/json``)::

    GET {base}/accounts?phone=%2B15555550100
        200  {"accounts": [ACCOUNT, ...]}      ([] when none; a 404 also means none)

    GET {base}/accounts/{account_number}          (path segment URL-encoded)
        200  ACCOUNT
        404  no such account

    ACCOUNT = {
        "account_number": "100200300",    required, string
        "name": "James Smith",            required, non-empty string
        "billing_zip": "94107",           required, string
        "balance": "321.72",              required, amount (see below)
        "minimum_payment": "25.00",       optional amount, default "0.00"
        "due_date": "2026-12-01",         optional, YYYY-MM-DD or null
        "currency": "USD",                optional, 3 letters, default "USD"
        "status": "active",               optional: active | closed | suspended (default active)
        "phone": "+15555550100",          optional, E.164 or null
        "service_address": "12 Oak Street"  optional string or null: where the service is
    }

Other fields are ignored. Amounts should be JSON strings; JSON numbers are accepted but read
from their text straight into ``Decimal`` (``321.72`` stays exactly 321.72, never a float).
Amounts must be non-negative with no more decimals than the currency has.

Failures raise :class:`DirectoryUnavailable` when trying again later may help (timeout,
connection refused, HTTP 429 or 5xx) and :class:`DirectoryError` otherwise (credentials
refused, another unexpected status, malformed JSON, missing or invalid fields). Messages name
the problem; they never contain the response body, a name or a phone number. Records from the
CRM have ``account_id=None``: they are not rows of the local database.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.models import Account, AccountStatus
from paybot.money import InvalidAmount, parse_amount
from paybot.parsing.card_numbers import contains_card_number
from paybot.phone import InvalidPhoneNumber, to_e164

if TYPE_CHECKING:
    from paybot.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_ADDRESS_CHARS = 200  # the accounts.service_address column
_STATUSES = {s.value for s in AccountStatus}
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


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

    @property
    def is_active(self) -> bool:
        """True unless the account is closed or suspended."""
        return self.status == AccountStatus.ACTIVE.value

    @classmethod
    def from_account(cls, account: Account) -> AccountRecord:
        """The record for a row of the ``accounts`` table."""
        return cls(
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


def _number_key(number: str) -> str | None:
    """The account number to look up, trimmed; None when empty or card-shaped (a card
    number is never an account number, and is never sent to a database or a CRM)."""
    key = number.strip()
    return None if not key or contains_card_number(key) else key


def _phone_key(value: str) -> str | None:
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
        phone = _phone_key(e164)
        if phone is None:
            return []
        records = await asyncio.to_thread(self._by_phone, phone)
        log.debug("local directory: %d accounts for a phone lookup", len(records))
        return records

    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        key = _number_key(number)
        if key is None:
            return None
        return await asyncio.to_thread(self._by_number, key)

    def _by_phone(self, phone: str) -> list[AccountRecord]:
        query = select(Account).where(Account.phone == phone).order_by(Account.account_number)
        with Session(self._engine) as session:
            return [AccountRecord.from_account(a) for a in session.exec(query).all()]

    def _by_number(self, key: str) -> AccountRecord | None:
        # The CSV import stores numbers upper-case; other writers may not have.
        query = select(Account).where(Account.account_number.in_({key, key.upper()}))
        with Session(self._engine) as session:
            rows = session.exec(query).all()
        rows.sort(key=lambda a: a.account_number != key.upper())
        return AccountRecord.from_account(rows[0]) if rows else None


# --- HTTP CRM ---------------------------------------------------------------------------------


def _malformed(problem: str) -> DirectoryError:
    log.warning("CRM answer malformed: %s", problem)
    return DirectoryError(f"CRM answer malformed: {problem}")


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _malformed(f"{key} missing" if value is None else f"{key} is not a non-empty string")
    return value.strip()


def _address(data: dict[str, Any]) -> str | None:
    """``service_address``: a string of up to 200 characters; null or "" for none."""
    value = data.get("service_address")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_ADDRESS_CHARS:
        raise _malformed(f"service_address is not a string of up to {MAX_ADDRESS_CHARS} characters")
    return value.strip()


def _amount(data: dict[str, Any], key: str, currency: str, default: str | None = None) -> Decimal:
    value = data.get(key, default)
    if value is None:
        if default is None:
            raise _malformed(f"{key} missing")
        value = default
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _malformed(f"{key} is not an amount")
    try:
        return parse_amount(value, currency)
    except InvalidAmount:
        raise _malformed(f"{key} is not a non-negative {currency} amount") from None


def _due_date(data: dict[str, Any]) -> date | None:
    value = _text(data, "due_date", required=False)
    if value is None:
        return None
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _malformed("due_date is not YYYY-MM-DD") from None


def _currency(data: dict[str, Any]) -> str:
    value = (_text(data, "currency", required=False) or "USD").upper()
    if not _CURRENCY_RE.fullmatch(value):
        raise _malformed("currency is not a 3-letter code")
    return value


def _status(data: dict[str, Any]) -> str:
    value = (_text(data, "status", required=False) or AccountStatus.ACTIVE.value).lower()
    if value not in _STATUSES:
        raise _malformed("status is not active, closed or suspended")
    return value


def _record(data: Any) -> AccountRecord:
    """Validate one ACCOUNT object from the CRM."""
    if not isinstance(data, dict):
        raise _malformed("an account is not a JSON object")
    currency = _currency(data)
    phone = _text(data, "phone", required=False)
    if phone is not None and (phone := _phone_key(phone)) is None:
        raise _malformed("phone is not a phone number")
    return AccountRecord(
        account_number=_text(data, "account_number") or "",
        name=_text(data, "name") or "",
        phone=phone,
        billing_zip=_text(data, "billing_zip") or "",
        balance=_amount(data, "balance", currency),
        minimum_payment=_amount(data, "minimum_payment", currency, default="0"),
        due_date=_due_date(data),
        currency=currency,
        status=_status(data),
        account_id=None,
        service_address=_address(data),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _malformed("not valid JSON") from None


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    log.warning("CRM answered HTTP %d", status)
    if status in (401, 403):
        raise DirectoryError(f"CRM refused the credentials (HTTP {status})")
    if status == 429 or status >= 500:
        raise DirectoryUnavailable(f"CRM failed (HTTP {status})")
    raise DirectoryError(f"CRM answered with unexpected HTTP {status}")


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _malformed(f"answer larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


class HttpDirectory(CustomerDirectory):
    """A CRM reached over HTTP with the JSON contract in this module's docstring.

    Args:
        base_url: the CRM's base URL, e.g. ``https://crm.example.com/api``.
        token: the bearer token, or None to send no ``Authorization`` header.
        timeout_s: the limit for one whole request, connecting to reading the body.
        session: a shared ``aiohttp.ClientSession``; without one the directory opens its own
            (on first use) and closes it in :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 3.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._session = session
        self._owns_session = session is None

    async def find_by_phone(self, e164: str) -> list[AccountRecord]:
        phone = _phone_key(e164)
        if phone is None:
            return []
        data = await self._get("/accounts", {"phone": phone})
        if data is None:
            return []
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
            raise _malformed('expected {"accounts": [...]}')
        records = [_record(item) for item in data["accounts"]]
        log.debug("CRM: %d accounts for a phone lookup", len(records))
        return sorted(records, key=lambda r: r.account_number)

    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        key = _number_key(number)
        if key is None or not key.strip("."):  # a dot segment would name another resource
            return None
        data = await self._get("/accounts/" + quote(key, safe=""))
        if data is None:
            return None
        record = _record(data)
        if record.account_number.upper() != key.upper():
            raise _malformed("the account returned is not the one asked for")
        return record

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any | None:
        """GET ``path``: the parsed JSON, or None on 404. Raises the directory errors."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        try:
            async with self._session.get(
                self._base + path, params=params, headers=self._headers(),
                timeout=timeout, allow_redirects=False,
            ) as response:  # fmt: skip
                if response.status == 404:
                    return None
                _check_status(response.status)
                body = await _read_body(response)
        except asyncio.TimeoutError:
            log.warning("CRM timed out after %.1fs", self._timeout_s)
            raise DirectoryUnavailable(f"CRM did not answer within {self._timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            log.warning("CRM unreachable: %s", type(exc).__name__)
            raise DirectoryUnavailable(f"CRM unreachable ({type(exc).__name__})") from None
        return _parse_json(body)


def make_directory(settings: Settings, engine: Engine | None) -> CustomerDirectory:
    """The directory ``settings.crm`` names: ``local`` (needs ``engine``) or ``http``.

    Raises:
        paybot.settings.SettingsError: ``http`` without a usable ``PAYBOT_CRM_URL``, or an
            unknown ``PAYBOT_CRM``.
    """
    from paybot.settings import SettingsError

    if settings.crm == "http":
        url = (settings.crm_url or "").strip()
        if not url.startswith(("http://", "https://")):
            raise SettingsError("PAYBOT_CRM=http needs PAYBOT_CRM_URL, an http(s):// base URL")
        token = settings.crm_token.get_secret_value() if settings.crm_token else None
        return HttpDirectory(url, token, settings.crm_timeout_s)
    if settings.crm == "local":
        if engine is None:
            raise ValueError("the local directory needs a database engine")
        return LocalDirectory(engine)
    raise SettingsError(f"PAYBOT_CRM must be 'local' or 'http', not {settings.crm!r}")
