"""Which amounts an account may pay: whole cents, minimum, maximum (what is still owed),
currency, status."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy.engine import Row

from paybot.db.models import Account, AccountStatus
from paybot.money import format_amount, quantum

ZERO = Decimal("0.00")


class PaymentRefused(Exception):
    """A payment that the rules do not allow; ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AmountRules:
    """The configurable limits on a single payment (the payment profile's amounts)."""

    minimum: Decimal = Decimal("1.00")
    allow_overpayment: bool = False
    currency: str = "USD"
    maximum: Decimal | None = None  # the most one payment may be, whatever is owed

    def allowed_range(self, account: Account) -> tuple[Decimal, Decimal | None]:
        """(lowest, highest) amount this account may pay now; highest None means no cap."""
        return self.allowed_range_for(account.balance)

    def allowed_range_for(self, balance: Decimal) -> tuple[Decimal, Decimal | None]:
        """(lowest, highest) for an account owing ``balance``; a balance below the minimum
        may still be paid off in full."""
        highest = None if self.allow_overpayment else balance
        if self.maximum is not None:
            highest = self.maximum if highest is None else min(highest, self.maximum)
        lowest = min(self.minimum, balance) if balance > 0 else self.minimum
        return lowest, highest

    def exact(self, amount: Decimal) -> Decimal:
        """``amount`` as a gateway must see it: a Decimal in whole cents (``10.5`` becomes
        ``10.50``). Sub-cent amounts (``10.005``) are refused, never rounded; a float is a
        programming error (TypeError), never taken as money."""
        if not isinstance(amount, Decimal):
            raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
        cents = quantum(self.currency)
        try:
            exact = amount.is_finite() and amount == amount.quantize(cents)
        except InvalidOperation:  # more digits than Decimal's precision
            exact = False
        if not exact:
            raise PaymentRefused("amount_not_exact", "The amount must be in whole cents.")
        return amount.quantize(cents)

    def check(self, account: Account | Row, amount: Decimal, *, held: Decimal = ZERO) -> None:
        """Raise :class:`PaymentRefused` unless ``account`` may pay ``amount`` now, while
        payments of ``held`` in all are still open (they count against the balance)."""
        self.exact(amount)
        if account.status != AccountStatus.ACTIVE.value:
            raise PaymentRefused("account_not_active", "This account cannot take payments.")
        if account.currency != self.currency:
            raise PaymentRefused("currency_mismatch", "This account is in another currency.")
        if amount <= 0:
            raise PaymentRefused("amount_not_positive", "The amount must be more than zero.")
        payable = account.balance - held
        if not self.allow_overpayment and payable <= 0:
            if held > 0:
                raise PaymentRefused(
                    "payment_in_progress", "A payment for this balance is already under way."
                )
            raise PaymentRefused("nothing_owed", "There is no balance to pay.")
        lowest, highest = self.allowed_range_for(payable)
        if amount < lowest or (highest is not None and amount > highest):
            raise PaymentRefused("amount_out_of_range", self.describe_range_for(payable))

    def describe_range(self, account: Account) -> str:
        return self.describe_range_for(account.balance)

    def describe_range_for(self, balance: Decimal) -> str:
        lowest, highest = self.allowed_range_for(balance)
        low = format_amount(lowest, self.currency)
        if highest is None:
            return f"The amount must be at least {low}."
        return f"The amount must be between {low} and {format_amount(highest, self.currency)}."
