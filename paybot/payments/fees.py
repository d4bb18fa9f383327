"""Convenience fees and the quote disclosed to the payer before they confirm."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paybot.money import format_amount


@dataclass(frozen=True)
class FeePolicy:
    """A flat convenience fee, booked to its own ledger account.

    Card-brand rules want a convenience fee to be flat whatever the amount, disclosed before
    the payment completes, and not charged on scheduled or recurring payments.
    """

    flat: Decimal = Decimal("0.00")
    account: str = "CONVENIENCE-FEES"

    def fee_for(self, amount: Decimal, *, scheduled: bool = False) -> Decimal:
        if scheduled or amount <= 0:
            return Decimal("0.00")
        return self.flat


@dataclass(frozen=True)
class Quote:
    """What the payer is asked to confirm: the amount, the fee, and the total charged."""

    amount: Decimal
    fee: Decimal
    currency: str

    @property
    def total(self) -> Decimal:
        return self.amount + self.fee

    def disclosure(self) -> str:
        """One sentence, good both read aloud and in a text message."""
        amount = format_amount(self.amount, self.currency)
        if not self.fee:
            return f"Your payment is {amount}."
        fee = format_amount(self.fee, self.currency)
        total = format_amount(self.total, self.currency)
        return (
            f"Your payment is {amount}, plus a convenience fee of {fee}, "
            f"for a total of {total}."
        )
