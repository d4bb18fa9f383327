"""The payment gateway interface, its result classes and its errors.

The card and bank data a gateway tokenises or charges are in :mod:`paybot.gateway.card_data`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from paybot.gateway.card_data import BankAccount, CardData


class GatewayError(Exception):
    """The gateway could not do what was asked (not a decline: declines are results)."""

    code = "gateway_error"


class GatewayTimeout(GatewayError):
    """No answer in time: the outcome is unknown until looked up or retried with the same key."""

    code = "timeout"


class IdempotencyConflict(GatewayError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_error"


class InvalidPaymentData(GatewayError):
    """The card or bank data failed validation (Luhn, length, expiry, routing checksum...)."""

    code = "invalid_data"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CardDeclined(GatewayError):
    """The gateway refused to keep the card for reuse (a reusable token is checked with the
    issuer when it is made): the payment is declined with ``decline_code``."""

    code = "declined"

    def __init__(self, decline_code: str) -> None:
        super().__init__(decline_code)
        self.decline_code = decline_code


class UnknownToken(GatewayError):
    """The token does not exist or was deleted."""

    code = "unknown_token"


@dataclass(frozen=True)
class TokenInfo:
    """What the rest of paybot may know about a payment method."""

    token: str
    kind: str  # "card" or "bank"
    brand: str
    last4: str
    exp_month: int | None = None
    exp_year: int | None = None
    reusable: bool = True


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of a charge. ``approved`` False means declined, with a decline code."""

    approved: bool
    transaction_id: str
    amount: Decimal
    currency: str
    brand: str
    last4: str
    decline_code: str | None = None
    replayed: bool = False  # the same idempotency key was seen before; this is the stored result


class Gateway(abc.ABC):
    """Operations every gateway offers. Blocking calls: run them in a thread from async code."""

    name: str

    @abc.abstractmethod
    def tokenize_card(
        self, card: CardData, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """Store the card at the gateway and return a token for it. ``customer`` (the paybot
        account number) is who a reusable token is kept for, where the gateway keeps one.

        Raises:
            CardDeclined: the issuer refused a reusable token (gateways that check).
        """

    def tokenize_test_card(self, number: str, today: date) -> TokenInfo:
        """A well-known test card number (demo data), tokenised as if keyed: it expires in
        December three years from ``today``."""
        cvc = "1234" if number.startswith("3") else "123"
        return self.tokenize_card(CardData(number, 12, today.year + 3, cvc))

    @abc.abstractmethod
    def tokenize_bank_account(
        self, account: BankAccount, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """Store the bank account at the gateway and return a token for it."""

    @abc.abstractmethod
    def charge_token(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge a stored token. Same key and request: the same result, never a second charge."""

    @abc.abstractmethod
    def charge_card(
        self,
        card: CardData,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge card data in one step; nothing is kept at the gateway for reuse."""

    @abc.abstractmethod
    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The charge made with ``idempotency_key``, or None if the gateway never made one."""

    @abc.abstractmethod
    def delete_token(self, token: str) -> None:
        """Forget a stored payment method."""

    @abc.abstractmethod
    def refund(
        self, transaction_id: str, amount: Decimal | None = None, *, idempotency_key: str
    ) -> ChargeResult:
        """Refund all (``amount`` None) or part of a charge."""
