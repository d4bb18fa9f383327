"""The ledger against the real sandbox gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from paybot.db.models import (
    AuditEvent,
    LedgerEntry,
    Payment,
    SandboxCharge,
)
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.sandbox import SandboxGateway
from paybot.payments import confirmation
from paybot.payments.fees import FeePolicy
from paybot.payments.ledger import Ledger
from paybot.payments.rules import AmountRules, PaymentRefused
from paybot.seed import seed_demo_data
from tests.helpers import account, rows, second_engine, stored_method

FUTURE = date.today().year + 2


class Crash(BaseException):
    """Stands in for the process dying at a chosen point."""


def pay_james(ledger: Ledger, amount: str = "100.00", **kw):
    james = account(ledger.engine, "100200300")
    method = stored_method(ledger.engine, james.id)
    return ledger.pay_with_stored_method(
        account_id=james.id,
        payment_method_id=method.id,
        amount=Decimal(amount) if isinstance(amount, str) else amount,
        channel="voice",
        conversation_id="call:CA123",
        **kw,
    )


def test_stored_card_payment_books_principal_and_fee(ledger, db_engine):
    outcome = pay_james(ledger)

    assert outcome.succeeded
    assert (outcome.amount, outcome.fee, outcome.total) == (
        Decimal("100.00"),
        Decimal("2.00"),
        Decimal("102.00"),
    )
    assert (outcome.brand, outcome.last4) == ("visa", "4242")
    assert confirmation.is_valid(outcome.confirmation_number)
    assert account(db_engine, "100200300").balance == Decimal("221.72")
    lines = {(e.kind, e.ledger_account, e.amount) for e in rows(db_engine, LedgerEntry)}
    assert lines == {
        ("principal", "100200300", Decimal("100.00")),
        ("fee", "CONVENIENCE-FEES", Decimal("2.00")),
    }
    charges = rows(db_engine, SandboxCharge)
    assert [c.amount for c in charges] == [Decimal("102.00")]
    kinds = [e.kind for e in rows(db_engine, AuditEvent) if e.payment_id == outcome.payment_id]
    assert kinds == ["payment.created", "payment.succeeded"]


def test_no_fee_line_when_fee_is_zero(db_engine, sandbox):
    seed_demo_data(db_engine, sandbox)
    ledger = Ledger(
        db_engine,
        sandbox,
        rules=AmountRules(minimum=Decimal("0.10")),
        fees=FeePolicy(flat=Decimal("0.00")),
        backoff_s=0,
    )
    outcome = pay_james(ledger, "0.30")
    assert outcome.succeeded and outcome.total == Decimal("0.30")
    assert [e.kind for e in rows(db_engine, LedgerEntry)] == ["principal"]
    assert account(db_engine, "100200300").balance == Decimal("321.42")


def test_quote_discloses_the_fee(ledger, db_engine):
    james = account(db_engine, "100200300")
    quote = ledger.quote(james.id, Decimal("50.00"))
    assert quote.total == Decimal("52.00")
    assert quote.disclosure() == (
        "Your payment is $50.00, plus a convenience fee of $2.00, for a total of $52.00."
    )


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000127", "incorrect_cvc"),
        ("4000000000000119", "processing_error"),
    ],
)
def test_declined_cards_leave_balance_and_ledger_untouched(ledger, db_engine, number, decline_code):
    maria = account(db_engine, "200300400")
    outcome = ledger.pay_with_new_method(
        account_id=maria.id,
        method=CardData(number, 12, FUTURE, "123"),
        amount=Decimal("20.00"),
        channel="voice",
    )
    assert outcome.status == "declined"
    assert outcome.decline_code == decline_code
    assert outcome.confirmation_number is None
    assert account(db_engine, "200300400").balance == Decimal("89.10")
    assert rows(db_engine, LedgerEntry) == []


def test_new_card_saved_for_next_time(ledger, db_engine):
    maria = account(db_engine, "200300400")
    outcome = ledger.pay_with_new_method(
        account_id=maria.id,
        method=CardData("5555555555554444", 1, FUTURE, "321"),
        amount=Decimal("89.10"),
        channel="voice",
        save=True,
    )
    assert outcome.succeeded and outcome.brand == "mastercard"
    method = stored_method(db_engine, maria.id)
    assert (method.brand, method.last4, method.exp_year) == ("mastercard", "4444", FUTURE)
    assert account(db_engine, "200300400").balance == Decimal("0.00")


def test_bank_account_payment(ledger, db_engine):
    maria = account(db_engine, "200300400")
    ok = ledger.pay_with_new_method(
        account_id=maria.id,
        method=BankAccount("110000000", "000123456789", "checking"),
        amount=Decimal("10.00"),
        channel="voice",
    )
    closed = ledger.pay_with_new_method(
        account_id=maria.id,
        method=BankAccount("110000000", "000111111113", "savings"),
        amount=Decimal("10.00"),
        channel="voice",
    )
    assert ok.succeeded and ok.last4 == "6789"
    assert (closed.status, closed.decline_code) == ("declined", "account_closed")


@pytest.mark.parametrize("when", ["before", "after"])
def test_timeout_is_retried_with_the_same_key(ledger, db_engine, sandbox, when):
    sandbox.faults.timeout_next(1, when=when)
    outcome = pay_james(ledger)
    assert outcome.succeeded
    (payment,) = rows(db_engine, Payment)
    assert payment.attempts == 2
    charges = rows(db_engine, SandboxCharge)
    assert len(charges) == 1 and charges[0].idempotency_key == payment.idempotency_key
    assert account(db_engine, "100200300").balance == Decimal("221.72")


def test_lost_answers_are_looked_up_before_anyone_is_told(ledger, db_engine, sandbox):
    sandbox.faults.timeout_next(3, when="after")  # every attempt's answer is lost
    outcome = pay_james(ledger)
    assert outcome.succeeded  # find_charge found the one charge the first attempt made
    assert len(rows(db_engine, SandboxCharge)) == 1


def test_unreachable_gateway_leaves_payment_unknown_then_reconciled(ledger, db_engine, sandbox):
    sandbox.faults.timeout_next(3, when="before")
    outcome = pay_james(ledger)
    assert outcome.status == "unknown"
    assert outcome.confirmation_number is None
    assert account(db_engine, "100200300").balance == Decimal("321.72")

    (settled,) = ledger.reconcile(older_than_s=0)
    assert (settled.status, settled.decline_code) == ("failed", "not_submitted")
    assert rows(db_engine, SandboxCharge) == []


def test_crash_after_charge_is_reconciled_at_startup(ledger, db_engine, sandbox, monkeypatch):
    def crash(*_a, **_kw):
        raise Crash

    monkeypatch.setattr(ledger, "_settle", crash)
    with pytest.raises(Crash):
        pay_james(ledger)
    (payment,) = rows(db_engine, Payment)
    assert payment.status == "pending"

    restarted = Ledger(db_engine, SandboxGateway(db_engine), fees=ledger.fees, backoff_s=0)
    (settled,) = restarted.reconcile(older_than_s=0)
    assert settled.succeeded and confirmation.is_valid(settled.confirmation_number)
    assert restarted.reconcile(older_than_s=0) == []
    assert len(rows(db_engine, SandboxCharge)) == 1
    assert account(db_engine, "100200300").balance == Decimal("221.72")
    assert "payment.succeeded" in {e.kind for e in rows(db_engine, AuditEvent)}


def test_crash_before_charge_is_marked_not_submitted(ledger, db_engine, sandbox, monkeypatch):
    def crash(*_a, **_kw):
        raise Crash

    monkeypatch.setattr(sandbox, "charge_token", crash)
    with pytest.raises(Crash):
        pay_james(ledger)
    (settled,) = ledger.reconcile(older_than_s=0)
    assert (settled.status, settled.decline_code) == ("failed", "not_submitted")
    assert account(db_engine, "100200300").balance == Decimal("321.72")


def test_reconcile_leaves_recent_open_payments_alone(ledger, db_engine, monkeypatch):
    monkeypatch.setattr(ledger, "_settle", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        pay_james(ledger)
    assert ledger.reconcile(older_than_s=3600) == []


def test_repeated_confirmation_with_same_key_charges_once(ledger, db_engine):
    first = pay_james(ledger, idempotency_key="call:CA123:confirm:1")
    again = pay_james(ledger, idempotency_key="call:CA123:confirm:1")
    assert first == again
    assert len(rows(db_engine, Payment)) == 1
    assert len(rows(db_engine, SandboxCharge)) == 1
    with pytest.raises(PaymentRefused) as exc:
        pay_james(ledger, "50.00", idempotency_key="call:CA123:confirm:1")
    assert exc.value.code == "idempotency_conflict"


def test_concurrent_confirmations_charge_once(ledger, db_engine):
    results, errors = [], []

    def confirm():
        try:
            results.append(pay_james(ledger, idempotency_key="same-key"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=confirm) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(rows(db_engine, Payment)) == 1
    assert len(rows(db_engine, SandboxCharge)) == 1
    assert account(db_engine, "100200300").balance == Decimal("221.72")


@pytest.mark.parametrize(
    ("number", "amount", "code"),
    [
        ("100200300", "0.50", "amount_out_of_range"),
        ("100200300", "321.73", "amount_out_of_range"),
        ("400500600", "10.00", "account_not_active"),
    ],
)
def test_rules_refuse_before_any_row_is_written(ledger, db_engine, number, amount, code):
    acct = account(db_engine, number)
    with pytest.raises(PaymentRefused) as exc:
        ledger.pay_with_new_method(
            account_id=acct.id,
            method=CardData("4242424242424242", 12, FUTURE, "123"),
            amount=Decimal(amount),
            channel="voice",
        )
    assert exc.value.code == code
    assert rows(db_engine, Payment) == []
    assert rows(db_engine, SandboxCharge) == []


def test_floats_are_refused(ledger, db_engine):
    with pytest.raises(TypeError):
        pay_james(ledger, amount=10.5)  # type: ignore[arg-type]


def test_audit_log_is_append_only(ledger, db_engine):
    pay_james(ledger)
    from paybot.db.engine import AppendOnlyViolation

    with Session(db_engine) as session:
        event = session.exec(select(AuditEvent)).first()
        event.kind = "tampered"
        session.add(event)
        with pytest.raises(AppendOnlyViolation):
            session.commit()
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError), db_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))


# --- open payments count against the balance, under a lock on the account -------------------
def _other_process_ledger(db_engine, ledger: Ledger) -> Ledger:
    """A ledger on its own engine, as the bridge and the action server each have one."""
    engine = second_engine(db_engine)
    return Ledger(engine, SandboxGateway(engine), rules=ledger.rules, fees=ledger.fees, backoff_s=0)


def _slow_charges(monkeypatch, delay_s: float = 0.3) -> None:
    """Every charge takes a while, so that all the payments of a test are open at once."""
    import time

    for name in ("charge_token", "charge_card"):
        real = getattr(SandboxGateway, name)

        def slow(self, *args, _real=real, **kwargs):
            time.sleep(delay_s)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(SandboxGateway, name, slow)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_payments_never_pay_more_than_owed(ledger, db_engine, monkeypatch, round_):
    """Two full-balance payments under different keys once both succeeded (-321.72)."""
    import random

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    _slow_charges(monkeypatch)
    other = _other_process_ledger(db_engine, ledger)
    james = account(db_engine, "100200300")
    owed = james.balance
    amounts = [owed, owed] + [
        Decimal(rng.randint(100, int(owed * 100))) / 100 for _ in range(rng.randint(0, 4))
    ]
    rng.shuffle(amounts)
    start = threading.Barrier(len(amounts))
    outcomes: list = []
    refused: list[str] = []

    def pay(i: int, amount: Decimal) -> None:
        by = ledger if i % 2 else other
        start.wait(30)
        try:
            if rng.random() < 0.5:
                outcomes.append(pay_james(by, amount))
            else:
                outcomes.append(
                    by.pay_with_new_method(
                        account_id=james.id,
                        method=CardData("4242424242424242", 12, FUTURE, "123"),
                        amount=amount,
                        channel="voice",
                    )
                )
        except PaymentRefused as exc:
            refused.append(exc.code)

    threads = [threading.Thread(target=pay, args=(i, a)) for i, a in enumerate(amounts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.engine.dispose()
    context = f"seed={seed} amounts={amounts}"
    paid = sum((o.amount for o in outcomes if o.succeeded), Decimal("0.00"))
    assert all(o.succeeded for o in outcomes), context
    assert len(outcomes) + len(refused) == len(amounts), context
    assert outcomes and paid <= owed, context
    # A payment opened after the others settled (a slow machine stretches the charges' 0.3 s
    # window) finds nothing owed: refused too, never paid.
    allowed = {"payment_in_progress", "amount_out_of_range", "nothing_owed"}
    assert set(refused) <= allowed, context
    assert account(db_engine, "100200300").balance == owed - paid >= 0, context
    assert len(rows(db_engine, SandboxCharge)) == len(outcomes), context


def test_an_unknown_payment_still_counts_against_the_balance(ledger, db_engine, sandbox):
    sandbox.faults.timeout_next(3, when="before")
    assert pay_james(ledger, "321.72").status == "unknown"
    james = account(db_engine, "100200300")
    with pytest.raises(PaymentRefused) as exc:
        pay_james(ledger, "1.00")
    assert exc.value.code == "payment_in_progress"
    with pytest.raises(PaymentRefused):
        ledger.quote(james.id, Decimal("1.00"))
    ledger.reconcile(older_than_s=0)  # never submitted: failed, the balance is payable again
    assert pay_james(ledger, "321.72").succeeded


# --- amounts are whole cents before the gateway hears of them ----------------------------------
class _Recording(SandboxGateway):
    """The sandbox, noting every call that would reach a gateway."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.calls: list[str] = []

    def charge_token(self, *a, **kw):
        self.calls.append("charge_token")
        return super().charge_token(*a, **kw)

    def charge_card(self, *a, **kw):
        self.calls.append("charge_card")
        return super().charge_card(*a, **kw)

    def tokenize_card(self, *a, **kw):
        self.calls.append("tokenize_card")
        return super().tokenize_card(*a, **kw)


def test_sub_cent_amounts_are_refused_before_the_gateway(ledger, db_engine):
    """``quote(10.005)`` once passed, and the payment sent 12.005 to the gateway."""
    import random

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    gateway = _Recording(db_engine)
    checked = Ledger(db_engine, gateway, rules=ledger.rules, fees=ledger.fees, backoff_s=0)
    james = account(db_engine, "100200300")
    samples = ["10.005", "0.001", "321.719", "1E-7", "NaN", "Infinity", "1" * 40 + ".5"] + [
        f"{rng.randint(1, 320)}.{rng.randint(0, 99):02d}{rng.randint(1, 9)}" for _ in range(20)
    ]
    for text in samples:
        amount = Decimal(text)
        with pytest.raises(PaymentRefused) as exc:
            checked.quote(james.id, amount)
        assert exc.value.code == "amount_not_exact", (seed, text)
        with pytest.raises(PaymentRefused):
            pay_james(checked, amount)
        with pytest.raises(PaymentRefused):
            checked.pay_with_new_method(
                account_id=james.id,
                method=CardData("4242424242424242", 12, FUTURE, "123"),
                amount=amount,
                channel="voice",
                save=True,
            )
    for bad in (10.005, 10.5, 10, "10.00"):
        with pytest.raises(TypeError):
            checked.quote(james.id, bad)  # type: ignore[arg-type]
    assert gateway.calls == [] and rows(db_engine, Payment) == [], seed
    # Whole cents in any spelling are the same amount: 10.5 is 10.50.
    assert checked.quote(james.id, Decimal("10.5")).total == Decimal("12.50")
    assert pay_james(checked, Decimal("10.500")).total == Decimal("12.50")
    assert [c.amount for c in rows(db_engine, SandboxCharge)] == [Decimal("12.50")]


# --- idempotency keys fit their column on every database ---------------------------------------
def test_keys_longer_than_the_column_are_refused_before_any_row(ledger, db_engine):
    """SQLite does not enforce VARCHAR(64): a 72-character voice key passed there and failed
    every voice payment on PostgreSQL. The ledger refuses it on both, before the gateway."""
    with pytest.raises(ValueError, match="64"):
        pay_james(ledger, idempotency_key="call:CA" + "a" * 32 + ":" + "b" * 32)
    assert rows(db_engine, Payment) == [] and rows(db_engine, SandboxCharge) == []
    longest = "k" * 64
    assert pay_james(ledger, idempotency_key=longest).succeeded
    assert pay_james(ledger, idempotency_key=longest).succeeded  # the retry: the same payment
    (payment,) = rows(db_engine, Payment)
    assert payment.idempotency_key == longest


# --- unknown payments are asked about again while running ---------------------------------------
def _unknown(ledger: Ledger, sandbox, monkeypatch, amount: str, *, charged: bool):
    """A payment left ``unknown``: the gateway did (``charged``) or did not take it, and could
    not be asked about it then."""
    from paybot.gateway.base import GatewayError

    def unreachable(*_a, **_kw):
        raise GatewayError("unavailable")

    with monkeypatch.context() as mp:
        mp.setattr(sandbox, "find_charge", unreachable)
        sandbox.faults.timeout_next(3, when="after" if charged else "before")
        outcome = pay_james(ledger, amount)
    assert outcome.status == "unknown"
    return outcome


def test_unknown_payments_are_settled_while_running_by_any_number_of_workers(
    ledger, db_engine, sandbox, monkeypatch
):
    """An ``unknown`` payment was settled only at the next start."""
    import random

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    charged = [rng.random() < 0.6 for _ in range(rng.randint(2, 5))]
    payments = [
        _unknown(ledger, sandbox, monkeypatch, f"{rng.randint(1, 50)}.{rng.randint(0, 99):02d}",
                 charged=was)
        for was in charged
    ]
    others = [_other_process_ledger(db_engine, ledger) for _ in range(2)]
    start = threading.Barrier(3)
    settled: list = []

    def recheck(by: Ledger) -> None:
        start.wait(30)
        settled.extend(by.recheck_unknown(give_up_after_s=3600))

    threads = [threading.Thread(target=recheck, args=(by,)) for by in [ledger, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    context = f"seed={seed} charged={charged}"
    was_charged = list(zip(payments, charged, strict=True))
    by_id = {p.payment_id: p for p in (ledger.outcome(p.payment_id) for p in payments)}
    for payment, was in was_charged:
        # Charged: settled now, by exactly one worker. Not charged: still unknown (a late
        # request could still land) until it is old enough to give up on.
        assert by_id[payment.payment_id].status == ("succeeded" if was else "unknown"), context
    assert sorted(o.payment_id for o in settled if o.succeeded) == sorted(
        p.payment_id for p, was in was_charged if was
    ), context
    principal = [e for e in rows(db_engine, LedgerEntry) if e.kind == "principal"]
    assert len(principal) == sum(charged), context
    paid = sum((p.amount for p, was in was_charged if was), Decimal("0.00"))
    assert account(db_engine, "100200300").balance == Decimal("321.72") - paid, context
    failed = others[0].recheck_unknown(give_up_after_s=0)
    assert {o.status for o in failed} <= {"failed"} and len(failed) == charged.count(False)
    assert ledger.recheck_unknown(give_up_after_s=0) == []
    for other in others:
        other.engine.dispose()


def test_recheck_leaves_pending_payments_to_their_call(ledger, db_engine, monkeypatch):
    """A ``pending`` payment may be a live call's, mid-charge: only the start settles those."""
    monkeypatch.setattr(ledger, "_settle", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        pay_james(ledger)
    monkeypatch.undo()
    assert ledger.recheck_unknown(give_up_after_s=0) == []
    assert [p.status for p in rows(db_engine, Payment)] == ["pending"]


async def test_bridge_job_settles_unknown_payments_while_running(
    ledger, db_engine, sandbox, settings, monkeypatch, caplog
):
    import asyncio
    import logging

    from aiohttp import web

    from voice_bridge.jobs.recheck import recheck_job
    from voice_bridge.keys import DB_ENGINE, SETTINGS

    caplog.set_level(logging.INFO, logger="voice_bridge.jobs.recheck")
    payment = _unknown(ledger, sandbox, monkeypatch, "25.00", charged=True)
    threads = []
    recheck = Ledger.recheck_unknown

    def recorded(self, give_up_after_s=60.0):
        threads.append(threading.current_thread())
        return recheck(self, give_up_after_s)

    monkeypatch.setattr(Ledger, "recheck_unknown", recorded)
    app = web.Application()
    app[SETTINGS] = settings.copy(update={"unknown_recheck_interval_s": 0.05})
    app[DB_ENGINE] = db_engine
    app.cleanup_ctx.append(recheck_job)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        for _ in range(400):  # settled, and the job's run that settled it has reported
            if "unknown payments: 1 settled" in caplog.text and (
                await asyncio.to_thread(ledger.outcome, payment.payment_id)
            ).succeeded:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert ledger.outcome(payment.payment_id).succeeded
    assert threads and threading.main_thread() not in threads  # never on the event loop
    assert "unknown payments: 1 settled (1 succeeded)" in caplog.text
    assert "James" not in caplog.text and "4242" not in caplog.text  # counts only


def test_the_database_never_rounds_money_on_the_way_in(ledger, db_engine):
    """PostgreSQL's NUMERIC(14,2) and the SQLite cents both rounded 10.005 silently."""
    from sqlalchemy.exc import StatementError

    from paybot.db.engine import session_scope
    from paybot.db.models import Account

    for bad, error in ((Decimal("10.005"), ValueError), (10.5, TypeError)):
        with pytest.raises(StatementError) as exc, session_scope(db_engine) as session:
            james = session.exec(select(Account).where(Account.account_number == "100200300")).one()
            james.balance = bad
        assert isinstance(exc.value.orig, error)
    assert account(db_engine, "100200300").balance == Decimal("321.72")
