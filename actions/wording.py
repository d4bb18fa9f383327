"""How values are put into words for a caller or a text message."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from paybot.money import format_amount
from paybot.payments.confirmation import grouped

_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "diners": "Diners Club",
    "unionpay": "UnionPay",
    "maestro": "Maestro",
    "checking": "checking account",
    "savings": "savings account",
    "bank": "bank account",
}

DECLINE_REASONS = {
    "generic_decline": "the card issuer declined it",
    "insufficient_funds": "there weren't enough funds available",
    "lost_card": "the card issuer declined it",
    "stolen_card": "the card issuer declined it",
    "expired_card": "the card has expired",
    "incorrect_cvc": "the security code didn't match",
    "processing_error": "there was a processing error, so it's worth trying again",
    "card_velocity_exceeded": "the card has reached its limit for now",
    "account_closed": "the bank account is closed",
    "no_account": "the bank couldn't find that account",
    "debit_not_authorized": "the bank didn't authorize the debit",
    "invalid_currency": "the account can't take this currency",
}


def money(amount: Decimal | str, currency: str = "USD") -> str:
    """``$1,250.00``: Piper's text normaliser reads it out; texts show it as is."""
    return format_amount(Decimal(str(amount)), currency)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def day(value: date | str | None) -> str:
    """``December 3rd`` (the year only when it is not this year)."""
    if value is None:
        return "not set"
    d = date.fromisoformat(value) if isinstance(value, str) else value
    text = f"{d.strftime('%B')} {_ordinal(d.day)}"
    return text if d.year == date.today().year else f"{text}, {d.year}"


def method_label(brand: str | None, last4: str | None) -> str:
    """``Visa ending 4242``."""
    name = _BRANDS.get((brand or "").lower(), (brand or "card").title())
    return f"{name} ending {last4}" if last4 else name


def confirmation_spoken(number: str) -> str:
    """Digits spaced in groups of three, so text-to-speech reads each digit."""
    return ", ".join(" ".join(group) for group in grouped(number).split())


# Payments refused for what the merchant's gateway takes, not for the caller's method: said as
# a decline is (not counted as one), and another method is offered.
REFUSALS = {
    "bank_not_supported": "we can only take card payments on this line",
}


def decline_reason(code: str | None) -> str:
    return DECLINE_REASONS.get(code or "", "the payment was declined")
