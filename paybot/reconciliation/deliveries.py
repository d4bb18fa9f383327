"""The CRM webhook's outbox (``crm_deliveries``): one row per succeeded payment, so each is
posted until the CRM accepts it, and by one worker at a time.

* :func:`enqueue` adds a ``queued`` row for every succeeded payment completed since a cut-off
  that has none; the unique ``payment_id`` makes two workers adding the same one harmless.
* :func:`claim` takes a row with one conditional UPDATE (``queued`` and due, or ``sending`` by a
  worker silent past the lease, to ``sending`` under a fresh claim token, ``attempts + 1``):
  of two workers only one gets ``rowcount`` 1, and only it posts that attempt.
* :func:`finish` records the outcome only while the row still carries that claim token.

A worker that dies mid-post leaves its row ``sending``; after the lease another posts it again
under the same idempotency key, which the receiver dedupes. :func:`take` and :func:`release`
work on any outbox table with these columns: the contact-centre sessions' completion webhooks
(``session_deliveries``, :mod:`paybot.contact_centre.webhook`) use them too. Blocking: call
from a thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot.db.engine import session_scope
from paybot.db.models import Account, CrmDelivery, Payment, PaymentStatus, SessionDelivery
from paybot.db.types import utcnow
from paybot.reconciliation.columns import PaidRow
from paybot.reconciliation.report import paid_row

QUEUED, SENDING, DELIVERED, FAILED = "queued", "sending", "delivered", "failed"


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds for one attempt."""

    delivery_id: int
    claim_token: str
    attempts: int
    idempotency_key: str
    row: PaidRow


def enqueue(engine: Engine, since: datetime) -> int:
    """Queue the succeeded payments completed since ``since`` that have no delivery; how many."""
    with Session(engine) as session:
        missing = session.execute(
            select(Payment.id)
            .outerjoin(CrmDelivery, CrmDelivery.payment_id == Payment.id)
            .where(Payment.status == PaymentStatus.SUCCEEDED.value)
            .where(Payment.completed_at >= since)  # type: ignore[operator]
            .where(CrmDelivery.id.is_(None))  # type: ignore[union-attr]
            .order_by(Payment.id)
        ).scalars().all()
    added = 0
    for payment_id in missing:
        try:
            with session_scope(engine) as session:
                session.add(CrmDelivery(payment_id=payment_id, idempotency_key=uuid.uuid4().hex))
            added += 1
        except IntegrityError:  # another worker queued it first
            pass
    return added


Outbox = type[CrmDelivery] | type[SessionDelivery]  # a table with the outbox columns


def _claimable(model: Outbox, now: datetime, lease_s: float):  # noqa: ANN202 - a SQL expression
    due = or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now)  # type: ignore[union-attr,operator]
    stale = model.claimed_at < now - timedelta(seconds=lease_s)  # type: ignore[operator]
    return or_(and_(model.status == QUEUED, due), and_(model.status == SENDING, stale))


def due_rows(engine: Engine, model: Outbox, lease_s: float, limit: int = 50) -> list[int]:
    """The rows of outbox ``model`` that may be claimed now, oldest first."""
    with Session(engine) as session:
        return list(session.execute(
            select(model.id).where(_claimable(model, utcnow(), lease_s))
            .order_by(model.id).limit(limit)
        ).scalars().all())


def take(session: Session, model: Outbox, row_id: int, lease_s: float) -> str | None:
    """Claim row ``row_id`` of outbox ``model`` for one attempt (in ``session``'s transaction):
    its new claim token, or None if another worker has it or it is done."""
    token = uuid.uuid4().hex
    now = utcnow()
    taken = session.execute(
        update(model)
        .where(model.id == row_id)
        .where(_claimable(model, now, lease_s))
        .values(status=SENDING, claim_token=token, claimed_at=now, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return token if taken.rowcount == 1 else None


def release(engine: Engine, model: Outbox, row_id: int, claim_token: str, status: str, *,
            error: str | None = None, next_attempt_at: datetime | None = None) -> bool:
    """Record an attempt's outcome on row ``row_id`` of outbox ``model`` (``delivered``,
    ``queued`` again, or ``failed``); False if the claim was lost meanwhile (a lease that ran
    out)."""
    now = utcnow()
    with session_scope(engine) as session:
        done = session.execute(
            update(model)
            .where(model.id == row_id)
            .where(model.claim_token == claim_token)
            .values(status=status, last_error=error, next_attempt_at=next_attempt_at,
                    claim_token=None, delivered_at=now if status == DELIVERED else None)
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1


def due_ids(engine: Engine, lease_s: float, limit: int = 50) -> list[int]:
    """CRM deliveries that may be claimed now, oldest first."""
    return due_rows(engine, CrmDelivery, lease_s, limit)


def claim(engine: Engine, delivery_id: int, lease_s: float) -> Claimed | None:
    """Take ``delivery_id`` for one attempt; None if another worker has it or it is done."""
    with session_scope(engine) as session:
        token = take(session, CrmDelivery, delivery_id, lease_s)
        if token is None:
            return None
        delivery, payment, number = session.execute(
            select(CrmDelivery, Payment, Account.account_number)
            .join(Payment, Payment.id == CrmDelivery.payment_id)
            .join(Account, Account.id == Payment.account_id)
            .where(CrmDelivery.id == delivery_id)
        ).one()
        return Claimed(delivery_id, token, delivery.attempts, delivery.idempotency_key,
                       paid_row(payment, number))


def finish(engine: Engine, claimed: Claimed, status: str, *, error: str | None = None,
           next_attempt_at: datetime | None = None) -> bool:
    """Record a CRM delivery's attempt (:func:`release`)."""
    return release(engine, CrmDelivery, claimed.delivery_id, claimed.claim_token, status,
                   error=error, next_attempt_at=next_attempt_at)


def delivery_states(engine: Engine) -> dict[int, tuple[str, int]]:
    """Each payment's delivery (status, attempts), by payment id: for status reports."""
    with Session(engine) as session:
        rows = session.execute(
            select(CrmDelivery.payment_id, CrmDelivery.status, CrmDelivery.attempts)
        ).all()
    return {payment_id: (status, attempts) for payment_id, status, attempts in rows}
