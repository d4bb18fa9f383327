"""Column types: exact money on every backend, UTC timestamps."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Numeric
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

_CENTS = Decimal("0.01")


class Money(TypeDecorator):
    """A ``Decimal`` with two places: NUMERIC(14,2) on PostgreSQL, integer cents on SQLite.

    SQLite has no exact decimal type (it would round-trip through float), so there the value
    is stored as a whole number of cents and compared numerically all the same. A float, or a
    value with a fraction of a cent, is refused rather than rounded.
    """

    impl = Numeric(14, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(14, 2, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        amount = Decimal(value).quantize(_CENTS)
        if amount != value:  # never rounded on the way in: 10.005 is not 10.00 nor 10.01
            raise ValueError("money must be whole cents")
        if dialect.name == "sqlite":
            return int(amount * 100)
        return amount

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(_CENTS)
        return Decimal(value).quantize(_CENTS)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware datetimes only")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the offset; we only ever stored UTC
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(timezone.utc)


def money_field(nullable: bool = False) -> Any:
    """A ``Decimal`` money column (:class:`Money`)."""
    return Field(sa_column=Column(Money(), nullable=nullable))


def timestamp_field(nullable: bool = False, default: bool = True, index: bool = False) -> Any:
    """A UTC timestamp column (:class:`UTCDateTime`), by default set to now on insert."""
    column = Column(UTCDateTime(), nullable=nullable, index=index)
    if default:
        return Field(default_factory=utcnow, sa_column=column)
    return Field(default=None, sa_column=column)
