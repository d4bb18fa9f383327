"""Checking a sandbox request before anything is stored: amount and currency, idempotency key,
description; its fingerprint (never over card or account digits) and the ids it is given."""

from __future__ import annotations

import hashlib
import json
import secrets
from decimal import Decimal

from paybot.gateway.base import GatewayError
from paybot.money import InvalidAmount, parse_amount, quantum

MAX_AMOUNT = Decimal(10) ** 12  # sandbox_charges.amount is NUMERIC(14, 2)
MAX_KEY_LENGTH = 255
MAX_DESCRIPTION = 200


class InvalidRequest(GatewayError):
    """The request itself is unacceptable (bad amount, over-refund, unknown charge...)."""

    code = "invalid_request"


def new_id(prefix: str) -> str:
    """A fresh sandbox object id: ``tok_sbx_...``, ``ch_sbx_...``, ``re_sbx_...``."""
    return f"{prefix}_sbx_{secrets.token_hex(12)}"


def request_fingerprint(*parts: object) -> str:
    """sha256 over the non-secret parts of a request (never card or account digits)."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def check_key(key: str) -> str:
    """``key``, if it can be an idempotency key (1 to :data:`MAX_KEY_LENGTH` characters)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def check_money(amount: Decimal, currency: str) -> tuple[Decimal, str]:
    """A positive Decimal amount, exact in ``currency``, and the upper-case currency code."""
    if not isinstance(amount, Decimal):
        raise TypeError("amount must be a Decimal")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise InvalidRequest("currency must be a three-letter ISO 4217 code")
    currency = currency.upper()
    if quantum(currency) < Decimal("0.01"):
        raise InvalidRequest(f"the sandbox cannot store {currency} amounts")
    try:
        amount = parse_amount(amount, currency)
    except InvalidAmount as exc:
        raise InvalidRequest(str(exc)) from None
    if not 0 < amount < MAX_AMOUNT:
        raise InvalidRequest("amount must be positive and below the sandbox maximum")
    return amount, currency


def cut_description(description: str | None) -> str | None:
    """The description cut to the column's length (None when empty)."""
    return description[:MAX_DESCRIPTION] if description else None
