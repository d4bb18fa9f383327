"""Money as ``Decimal``: parsing, rounding and formatting in one place."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
# ISO 4217 minor units for the currencies we format; anything else is treated as 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}
# ASCII digits, optional thousands separators in the right places, optional decimals.
_PLAIN_AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?", re.ASCII)
_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}


class InvalidAmount(ValueError):
    """An amount that is not a well-formed, non-negative sum of money."""


def quantum(currency: str = "USD") -> Decimal:
    """The smallest unit of ``currency`` as a Decimal exponent (0.01 for USD)."""
    return Decimal(1).scaleb(-_MINOR_UNITS.get(currency.upper(), 2))


def parse_amount(value: object, currency: str = "USD") -> Decimal:
    """Parse ``value`` (str, int or Decimal; never float) into an exact amount.

    Accepts an optional currency symbol and thousands separators ("$1,250.00"). Rejects
    negatives, more decimal places than the currency has, and anything not a number.
    """
    if isinstance(value, float):
        raise InvalidAmount("amounts must not be floats")
    if isinstance(value, Decimal):
        amount = value
    else:
        text = str(value).strip()
        for symbol in set(_SYMBOLS.values()):
            text = text.removeprefix(symbol)
        if not text:
            raise InvalidAmount("empty amount")
        if not _PLAIN_AMOUNT.fullmatch(text):
            raise InvalidAmount("not a plain amount such as 1250.00 or 1,250.00")
        try:
            amount = Decimal(text.replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise InvalidAmount("not a number") from None
    if not amount.is_finite():
        raise InvalidAmount("amount must be a finite number")
    if amount < 0:
        raise InvalidAmount("amount must not be negative")
    q = quantum(currency)
    if amount != amount.quantize(q, rounding=ROUND_HALF_UP):
        raise InvalidAmount(f"amount has more decimal places than {currency} allows")
    return amount.quantize(q)


def to_minor_units(amount: Decimal, currency: str = "USD") -> int:
    """``Decimal('12.34')`` -> ``1234`` for USD (what gateways such as Stripe expect)."""
    return int((amount / quantum(currency)).to_integral_value(rounding=ROUND_HALF_UP))


def from_minor_units(units: int, currency: str = "USD") -> Decimal:
    """``1234`` -> ``Decimal('12.34')`` for USD."""
    return (Decimal(units) * quantum(currency)).quantize(quantum(currency))


def format_amount(amount: Decimal, currency: str = "USD") -> str:
    """Display form: ``$1,250.00`` for USD, ``1,250.00 CHF`` where we know no symbol."""
    q = amount.quantize(quantum(currency))
    symbol = _SYMBOLS.get(currency.upper())
    text = f"{q:,}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"
