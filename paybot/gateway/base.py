"""The payment gateway interface, its data classes and its errors.

Card and bank data classes keep their digits out of ``repr``/``str`` so a stray log line or
exception message cannot carry them. Only the secure capture builds them, hands them to a
gateway and drops them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from decimal import Decimal


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


class UnknownToken(GatewayError):
    """The token does not exist or was deleted."""

    code = "unknown_token"


@dataclass(frozen=True)
class CardData:
    """A card as keyed by the caller. Never logged: ``repr`` shows brand-free last four only."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int  # four digits
    cvc: str | None = field(default=None, repr=False)
    postal_code: str | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def __repr__(self) -> str:
        return f"CardData(last4={self.last4!r}, exp={self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__


@dataclass(frozen=True)
class BankAccount:
    """A US bank account (ACH). ``repr`` shows the last four of the account only."""

    routing_number: str = field(repr=False)
    account_number: str = field(repr=False)
    account_type: str = "checking"  # "checking" or "savings"

    @property
    def last4(self) -> str:
        return self.account_number[-4:]

    def __repr__(self) -> str:
        return f"BankAccount(last4={self.last4!r}, type={self.account_type!r})"

    __str__ = __repr__


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
    def tokenize_card(self, card: CardData, *, reusable: bool = True) -> TokenInfo:
        """Store the card at the gateway and return a token for it."""

    @abc.abstractmethod
    def tokenize_bank_account(self, account: BankAccount) -> TokenInfo:
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
