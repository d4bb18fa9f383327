"""Which bridge publishes a day's reconciliation file: the first to claim the day.

Every bridge runs the daily job (:mod:`voice_bridge.jobs.reconciliation`). Before it writes and
uploads a day's file it claims the day: a row in ``reconciliation_runs`` with the day as its
key, inserted by one of them only. The others see the row and skip the day. A claim is given
up when the publication fails (``failed``: the next bridge to start, or the next try, takes it
again), and one left ``running`` longer than :data:`LEASE` (its bridge died mid-way) may be
taken over. ``paybot reconcile`` is an operator's explicit rewrite and claims nothing.

All functions block (database I/O).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from paybot.db.engine import session_scope
from paybot.db.models import ReconciliationRun
from paybot.db.types import utcnow

LEASE = timedelta(minutes=15)


def claim_day(engine: Engine, day: date, now: datetime | None = None) -> bool:
    """Claim ``day`` for this worker; False when another has it (running) or it is done."""
    now = now or utcnow()
    try:
        with session_scope(engine) as session:
            session.add(ReconciliationRun(day=day, status="running", claimed_at=now))
        return True
    except IntegrityError:
        pass
    with session_scope(engine) as session:
        taken = session.execute(
            update(ReconciliationRun)
            .where(
                ReconciliationRun.day == day,
                or_(
                    ReconciliationRun.status == "failed",
                    (ReconciliationRun.status == "running")
                    & (ReconciliationRun.claimed_at < now - LEASE),
                ),
            )
            .values(status="running", claimed_at=now, finished_at=None)
        )
        return taken.rowcount == 1


def finish_day(engine: Engine, day: date, *, ok: bool) -> None:
    """Record how the claimed ``day`` went: ``done``, or ``failed`` (claimable again)."""
    with session_scope(engine) as session:
        session.execute(
            update(ReconciliationRun)
            .where(ReconciliationRun.day == day, ReconciliationRun.status == "running")
            .values(status="done" if ok else "failed", finished_at=utcnow())
        )
