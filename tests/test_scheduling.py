"""Scheduled payments: schedule, list, cancel, and run on the day, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from paybot.db.models import LedgerEntry, SandboxCharge
from paybot.payments import confirmation
from paybot.payments.rules import PaymentRefused
from paybot.payments.scheduling import Scheduler
from tests.helpers import account, rows, second_engine, stored_method


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


# --- running due payments: never twice, from cron or from every bridge ----------------------
def _due_today(scheduler, count: int) -> list[int]:
    """``count`` payments scheduled (yesterday) for today, for James's stored card."""
    yesterday = date.today() - timedelta(days=1)
    return [
        schedule(scheduler, 0, f"{10 + i}.00", today=yesterday).payment_id for i in range(count)
    ]


def _second_worker(db_engine, tmp_path):
    """Another bridge: its own engine on the same database, its own ledger and gateway."""
    from paybot.gateway.sandbox import SandboxGateway
    from paybot.payments.ledger import Ledger

    engine = second_engine(db_engine)
    return Scheduler(Ledger(engine, SandboxGateway(engine), retries=0, backoff_s=0)), engine


def test_two_workers_at_once_charge_each_payment_once(scheduler, db_engine, tmp_path):
    import threading

    ids = _due_today(scheduler, 6)
    other, engine = _second_worker(db_engine, tmp_path)
    start = threading.Barrier(2)
    results: dict[str, list] = {}

    def run(name: str, worker: Scheduler) -> None:
        start.wait()
        results[name] = worker.run_due()

    threads = [
        threading.Thread(target=run, args=("a", scheduler)),
        threading.Thread(target=run, args=("b", other)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engine.dispose()
    ran = [o.payment_id for o in results["a"] + results["b"]]
    assert sorted(ran) == sorted(ids)  # each payment run by exactly one of them
    charges = rows(db_engine, SandboxCharge)
    assert len(charges) == len(ids) and len({c.idempotency_key for c in charges}) == len(ids)
    assert len([e for e in rows(db_engine, LedgerEntry) if e.kind == "principal"]) == len(ids)


def test_a_worker_that_listed_a_payment_late_does_not_charge_it(
    scheduler, db_engine, tmp_path, monkeypatch
):
    """The race spelled out: worker A lists the due payments, worker B charges them all, then
    A tries each one; its claim (a conditional update from ``scheduled``) fails."""
    ids = _due_today(scheduler, 2)
    other, engine = _second_worker(db_engine, tmp_path)
    claim = scheduler._run_one

    def b_gets_there_first(payment_id: int, today=None):
        other.run_due()
        return claim(payment_id, today)

    monkeypatch.setattr(scheduler, "_run_one", b_gets_there_first)
    assert scheduler.run_due() == []
    engine.dispose()
    assert len(rows(db_engine, SandboxCharge)) == len(ids)


def test_run_due_command_for_cron(scheduler, db_engine, settings, capsys):
    from paybot_cli.main import main

    _due_today(scheduler, 2)
    url = db_engine.url.render_as_string(hide_password=False)
    if db_engine.dialect.name != "sqlite":
        pytest.skip("the command takes its database from DATABASE_URL (SQLite run covers it)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", url)
        assert main(["payments", "run-due"]) == 0
        assert "2 run (2 succeeded)" in capsys.readouterr().out
        assert main(["payments", "run-due"]) == 0
        assert "0 run" in capsys.readouterr().out
        assert main(["payments", "run-due", "--date", "tomorrow"]) == 2
    assert len(rows(db_engine, SandboxCharge)) == 2


# --- the bridge's background job ------------------------------------------------------------
async def _run_job(settings, engine, until, timeout_s: float = 20.0) -> None:
    """Start ``scheduler_job`` in an app, wait until ``until()`` holds, stop it."""
    import asyncio

    from aiohttp import web

    from voice_bridge.jobs.scheduler import scheduler_job
    from voice_bridge.keys import DB_ENGINE, SETTINGS

    app = web.Application()
    app[SETTINGS], app[DB_ENGINE] = settings, engine
    app.cleanup_ctx.append(scheduler_job)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await asyncio.to_thread(until):
            assert asyncio.get_running_loop().time() < deadline, "the job did not run in time"
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()


async def test_bridge_job_runs_due_payments_in_a_thread(
    scheduler, db_engine, settings, monkeypatch, caplog
):
    import logging
    import threading

    from paybot.db.models import Payment

    caplog.set_level(logging.INFO, logger="voice_bridge.jobs.scheduler")
    ids = _due_today(scheduler, 2)
    threads = []
    run_due = Scheduler.run_due

    def recorded(self, today=None):
        threads.append(threading.current_thread())
        return run_due(self, today)

    monkeypatch.setattr(Scheduler, "run_due", recorded)
    fast = settings.copy(update={"scheduler_interval_s": 0.05})

    def all_paid() -> bool:
        return {p.status for p in rows(db_engine, Payment) if p.id in ids} == {"succeeded"}

    await _run_job(fast, db_engine, all_paid)
    assert threads and threading.main_thread() not in threads  # never on the event loop
    assert "scheduled payments: 2 run (2 succeeded)" in caplog.text
    assert "James" not in caplog.text and "4242" not in caplog.text  # counts only


async def test_bridge_job_is_off_at_interval_zero(scheduler, db_engine, settings, monkeypatch):
    import asyncio

    calls = []
    monkeypatch.setattr(Scheduler, "run_due", lambda self, today=None: calls.append(1) or [])
    off = settings.copy(update={"scheduler_interval_s": 0})
    ticks = iter(range(10))
    await _run_job(off, db_engine, lambda: next(ticks) >= 5)
    await asyncio.sleep(0)
    assert calls == []


# --- on its day a scheduled payment is checked again --------------------------------------------
def _set(engine, model, row_id: int, **values) -> None:
    from sqlalchemy import update

    with engine.begin() as conn:
        conn.execute(update(model).where(model.id == row_id).values(**values))


def _close(engine, james, method):
    from paybot.db.models import Account

    _set(engine, Account, james.id, status="closed")


def _suspend(engine, james, method):
    from paybot.db.models import Account

    _set(engine, Account, james.id, status="suspended")


def _pay_down(engine, james, method):
    from paybot.db.models import Account

    _set(engine, Account, james.id, balance=Decimal("5.00"))


def _nothing_owed(engine, james, method):
    from paybot.db.models import Account

    _set(engine, Account, james.id, balance=Decimal("0.00"))


def _delete_method(engine, james, method):
    from paybot.db.models import PaymentMethod
    from paybot.db.types import utcnow

    _set(engine, PaymentMethod, method.id, deleted_at=utcnow())


def _single_use_method(engine, james, method):
    from paybot.db.models import PaymentMethod

    _set(engine, PaymentMethod, method.id, reusable=False)


def _expire_method(engine, james, method):
    from paybot.db.models import PaymentMethod

    last_month = date.today().replace(day=1) - timedelta(days=1)
    _set(engine, PaymentMethod, method.id, exp_year=last_month.year, exp_month=last_month.month)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_close, "account_not_active"),
        (_suspend, "account_not_active"),
        (_pay_down, "amount_out_of_range"),
        (_nothing_owed, "nothing_owed"),
        (_delete_method, "method_unavailable"),
        (_single_use_method, "method_unavailable"),
        (_expire_method, "method_expired"),
    ],
)
def test_a_scheduled_payment_the_rules_no_longer_allow_is_skipped(
    scheduler, db_engine, change, reason
):
    """Scheduled payments were charged on their day without looking at the account, its
    balance or the method again."""
    from paybot.db.models import AuditEvent, Payment

    (payment_id,) = _due_today(scheduler, 1)  # $10.00
    james = account(db_engine, "100200300")
    change(db_engine, james, stored_method(db_engine, james.id))
    (skipped,) = scheduler.run_due()
    assert (skipped.payment_id, skipped.status, skipped.decline_code) == (
        payment_id,
        "skipped",
        reason,
    )
    assert rows(db_engine, SandboxCharge) == [] and rows(db_engine, LedgerEntry) == []
    [event] = [e for e in rows(db_engine, AuditEvent) if e.kind == "payment.schedule_skipped"]
    assert event.payment_id == payment_id and event.detail == {"reason": reason}
    assert scheduler.run_due() == []  # never tried again
    assert [p.status for p in rows(db_engine, Payment)] == ["skipped"]


def test_scheduled_payments_never_overpay_what_is_owed_on_their_day(scheduler, db_engine, ledger):
    """Generated: payments scheduled, another taken meanwhile (its answer sometimes lost, so
    still open); on the day each scheduled one is charged exactly when what is still owed
    (the balance less open payments) covers it, in the order they run."""
    import random

    from paybot.payments.settlement import OPEN

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    yesterday = date.today() - timedelta(days=1)
    owed = account(db_engine, "100200300").balance
    amounts = [Decimal(rng.randint(100, 15000)) / 100 for _ in range(rng.randint(1, 5))]
    for amount in amounts:
        schedule(scheduler, 0, str(amount), today=yesterday)
    # At least the largest one no longer fits (what it would overpay once went through).
    least = max(100, int((owed - max(amounts)) * 100) + 1)
    meanwhile = Decimal(rng.randint(least, int(owed * 100))) / 100
    if rng.random() < 0.5:  # its answer lost: it stays open and still counts
        ledger.gateway.faults.timeout_next(3, when="before")
    paid = _pay(ledger, meanwhile)
    assert paid.succeeded or paid.status in OPEN, seed
    payable = owed - meanwhile
    context = f"seed={seed} amounts={amounts} meanwhile={meanwhile} {paid.status}"
    for outcome in scheduler.run_due():
        if outcome.amount <= payable:
            assert outcome.succeeded, context
            payable -= outcome.amount
        else:
            assert outcome.status == "skipped", context
            assert outcome.decline_code in (
                "amount_out_of_range",
                "nothing_owed",
                "payment_in_progress",
            ), context
    assert account(db_engine, "100200300").balance == (
        payable + (meanwhile if paid.status in OPEN else 0)
    ), context


def _pay(ledger, amount: Decimal):
    james = account(ledger.engine, "100200300")
    return ledger.pay_with_stored_method(
        account_id=james.id,
        payment_method_id=stored_method(ledger.engine, james.id).id,
        amount=amount,
        channel="chat",
    )
