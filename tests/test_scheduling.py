"""Scheduled payments: schedule, list, cancel, and run on the day, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from paybot.db.models import LedgerEntry, SandboxCharge
from paybot.payments import confirmation
from paybot.payments.rules import PaymentRefused
from paybot.payments.scheduling import Scheduler
from tests.helpers import account, rows, stored_method


@pytest.fixture
def scheduler(ledger) -> Scheduler:
    return Scheduler(ledger)


def schedule(scheduler, days: int, amount: str = "50.00", **kw):
    james = account(scheduler.engine, "100200300")
    method = stored_method(scheduler.engine, james.id)
    return scheduler.schedule(
        account_id=james.id,
        payment_method_id=method.id,
        amount=Decimal(amount),
        pay_on=date.today() + timedelta(days=days),
        channel="chat",
        **kw,
    )


def test_schedule_then_run_on_the_day(scheduler, db_engine):
    scheduled = schedule(scheduler, 3)
    assert scheduled.status == "scheduled" and scheduled.fee == Decimal("0.00")
    assert confirmation.is_valid(scheduled.confirmation_number)
    assert scheduler.run_due(date.today()) == []  # not yet
    assert rows(db_engine, SandboxCharge) == []

    (ran,) = scheduler.run_due(date.today() + timedelta(days=3))
    assert ran.succeeded and ran.confirmation_number == scheduled.confirmation_number
    assert account(db_engine, "100200300").balance == Decimal("271.72")
    assert [e.kind for e in rows(db_engine, LedgerEntry)] == ["principal"]
    assert scheduler.run_due(date.today() + timedelta(days=4)) == []  # never twice


def test_list_and_cancel(scheduler, db_engine):
    later = schedule(scheduler, 4, "30.00")
    sooner = schedule(scheduler, 2, "20.00")
    listed = scheduler.list_scheduled(account(db_engine, "100200300").id)
    assert [p.payment_id for p in listed] == [sooner.payment_id, later.payment_id]
    james_id = account(db_engine, "100200300").id
    assert scheduler.cancel(sooner.payment_id, account_id=james_id)
    assert not scheduler.cancel(sooner.payment_id, account_id=james_id)
    assert not scheduler.cancel(later.payment_id, account_id=james_id + 1)
    assert [p.payment_id for p in scheduler.list_scheduled(james_id)] == [later.payment_id]
    (ran,) = scheduler.run_due(date.today() + timedelta(days=10))
    assert ran.payment_id == later.payment_id


@pytest.mark.parametrize("days", [0, -1, 6])
def test_dates_must_be_after_today_and_by_the_due_date(scheduler, days):
    with pytest.raises(PaymentRefused) as exc:
        schedule(scheduler, days)  # James's bill is due in 5 days
    assert exc.value.code == "date_out_of_range"


def test_same_key_schedules_once(scheduler, db_engine):
    first = schedule(scheduler, 2, idempotency_key="k1")
    again = schedule(scheduler, 2, idempotency_key="k1")
    assert first.payment_id == again.payment_id
    assert len(scheduler.list_scheduled(account(db_engine, "100200300").id)) == 1
