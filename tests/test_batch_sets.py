"""Set jobs of group commit (paybot.db.group_commit.GroupCommit.run_set) and the ledger's two
set functions over them, on SQLite and PostgreSQL: the opens of a batch (one lock, one read,
one multi-row insert: paybot.payments.opening) and its settlements (one statement on
PostgreSQL: paybot.payments.batch_settlement).

Every batch here is forced: a job holds the batcher while the requests queue behind it, so
they all share the next batch. Plans come from seeded generators; what must hold whatever the
order the requests queued in is checked, not one order's outcome.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from sqlmodel import Session

from paybot.db.group_commit import GroupCommit
from paybot.db.models import AuditEvent, LedgerEntry, Payment, PaymentMethod, SandboxToken
from paybot.gateway.base import ChargeResult
from paybot.payments.ledger import Ledger
from paybot.payments.new_payment import PaymentRequest
from paybot.payments.rules import PaymentRefused
from tests.helpers import account, rows, stored_method


class Boom(Exception):
    """The set function's own failure (fails its batch)."""


def behind_a_held_batch(writes: GroupCommit, calls: list) -> list:
    """Run each of ``calls`` (functions of no argument that queue one job) from a thread of
    its own, all queued behind a job holding the batcher so that they share one batch; each
    call's result or exception, in order."""
    started, release = threading.Event(), threading.Event()

    def hold(_session: Session) -> None:
        started.set()
        release.wait(20)

    results: list = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # handed back by the batcher
            results[i] = exc

    holder = threading.Thread(target=writes.run, args=(hold,))
    holder.start()
    assert started.wait(20)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    while writes.pending < len(calls):
        threading.Event().wait(0.005)
    release.set()
    for t in [holder, *threads]:
        t.join(60)
    return results


def _store_token(session: Session, token_id: str) -> None:
    session.add(
        SandboxToken(id=token_id, kind="card", brand="visa", last4="4242", outcome="success")
    )
    session.flush()


@pytest.mark.parametrize("seed", range(4))
def test_set_items_run_in_one_call_and_fail_alone(db_engine, seed):
    rng = random.Random(seed)
    writes = GroupCommit(db_engine)
    calls_made: list[list[str]] = []

    def work(session: Session, items: list[str]) -> list:
        calls_made.append(list(items))
        if any(item.startswith("boom") for item in items):
            _store_token(session, f"tok_{items[0]}_x")  # rolled back with the batch
            raise Boom(items)
        out = []
        for item in items:
            if item.startswith("refuse"):
                out.append(PaymentRefused("nothing_owed", item))  # nothing written for it
            else:
                _store_token(session, f"tok_{item}")
                out.append(item.upper())
        return out

    plan = []
    for i in range(rng.randint(3, 10)):
        roll = rng.random()
        what = "refuse" if roll < 0.2 else "plain" if roll < 0.4 else "item"
        plan.append(f"{what}{i}")
    boom = rng.random() < 0.5
    if boom:
        plan.insert(rng.randrange(len(plan) + 1), "boom")

    def queue(name: str):
        if name.startswith("plain"):
            return lambda: writes.run(lambda s: (_store_token(s, f"tok_{name}"), name)[1])
        return lambda: writes.run_set(work, name)

    results = behind_a_held_batch(writes, [queue(name) for name in plan])
    stored = Counter(t.id for t in rows(db_engine, SandboxToken))
    set_items = [name for name in plan if not name.startswith("plain")]
    for name, result in zip(plan, results, strict=True):
        if name.startswith("plain"):
            assert result == name and stored[f"tok_{name}"] == 1
        elif name.startswith("refuse"):
            assert isinstance(result, PaymentRefused) and f"tok_{name}" not in stored
        elif name == "boom":
            assert isinstance(result, Boom)
        else:
            assert result == name.upper() and stored[f"tok_{name}"] == 1
    assert not any(token.endswith("_x") for token in stored)  # a failed batch left nothing
    if boom:  # the batch, then every item alone (the boom one failing again)
        assert sorted(calls_made[0]) == sorted(set_items) and writes.replays == 1
        assert sorted(c[0] for c in calls_made[1:]) == sorted(set_items)
        assert all(len(c) == 1 for c in calls_made[1:])
    elif set_items:  # one call for all the batch's items, a refusal failing only itself
        assert len(calls_made) == 1 and sorted(calls_made[0]) == sorted(set_items)
        assert writes.replays == 0


def _recording(ledger: Ledger) -> list[int]:
    """Note the size of every set of opens (the function stays the ledger's own)."""
    sizes: list[int] = []
    real = ledger.opening.open_all

    def open_all(session, items):
        sizes.append(len(items))
        return real(session, items)

    ledger.opening.open_all = open_all  # type: ignore[method-assign]
    return sizes


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_of_opens_keeps_the_rules_of_opening_one_by_one(ledger, db_engine, seed):
    rng = random.Random(seed)
    james = account(db_engine, "100200300")
    good = stored_method(db_engine, james.id).id
    # not James's to use: another account's method, and no method at all
    others = [m.id for m in rows(db_engine, PaymentMethod) if m.account_id != james.id]
    sizes = _recording(ledger)
    amounts = [Decimal(n) for n in ("50.00", "90.00", "150.00", "200.00")]
    plan = []  # (key, amount, method): more than is owed; a key may come back, as a twin
    for _ in range(rng.randint(6, 12)):  # (the same request) or with another amount
        method = rng.choice([good] * 6 + others[:1] + [999_999])
        if plan and rng.random() < 0.3:
            key, amount, _ = rng.choice(plan)
            amount = rng.choice([amount, *amounts])
        else:
            key, amount = uuid.uuid4().hex, rng.choice(amounts)
        plan.append((key, amount, method))

    def pay(key, amount, method):
        return lambda: ledger.pay_with_stored_method(
            account_id=james.id,
            payment_method_id=method,
            amount=amount,
            channel="api",
            idempotency_key=key,
        )

    results = behind_a_held_batch(ledger.writes, [pay(*request) for request in plan])
    assert sizes[0] == len(plan)  # all the opens in one set
    payments = {p.idempotency_key: p for p in rows(db_engine, Payment)}
    for (key, amount, method), result in zip(plan, results, strict=True):
        if method != good:
            assert isinstance(result, PaymentRefused) and result.code == "unknown_method"
        elif isinstance(result, PaymentRefused):
            assert result.code in ("amount_out_of_range", "idempotency_conflict"), result
            if result.code == "idempotency_conflict":
                assert payments[key].amount != amount
        else:
            payment = payments[key]  # one row per key, however many asked
            assert result.succeeded and result.payment_id == payment.id
            assert amount == payment.amount
    paid = sum((p.amount for p in payments.values()), Decimal(0))
    assert all(p.status == "succeeded" for p in payments.values())
    assert account(db_engine, "100200300").balance == Decimal("321.72") - paid >= 0
    created = Counter(
        e.payment_id for e in rows(db_engine, AuditEvent) if e.kind == "payment.created"
    )
    assert created == Counter({p.id: 1 for p in payments.values()})


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_of_settlements_settles_each_payment_once(ledger, db_engine, seed):
    rng = random.Random(seed)
    owners = {n: account(db_engine, n) for n in ("100200300", "200300400")}
    opened = []
    for number, owner in owners.items():
        for _ in range(rng.randint(1, 3)):
            request = PaymentRequest(
                owner.id, Decimal(rng.randint(100, 2000)) / 100, "api", None, uuid.uuid4().hex
            )
            payment, _ = ledger.open_payment(request, "card", "one-step", None)
            opened.append((number, payment))
    plan = []  # (payment, approved): a payment may be settled twice at once
    for number, payment in opened:
        approved = rng.random() < 0.7
        plan.extend([(number, payment, approved)] * rng.choice([1, 1, 2, 3]))
    rng.shuffle(plan)

    def settle(payment, approved):
        result = ChargeResult(
            approved,
            f"ch_{uuid.uuid4().hex[:12]}",
            payment.total,
            "USD",
            "visa",
            "4242",
            None if approved else "card_declined",
        )
        return lambda: ledger.settlement.settle_open(payment.payment_id, result)

    results = behind_a_held_batch(ledger.writes, [settle(p, a) for _, p, a in plan])
    changed = Counter(
        p.payment_id for (_, p, _), (_, did) in zip(plan, results, strict=True) if did
    )
    assert changed == Counter({p.payment_id: 1 for _, p in opened})  # each once, by one
    stored = {p.id: p for p in rows(db_engine, Payment)}
    for (_, payment, _), (outcome, _) in zip(plan, results, strict=True):
        row = stored[payment.payment_id]  # every caller is told what the database holds
        assert (outcome.status, outcome.confirmation_number) == (
            row.status,
            row.confirmation_number,
        )
        assert (row.confirmation_number is not None) == (row.status == "succeeded")
    lines = Counter((e.payment_id, e.kind) for e in rows(db_engine, LedgerEntry))
    for number, owner in owners.items():
        paid = [
            stored[p.payment_id]
            for n, p in opened
            if n == number and stored[p.payment_id].status == "succeeded"
        ]
        assert account(db_engine, number).balance == owner.balance - sum(
            (p.amount for p in paid), Decimal(0)
        )
        for p in paid:
            assert lines[(p.id, "principal")] == lines[(p.id, "fee")] == 1
    events = Counter((e.payment_id, e.kind) for e in rows(db_engine, AuditEvent))
    for payment in stored.values():
        assert events[(payment.id, f"payment.{payment.status}")] == 1
