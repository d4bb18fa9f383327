"""The customer directory of a biller's CRM, over HTTP: :class:`HttpDirectory`.

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

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from paybot.accounts.crm_accounts import account_record, malformed, parse_json
from paybot.accounts.directory import (
    AccountRecord,
    CustomerDirectory,
    DirectoryError,
    DirectoryUnavailable,
    number_key,
    phone_key,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


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
            raise malformed(f"answer larger than {MAX_BODY_BYTES} bytes")
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
        phone = phone_key(e164)
        if phone is None:
            return []
        data = await self._get("/accounts", {"phone": phone})
        if data is None:
            return []
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
            raise malformed('expected {"accounts": [...]}')
        records = [account_record(item) for item in data["accounts"]]
        log.debug("CRM: %d accounts for a phone lookup", len(records))
        return sorted(records, key=lambda r: r.account_number)

    async def find_by_account_number(self, number: str) -> AccountRecord | None:
        key = number_key(number)
        if key is None or not key.strip("."):  # a dot segment would name another resource
            return None
        data = await self._get("/accounts/" + quote(key, safe=""))
        if data is None:
            return None
        record = account_record(data)
        if record.account_number.upper() != key.upper():
            raise malformed("the account returned is not the one asked for")
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
        return parse_json(body)
