"""Seeded payments for the reconciliation tests: accounts and ``payments`` rows written straight
into the database with chosen completion times (midnight edges included), and what a day's
file must list, worked out here from the seeds rather than by paybot's query."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy.engine import Engine

from paybot.db.engine import session_scope
from paybot.db.models import Account, Channel, Payment, PaymentStatus

LISTED = {PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value}
BRANDS = {"card": ("visa", "mastercard", "amex", "discover"), "bank": ("checking", "savings")}


@dataclass(frozen=True)
class Seeded:
    payment_id: int
    account_number: str
    status: str
    completed_at: datetime | None
    amount: Decimal
    fee: Decimal
    channel: str
    kind: str
    brand: str
    last4: str
    confirmation: str | None
    transaction: str | None


def utc(day: date, hours: int = 0, minutes: int = 0, seconds: int = 0, micros: int = 0
        ) -> datetime:
    return datetime.combine(day, time(hours, minutes, seconds, micros), tzinfo=timezone.utc)


def edge_times(day: date) -> list[datetime]:
    """The instants either side of ``day``'s two midnights."""
    return [
        utc(day - timedelta(days=1), 23, 59, 59, 999_999),
        utc(day),
        utc(day, 0, 0, 0, 1),
        utc(day, 23, 59, 59, 999_000),
        utc(day, 23, 59, 59, 999_999),
        utc(day + timedelta(days=1)),
    ]


def make_accounts(engine: Engine, tag: str, count: int = 5) -> list[Account]:
    with session_scope(engine) as session:
        accounts = [
            Account(account_number=f"RC-{tag}-{n:03d}", name=f"Payer {n}", billing_zip="30301",
                    balance=Decimal("1000.00"), minimum_payment=Decimal("0.00"))
            for n in range(count)
        ]
        session.add_all(accounts)
    return accounts


def seed_payments(engine: Engine, rng: random.Random, day: date, count: int) -> list[Seeded]:
    """``count`` random payments completed around ``day`` (its edges always among them)."""
    tag = uuid.uuid4().hex[:6].upper()  # several seedings in one database do not collide
    accounts = make_accounts(engine, tag)
    times = edge_times(day)
    seeded = []
    with session_scope(engine) as session:
        for n in range(count):
            status = rng.choice(list(PaymentStatus)).value
            if n < len(times) * 2:  # every edge, once listed and once not
                status = PaymentStatus.SUCCEEDED.value if n % 2 == 0 else status
                at: datetime | None = times[n // 2]
            elif status in (PaymentStatus.PENDING.value, PaymentStatus.SCHEDULED.value):
                at = None
            else:
                at = utc(day + timedelta(days=rng.randint(-1, 1)), rng.randint(0, 23),
                         rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999))
            if rng.random() < 0.15:  # two payments completed in the same microsecond
                at = times[rng.randrange(len(times))]
            kind = rng.choice(("card", "bank"))
            amount = Decimal(rng.randint(100, 500_000)) / 100
            fee = rng.choice((Decimal("0.00"), Decimal("1.50"), Decimal("2.00")))
            account = rng.choice(accounts)
            paid = status in LISTED
            payment = Payment(
                account_id=account.id, amount=amount, fee=fee, total=amount + fee,
                status=status, channel=rng.choice(list(Channel)).value,
                method_kind=kind, method_brand=rng.choice(BRANDS[kind]),
                method_last4=f"{rng.randint(0, 9999):04d}", gateway="sandbox",
                gateway_transaction_id=f"ch_{uuid.uuid4().hex[:16]}" if paid else None,
                confirmation_number=f"C{tag}{n:04d}" if paid else None,
                idempotency_key=uuid.uuid4().hex, completed_at=at,
            )
            session.add(payment)
            session.flush()
            seeded.append(Seeded(payment.id, account.account_number, status, at, amount, fee,
                                 payment.channel, kind, payment.method_brand,
                                 payment.method_last4, payment.confirmation_number,
                                 payment.gateway_transaction_id))
    return seeded


def expected_rows(seeded: list[Seeded], day: date) -> list[dict[str, str]]:
    """What ``day``'s file must say, in its order, in the default columns."""
    start = utc(day)
    end = start + timedelta(days=1)
    on_day = [s for s in seeded if s.completed_at and start <= s.completed_at < end]
    listed = sorted((s for s in on_day if s.status in LISTED),
                    key=lambda s: (s.completed_at, s.payment_id))
    return [
        {
            "confirmation_number": s.confirmation or "",
            "account_number": s.account_number,
            "amount": f"{s.amount:.2f}",
            "fee": f"{s.fee:.2f}",
            "total": f"{s.amount + s.fee:.2f}",
            "currency": "USD",
            "method_kind": s.kind,
            "method_brand": s.brand,
            "method_last4": s.last4,
            "channel": s.channel,
            "status": s.status,
            "paid_at": s.completed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "gateway_transaction_id": s.transaction or "",
        }
        for s in listed
    ]
