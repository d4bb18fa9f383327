"""The sandbox's test numbers and decline rules: which outcome a card or account selects.

Keyed on the well-known Stripe test numbers (:data:`CARD_OUTCOMES`, :data:`BANK_OUTCOMES`).
Like a lenient test mode, any other valid card is approved and any other valid bank account
succeeds. Only the outcome a number selects is kept (``sandbox_tokens.outcome``), never the
number itself.
"""

from __future__ import annotations

from datetime import date

from paybot.db.models import SandboxToken
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import Expiry, is_expired

SUCCESS = "success"
CHARGE_CUSTOMER_FAIL = "charge_customer_fail"

CARD_OUTCOMES: dict[str, str] = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000000000006975": "card_velocity_exceeded",
    "4000000000000341": CHARGE_CUSTOMER_FAIL,  # tokenizing succeeds, every charge declines
}
"""Test card numbers with a non-success outcome; every other valid card succeeds."""

BANK_OUTCOMES: dict[str, str] = {
    "000111111113": "account_closed",
    "000111111116": "no_account",
    "000222222227": "insufficient_funds",
    "000333333335": "debit_not_authorized",
    "000444444440": "invalid_currency",
}
"""Test bank account numbers (with any valid routing number, e.g. 110000000) that fail."""

_DECLINE_CODES = {CHARGE_CUSTOMER_FAIL: "generic_decline"}  # others: the outcome itself


def card_outcome(card: CardData) -> str:
    """The outcome ``card``'s number selects (:data:`SUCCESS` for any other number)."""
    return CARD_OUTCOMES.get(card.number, SUCCESS)


def bank_outcome(account: BankAccount) -> str:
    """The outcome ``account``'s number selects (:data:`SUCCESS` for any other number)."""
    return BANK_OUTCOMES.get(account.account_number, SUCCESS)


def decline_code(outcome: str) -> str | None:
    """The decline code a charge with ``outcome`` gets, or None when it is approved."""
    return None if outcome == SUCCESS else _DECLINE_CODES.get(outcome, outcome)


def token_decline_code(vaulted: SandboxToken, currency: str, today: date) -> str | None:
    """The decline code for charging ``vaulted`` in ``currency``, or None when it is approved.

    A card past its expiry month declines with ``expired_card``; a bank account charged in a
    currency other than USD with ``invalid_currency``; otherwise the token's outcome decides.
    """
    expiry = Expiry(vaulted.exp_month or 0, vaulted.exp_year or 0)
    if vaulted.kind == "card" and is_expired(expiry, today):
        return "expired_card"
    if vaulted.kind == "bank" and currency != "USD":
        return "invalid_currency"
    return decline_code(vaulted.outcome)
