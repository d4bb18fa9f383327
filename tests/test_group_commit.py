"""Group commit (paybot.db.group_commit) and the ledger over it, on SQLite and PostgreSQL.

A batch commits its jobs together; a job that fails fails alone (its batch is rolled back and
its jobs run again one by one); callers see their result only after the commit. Then the
ledger end to end: many threads of two processes paying one account at once, with retried
keys, declines and refusals, from seeded random schedules; every payment settled exactly
once, its row committed before the gateway heard of it, never more paid than was owed.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from paybot.db.group_commit import GroupCommit, defer_insert
from paybot.db.models import (
    AuditEvent,
    LedgerEntry,
    Payment,
    PaymentMethod,
    SandboxCharge,
    SandboxToken,
)
from paybot.db.types import utcnow
from paybot.gateway.card_data import CardData
from paybot.gateway.sandbox import SandboxGateway
from paybot.payments.ledger import Ledger
from paybot.payments.rules import PaymentRefused
from tests.helpers import account, rows, second_engine, stored_method

FUTURE = date.today().year + 2


class Boom(Exception):
    """A job's own failure."""


def token_job(token_id: str, *, fail: bool = False):
    """A job that stores a sandbox token ``token_id`` (a duplicate id breaks the insert) and
    returns it; with ``fail`` it raises after writing."""

    def job(session: Session) -> str:
        session.add(SandboxToken(id=token_id, kind="card", brand="visa", last4="4242",
                                 outcome="success"))
        session.flush()
        if fail:
            raise Boom(token_id)
        return token_id

    return job


def stored_ids(engine) -> Counter:
    return Counter(t.id for t in rows(engine, SandboxToken))


def run_batch_behind(writes: GroupCommit, jobs: list) -> list:
    """Run ``jobs`` from one thread each, all queued behind a job that holds the batcher, so
    they share one batch; each thread's result or exception, in order."""
    started, release = threading.Event(), threading.Event()

    def hold(session: Session) -> str:
        started.set()
        release.wait(10)
        return "held"

    results: list = [None] * len(jobs)

    def call(i: int, job) -> None:
        try:
            results[i] = writes.run(job)
        except Exception as exc:  # handed back by the batcher
            results[i] = exc

    holder = threading.Thread(target=writes.run, args=(hold,))
    holder.start()
    assert started.wait(10)
    threads = [threading.Thread(target=call, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    while writes.pending < len(jobs):
        threading.Event().wait(0.005)
    release.set()
    for t in [holder, *threads]:
        t.join(20)
    return results


def test_queued_jobs_share_one_commit(db_engine):
    writes = GroupCommit(db_engine, max_batch=16)
    results = run_batch_behind(writes, [token_job(f"tok_a{i}") for i in range(6)])
    assert sorted(results) == sorted(f"tok_a{i}" for i in range(6))
    assert (writes.batches, writes.replays) == (1, 0)
    assert stored_ids(db_engine) == Counter({f"tok_a{i}": 1 for i in range(6)})


def test_a_failing_job_fails_alone_and_the_rest_commit_once(db_engine):
    writes = GroupCommit(db_engine)
    jobs = [token_job("tok_b0"), token_job("tok_b1", fail=True), token_job("tok_b2"),
            token_job("tok_b0"), token_job("tok_b3")]  # the second tok_b0 breaks its insert
    results = run_batch_behind(writes, jobs)
    assert results[0] == "tok_b0" and results[2] == "tok_b2" and results[4] == "tok_b3"
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], IntegrityError)
    assert writes.replays == 1
    assert stored_ids(db_engine) == Counter({"tok_b0": 1, "tok_b2": 1, "tok_b3": 1})


def test_a_job_that_groups_its_own_writes_does_not_wait_for_itself(db_engine):
    writes = GroupCommit(db_engine)

    def outer(session: Session) -> str:
        return writes.run(token_job("tok_inner"))

    assert writes.run(outer) == "tok_inner"
    assert stored_ids(db_engine) == Counter({"tok_inner": 1})


def test_deferred_rows_are_inserted_with_the_batch_and_only_inside_one(db_engine):
    writes = GroupCommit(db_engine)
    table = SandboxToken.__table__

    def job(token_id: str):
        def deferring(session: Session) -> str:
            row = {"id": token_id, "kind": "card", "brand": "visa", "last4": "4242",
                   "outcome": "success", "reusable": True, "created_at": utcnow()}
            defer_insert(session, table, row)
            return token_id

        return deferring

    results = run_batch_behind(writes, [job(f"tok_d{i}") for i in range(4)])
    assert sorted(results) == [f"tok_d{i}" for i in range(4)]
    assert stored_ids(db_engine) == Counter({f"tok_d{i}": 1 for i in range(4)})
    with Session(db_engine) as session, pytest.raises(RuntimeError):
        defer_insert(session, table, {"id": "tok_never"})


def test_a_job_chosen_as_deadlock_victim_runs_again(db_engine):
    """The job locks token A then B while another transaction locks B then A: PostgreSQL
    aborts one of the two. Whichever it is, the job's caller gets its result, written once."""
    if db_engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: no deadlock between two transactions")
    from sqlalchemy import text

    writes = GroupCommit(db_engine)
    with Session(db_engine) as session:
        for token_id in ("tok_lock_a", "tok_lock_b"):
            session.add(SandboxToken(id=token_id, kind="card", brand="visa", last4="4242",
                                     outcome="success"))
        session.commit()
    lock = "SELECT id FROM sandbox_tokens WHERE id = :id FOR UPDATE"
    job_has_a, other_has_b = threading.Event(), threading.Event()
    runs: list[int] = []

    def job(session: Session) -> str:
        runs.append(1)
        session.execute(text(lock), {"id": "tok_lock_a"})
        job_has_a.set()
        other_has_b.wait(10)
        session.execute(text(lock), {"id": "tok_lock_b"})
        return token_job("tok_after_deadlock")(session)

    rival_aborted: list[bool] = []

    def other() -> None:
        try:
            with db_engine.begin() as conn:
                conn.execute(text(lock), {"id": "tok_lock_b"})
                other_has_b.set()
                job_has_a.wait(10)
                conn.execute(text(lock), {"id": "tok_lock_a"})
        except DBAPIError as exc:  # this one may be the victim instead
            rival_aborted.append(exc.orig.pgcode == "40P01")

    rival = threading.Thread(target=other)
    rival.start()
    assert writes.run(job) == "tok_after_deadlock"
    rival.join(20)
    assert stored_ids(db_engine)["tok_after_deadlock"] == 1
    assert (len(runs), rival_aborted) in ((2, []), (1, [True]))  # exactly one victim


@pytest.mark.parametrize("seed", range(4))
def test_random_batches_commit_exactly_the_jobs_that_succeed(db_engine, seed):
    rng = random.Random(seed)
    writes = GroupCommit(db_engine, max_batch=rng.randint(1, 8))
    plan = []
    for i in range(40):
        roll = rng.random()
        if roll < 0.15:
            plan.append(("fail", f"tok_r{i}"))
        elif roll < 0.3 and any(what == "ok" for what, _ in plan):
            # the id of another job: whichever of the two runs first stores it
            plan.append(("dup", rng.choice([t for what, t in plan if what == "ok"])))
        else:
            plan.append(("ok", f"tok_r{i}"))
    results: dict[int, object] = {}
    order = list(enumerate(plan))
    rng.shuffle(order)
    lock = threading.Lock()

    def worker(chunk) -> None:
        for i, (what, token_id) in chunk:
            try:
                value = writes.run(token_job(token_id, fail=what == "fail"))
            except Exception as exc:  # handed back by the batcher
                value = exc
            with lock:
                results[i] = value

    threads = [threading.Thread(target=worker, args=(order[k::6],)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = stored_ids(db_engine)
    assert set(stored.values()) == {1}  # nothing twice, whatever batch it was in
    for i, (what, token_id) in enumerate(plan):
        if what == "fail":
            assert isinstance(results[i], Boom) and token_id not in stored
        elif results[i] == token_id:
            assert token_id in stored  # a success the caller saw is committed
        else:  # a duplicate id that lost the race to the job that stored it
            assert isinstance(results[i], IntegrityError) and token_id in stored
    assert sum(1 for v in results.values() if isinstance(v, str)) == len(stored)


# The ledger over group commit ------------------------------------------------------------


class WatchingGateway(SandboxGateway):
    """The sandbox, checking at every charge (on a connection of its own) that the payment
    with that key is committed and the attempt counted: the row comes before the call."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.engine_for_checks = engine
        self.violations: list[str] = []

    def charge_token(self, token, amount, currency, *, idempotency_key, description=None):
        with Session(self.engine_for_checks) as session:
            payment = session.exec(
                select(Payment).where(Payment.idempotency_key == idempotency_key)
            ).first()
        # (It may be settled already: a twin request with the same key got there first.)
        if payment is None or payment.attempts < 1:
            self.violations.append(idempotency_key)
        return super().charge_token(
            token, amount, currency, idempotency_key=idempotency_key, description=description
        )


@pytest.mark.parametrize("seed", range(3))
def test_concurrent_payments_of_one_account_settle_exactly_once(ledger, db_engine, seed):
    rng = random.Random(seed)
    gateway = WatchingGateway(db_engine)
    paying = Ledger(db_engine, gateway, rules=ledger.rules, fees=ledger.fees, backoff_s=0)
    # A second process (its own engine, its own batcher) pays the same account at once.
    engine2 = second_engine(db_engine)
    gateway2 = WatchingGateway(engine2)
    other = Ledger(engine2, gateway2, rules=ledger.rules, fees=ledger.fees, backoff_s=0)
    james = account(db_engine, "100200300")
    good = stored_method(db_engine, james.id)
    declining = _stored_card(db_engine, gateway, james.id, "4000000000000002")
    keys = [uuid.uuid4().hex for _ in range(30)]
    plan = []  # (key, amount, method): a key may come back (a retry, the same request)
    for key in keys:
        request = (key, Decimal(rng.randint(100, 2500)) / 100,
                   declining if rng.random() < 0.2 else good.id)
        plan.extend([request] * rng.choice([1, 1, 1, 2, 3]))
    rng.shuffle(plan)
    seen: dict[str, list] = {}
    refused: set[str] = set()
    lock = threading.Lock()

    def worker(by: Ledger, chunk) -> None:
        for key, amount, method_id in chunk:
            try:
                outcome = by.pay_with_stored_method(
                    account_id=james.id, payment_method_id=method_id, amount=amount,
                    channel="api", idempotency_key=key,
                )
            except PaymentRefused as exc:
                assert exc.code == "amount_out_of_range"
                with lock:
                    refused.add(key)
                continue
            with lock:
                seen.setdefault(key, []).append(outcome)

    threads = [
        threading.Thread(target=worker, args=((paying, other)[k % 2], plan[k::8]))
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    engine2.dispose()

    assert gateway.violations == gateway2.violations == []
    payments = {p.idempotency_key: p for p in rows(db_engine, Payment)}
    assert set(payments) == set(seen)  # a refused request left no row (unless a retry won)
    charges = Counter(c.idempotency_key for c in rows(db_engine, SandboxCharge))
    assert charges == Counter(set(payments))  # one charge per payment, never two
    lines = Counter(e.payment_id for e in rows(db_engine, LedgerEntry))
    events = Counter((e.payment_id, e.kind) for e in rows(db_engine, AuditEvent) if e.payment_id)
    for key, outcomes in seen.items():
        payment = payments[key]
        assert {(o.payment_id, o.status, o.confirmation_number) for o in outcomes} == {
            (payment.id, payment.status, payment.confirmation_number)
        }
        assert payment.status == ("declined" if payment.payment_method_id == declining
                                  else "succeeded")
        assert lines[payment.id] == (2 if payment.status == "succeeded" else 0)
        assert events[(payment.id, "payment.created")] == 1
        assert events[(payment.id, f"payment.{payment.status}")] == 1
    paid = sum((p.amount for p in payments.values() if p.status == "succeeded"), Decimal(0))
    assert account(db_engine, "100200300").balance == Decimal("321.72") - paid >= 0


def _stored_card(engine, gateway, account_id: int, number: str) -> int:
    token = gateway.tokenize_card(CardData(number, 12, FUTURE, "123"))
    with Session(engine) as session:
        method = PaymentMethod(account_id=account_id, gateway="sandbox", token=token.token,
                               kind="card", brand=token.brand, last4=token.last4,
                               exp_month=token.exp_month, exp_year=token.exp_year)
        session.add(method)
        session.commit()
        return method.id
