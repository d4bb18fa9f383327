"""The columns a reconciliation file may have: a fixed, documented set, chosen by
``PAYBOT_RECONCILE_COLUMNS`` (comma-separated names, in the order wanted).

None of them can hold a card or bank account number: the payments table has only the
method's brand and last four digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from paybot.money import quantum


@dataclass(frozen=True)
class PaidRow:
    """One completed payment as the biller sees it."""

    payment_id: int
    confirmation_number: str | None
    account_number: str
    amount: Decimal
    fee: Decimal
    total: Decimal
    currency: str
    method_kind: str | None
    method_brand: str | None
    method_last4: str | None
    channel: str
    status: str
    paid_at: datetime
    gateway: str
    gateway_transaction_id: str | None


def money(amount: Decimal, currency: str) -> str:
    """``12.50``: the currency's places (two for USD), never a float, never rounded away."""
    return str(amount.quantize(quantum(currency)))


def utc_iso(at: datetime) -> str:
    """``2026-12-04T23:59:59.999000Z``: always microseconds, so a re-run spells it the same."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


COLUMNS: dict[str, Callable[[PaidRow], str]] = {
    "payment_id": lambda r: str(r.payment_id),
    "confirmation_number": lambda r: r.confirmation_number or "",
    "account_number": lambda r: r.account_number,
    "amount": lambda r: money(r.amount, r.currency),
    "fee": lambda r: money(r.fee, r.currency),
    "total": lambda r: money(r.total, r.currency),
    "currency": lambda r: r.currency,
    "method_kind": lambda r: r.method_kind or "",  # card or bank
    "method_brand": lambda r: r.method_brand or "",  # visa..., or checking/savings
    "method_last4": lambda r: r.method_last4 or "",  # the card's or bank account's last four
    "channel": lambda r: r.channel,
    "status": lambda r: r.status,  # succeeded or refunded
    "paid_at": lambda r: utc_iso(r.paid_at),
    "gateway": lambda r: r.gateway,
    "gateway_transaction_id": lambda r: r.gateway_transaction_id or "",
}
DEFAULT_COLUMNS = (
    "confirmation_number", "account_number", "amount", "fee", "total", "currency",
    "method_kind", "method_brand", "method_last4", "channel", "status", "paid_at",
    "gateway_transaction_id",
)


def parse_columns(value: str) -> tuple[str, ...]:
    """The column names of ``value`` ("amount, paid_at"); empty: :data:`DEFAULT_COLUMNS`.

    Raises:
        ValueError: an unknown or repeated name (the message lists the known ones).
    """
    names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown columns {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    if len(set(names)) != len(names):
        raise ValueError("a column is named twice")
    return names or DEFAULT_COLUMNS


def cells(row: PaidRow, columns: tuple[str, ...]) -> list[str]:
    """The row's values for ``columns``."""
    return [COLUMNS[name](row) for name in columns]
