"""The cells of an accounts CSV file: the columns, and one parser per column that turns the
trimmed text of a cell into its typed value or says what is wrong with it (never repeating
the value). :mod:`paybot.accounts.csv_import` describes the format."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from paybot.db.models import AccountStatus
from paybot.money import InvalidAmount, parse_amount
from paybot.phone import InvalidPhoneNumber, to_e164

# Field order matters: account_number first (the key), currency before the amounts.
FIELDS = (
    "account_number", "name", "phone", "zip", "currency", "balance",
    "minimum_payment", "due_date", "status", "email", "service_address",
)  # fmt: skip
REQUIRED = ("account_number", "name", "phone", "zip", "balance")
ALIASES = {"billing_zip": "zip", "address": "service_address"}
DB_COLUMN = {name: name for name in FIELDS} | {"zip": "billing_zip"}
# What an optional cell that is present but empty sets (and a new account gets when the file
# has no such column).
DEFAULTS: dict[str, Any] = {
    "minimum_payment": Decimal("0.00"),
    "due_date": None,
    "currency": "USD",
    "status": AccountStatus.ACTIVE.value,
    "email": None,
    "service_address": None,
}

_ACCOUNT_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{2,30})[A-Z0-9]")
_ZIP_RE = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")
_AMOUNT_RE = re.compile(r"[$€£]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_AMOUNT = Decimal("1000000000000")  # NUMERIC(14, 2)
_STATUSES = {s.value for s in AccountStatus}


class BadCell(ValueError):
    """One cell's problem. The message describes the problem, never the value."""


@dataclass(frozen=True)
class CellContext:
    """What a cell's meaning depends on: the row's currency, the file's phone region."""

    currency: str
    region: str


def _account_number(text: str, _ctx: CellContext) -> str:
    value = text.upper()
    if not text.isascii() or not _ACCOUNT_RE.fullmatch(value):
        raise BadCell("must be 4-32 letters, digits or hyphens")
    return value


def _name(text: str, _ctx: CellContext) -> str:
    if len(text) > 200:
        raise BadCell("longer than 200 characters")
    return text


def _phone(text: str, ctx: CellContext) -> str:
    try:
        return to_e164(text, ctx.region)
    except InvalidPhoneNumber:
        raise BadCell("not a phone number") from None


def _zip(text: str, _ctx: CellContext) -> str:
    if not _ZIP_RE.fullmatch(text):
        raise BadCell("must be 5 digits or ZIP+4 (12345-6789)")
    return text


def _amount(text: str, ctx: CellContext) -> Decimal:
    if text.startswith("-"):
        raise BadCell("must not be negative")
    if not _AMOUNT_RE.fullmatch(text):
        raise BadCell("not an amount (write 1250.00 or $1,250.00)")
    try:
        amount = parse_amount(text, ctx.currency)
    except InvalidAmount:
        raise BadCell(f"more decimal places than {ctx.currency} has") from None
    if amount >= _MAX_AMOUNT:
        raise BadCell("too large")
    return amount


def _due_date(text: str, _ctx: CellContext) -> date:
    try:
        if not _DATE_RE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise BadCell("not a date in YYYY-MM-DD form") from None


def _currency(text: str, _ctx: CellContext) -> str:
    if not _CURRENCY_RE.fullmatch(text):
        raise BadCell("must be a 3-letter code such as USD")
    return text.upper()


def _status(text: str, _ctx: CellContext) -> str:
    value = text.lower()
    if value not in _STATUSES:
        raise BadCell("must be one of " + ", ".join(sorted(_STATUSES)))
    return value


def _email(text: str, _ctx: CellContext) -> str:
    if len(text) > 254 or not _EMAIL_RE.fullmatch(text):
        raise BadCell("not an email address")
    return text


def _service_address(text: str, _ctx: CellContext) -> str:
    if len(text) > 200:
        raise BadCell("longer than 200 characters")
    return " ".join(text.split())


PARSERS: dict[str, Callable[[str, CellContext], Any]] = {
    "account_number": _account_number,
    "name": _name,
    "phone": _phone,
    "zip": _zip,
    "currency": _currency,
    "balance": _amount,
    "minimum_payment": _amount,
    "due_date": _due_date,
    "status": _status,
    "email": _email,
    "service_address": _service_address,
}
