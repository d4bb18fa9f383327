"""The card-data types: a card or a bank account as the caller keyed it.

Only the secure capture (:mod:`voice_bridge.secure_capture`) builds them, the gateway
(:mod:`paybot.gateway`) tokenises or charges them and the ledger passes them through; the
import contracts (``tests/test_import_contracts.py``) fail if any other module imports them.
Their digits stay out of ``repr``/``str``, so a stray log line or exception message cannot
carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
