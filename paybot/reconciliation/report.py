"""What a day's reconciliation file says: the payments completed that UTC day, in a stable order.

A payment belongs to the day its ``completed_at`` (UTC) falls on: from 00:00:00.000000 up to,
not including, the next midnight. The file lists the payments that moved money: ``succeeded``,
and ``refunded`` (a succeeded payment refunded since, shown with its status at the time the file
is written, so re-writing the day reflects the refund). Declined, failed, cancelled, skipped
and open payments are not listed. Rows are ordered by ``completed_at``, then payment id: the
same database gives the same bytes every time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db.models import Account, Payment, PaymentStatus
from paybot.reconciliation.columns import PaidRow, cells

LISTED = (PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants ``[start, end)`` of ``day``."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def paid_rows(engine: Engine, day: date) -> list[PaidRow]:
    """The payments completed on ``day`` (UTC) that moved money, in file order (blocking)."""
    start, end = day_bounds(day)
    stmt = (
        select(Payment, Account.account_number)
        .join(Account, Account.id == Payment.account_id)
        .where(Payment.completed_at >= start)  # type: ignore[operator]
        .where(Payment.completed_at < end)  # type: ignore[operator]
        .where(Payment.status.in_(LISTED))  # type: ignore[attr-defined]
        .order_by(Payment.completed_at, Payment.id)
    )
    with Session(engine) as session:
        return [paid_row(payment, number) for payment, number in session.execute(stmt).all()]


def paid_row(p: Payment, account_number: str) -> PaidRow:
    assert p.id is not None and p.completed_at is not None
    return PaidRow(
        payment_id=p.id,
        confirmation_number=p.confirmation_number,
        account_number=account_number,
        amount=p.amount,
        fee=p.fee,
        total=p.total,
        currency=p.currency,
        method_kind=p.method_kind,
        method_brand=p.method_brand,
        method_last4=p.method_last4,
        channel=p.channel,
        status=p.status,
        paid_at=p.completed_at.astimezone(timezone.utc),
        gateway=p.gateway,
        gateway_transaction_id=p.gateway_transaction_id,
    )


def render(rows: list[PaidRow], columns: tuple[str, ...]) -> Iterator[bytes]:
    """The CSV file (UTF-8, a header line, CRLF line ends as RFC 4180 has them), line by line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for line in (list(columns), *(cells(row, columns) for row in rows)):
        writer.writerow(line)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
