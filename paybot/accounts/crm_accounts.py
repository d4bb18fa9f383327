"""Reading the CRM's answers: JSON text into :class:`AccountRecord`, checking every field of
the ACCOUNT object (:mod:`paybot.accounts.crm` describes the contract)."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from decimal import Decimal
from typing import Any

from paybot.accounts.directory import AccountRecord, DirectoryError, phone_key
from paybot.db.models import AccountStatus
from paybot.money import InvalidAmount, parse_amount

log = logging.getLogger(__name__)

MAX_ADDRESS_CHARS = 200  # the accounts.service_address column
_STATUSES = {s.value for s in AccountStatus}
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def malformed(problem: str) -> DirectoryError:
    log.warning("CRM answer malformed: %s", problem)
    return DirectoryError(f"CRM answer malformed: {problem}")


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise malformed(f"{key} missing" if value is None else f"{key} is not a non-empty string")
    return value.strip()


def _address(data: dict[str, Any]) -> str | None:
    """``service_address``: a string of up to 200 characters; null or "" for none."""
    value = data.get("service_address")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_ADDRESS_CHARS:
        raise malformed(f"service_address is not a string of up to {MAX_ADDRESS_CHARS} characters")
    return value.strip()


def _amount(data: dict[str, Any], key: str, currency: str, default: str | None = None) -> Decimal:
    value = data.get(key, default)
    if value is None:
        if default is None:
            raise malformed(f"{key} missing")
        value = default
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise malformed(f"{key} is not an amount")
    try:
        return parse_amount(value, currency)
    except InvalidAmount:
        raise malformed(f"{key} is not a non-negative {currency} amount") from None


def _due_date(data: dict[str, Any]) -> date | None:
    value = _text(data, "due_date", required=False)
    if value is None:
        return None
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise malformed("due_date is not YYYY-MM-DD") from None


def _currency(data: dict[str, Any]) -> str:
    value = (_text(data, "currency", required=False) or "USD").upper()
    if not _CURRENCY_RE.fullmatch(value):
        raise malformed("currency is not a 3-letter code")
    return value


def _status(data: dict[str, Any]) -> str:
    value = (_text(data, "status", required=False) or AccountStatus.ACTIVE.value).lower()
    if value not in _STATUSES:
        raise malformed("status is not active, closed or suspended")
    return value


def account_record(data: Any) -> AccountRecord:
    """Validate one ACCOUNT object from the CRM."""
    if not isinstance(data, dict):
        raise malformed("an account is not a JSON object")
    currency = _currency(data)
    phone = _text(data, "phone", required=False)
    if phone is not None and (phone := phone_key(phone)) is None:
        raise malformed("phone is not a phone number")
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


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise malformed("not valid JSON") from None
