"""The query layer (paybot.db.queries) on SQLite and PostgreSQL: each query against the same
question answered in Python over seeded random rows."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlmodel import Session

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import (
    Account,
    Call,
    OutboundMessage,
    Payment,
    PaymentMethod,
    PaymentStatus,
    VerificationFailure,
)

SEEDS = (1, 2, 3)
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
TODAY = date(2026, 12, 5)
PHONES = ("+15555550100", "+15555550111", "+15555550122")


def make_accounts(session: Session, rng: random.Random, n: int = 12) -> list[Account]:
    """``n`` accounts on a few phone numbers; some numbers upper-case, some lower, and one
    number stored in both cases (as different writers may have left it)."""
    numbers = {f"ac-{rng.randrange(10**6):06d}" for _ in range(n)}
    numbers = [x.upper() if rng.random() < 0.5 else x for x in sorted(numbers)]
    numbers.append(numbers[0].swapcase())
    rows = [
        Account(account_number=number, name="Test Person", phone=rng.choice(PHONES + (None,)),
                billing_zip="94107", balance=Decimal(rng.randrange(0, 50000)) / 100,
                minimum_payment=Decimal("0.00"), status=rng.choice(["active", "closed"]))
        for number in numbers
    ]  # fmt: skip
    session.add_all(rows)
    session.flush()
    return rows


@pytest.mark.parametrize("seed", SEEDS)
def test_account_queries(db_engine, seed):
    rng = random.Random(seed)
    with session_scope(db_engine) as session:
        made = make_accounts(session, rng)
    with Session(db_engine) as session:
        assert queries.count_accounts(session=session) == len(made)
        for phone in PHONES:
            found = queries.accounts_by_phone(session=session, phone=phone)
            expected = sorted(a.account_number for a in made if a.phone == phone)
            assert [a.account_number for a in found] == expected
        for account in made:
            number = account.account_number
            exact = queries.account_by_number(session=session, account_number=number)
            assert exact is not None and exact.id == account.id
            typed = queries.account_by_typed_number(session=session, account_number=number.lower())
            stored = {a.account_number: a.id for a in made}
            want = stored.get(number.upper(), stored.get(number.lower()))
            assert typed is not None and typed.id == want
        assert queries.account_by_number(session=session, account_number="NOPE-1") is None
        assert queries.account_by_typed_number(session=session, account_number="nope-1") is None


@pytest.mark.parametrize("seed", SEEDS)
def test_default_payment_method(db_engine, seed):
    rng = random.Random(seed)
    with session_scope(db_engine) as session:
        accounts = make_accounts(session, rng, n=5)
        methods = [
            PaymentMethod(account_id=rng.choice(accounts).id, gateway="sandbox", token=f"t{i}",
                          kind="card", brand="visa", last4=f"{i:04d}",
                          reusable=rng.random() < 0.7, is_default=rng.random() < 0.4,
                          deleted_at=NOW if rng.random() < 0.2 else None)
            for i in range(15)
        ]  # fmt: skip
        session.add_all(methods)
    with Session(db_engine) as session:
        for account in accounts:
            usable = [
                m for m in methods
                if m.account_id == account.id and m.reusable and m.deleted_at is None
            ]  # fmt: skip
            usable.sort(key=lambda m: (m.is_default, m.id), reverse=True)
            found = queries.default_payment_method(session=session, account_id=account.id)
            assert (found.id if found else None) == (usable[0].id if usable else None)


def payment(account: Account, i: int, status: str, **values) -> Payment:
    values.setdefault("gateway", "sandbox")
    return Payment(account_id=account.id, amount=Decimal("10.00"), fee=Decimal("0.00"),
                   total=Decimal("10.00"), status=status, channel="chat",
                   idempotency_key=f"key-{i:03d}", **values)  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_payment_queries(db_engine, seed):
    rng = random.Random(seed)
    statuses = [s.value for s in PaymentStatus]
    with session_scope(db_engine) as session:
        accounts = make_accounts(session, rng, n=3)
        rows = [
            payment(rng.choice(accounts), i, rng.choice(statuses),
                    scheduled_for=TODAY + timedelta(days=rng.randint(-3, 3)),
                    updated_at=NOW - timedelta(seconds=rng.randint(0, 600)),
                    gateway=rng.choice(["sandbox", "sandbox", "twilio_pay"]))
            for i in range(30)
        ]  # fmt: skip
        session.add_all(rows)
    with Session(db_engine) as session:
        for row in rows:
            found = queries.payment_by_key(session=session, idempotency_key=row.idempotency_key)
            assert found is not None and found.id == row.id
        assert queries.payment_by_key(session=session, idempotency_key="key-none") is None
        for account in accounts:
            scheduled = [r for r in rows if r.account_id == account.id and r.status == "scheduled"]
            scheduled.sort(key=lambda r: (r.scheduled_for, r.id))
            found = queries.scheduled_payments(session=session, account_id=account.id)
            assert [p.id for p in found] == [r.id for r in scheduled]
        due = queries.due_scheduled_payment_ids(session=session, today=TODAY)
        assert due == [r.id for r in rows if r.status == "scheduled" and r.scheduled_for <= TODAY]
        before = NOW - timedelta(seconds=300)
        open_ = ("pending", "unknown")
        awaiting = queries.payments_awaiting_gateway(
            session=session, statuses=open_, gateway="sandbox", updated_before=before
        )
        expected = [
            r
            for r in rows
            if r.status in open_ and r.updated_at <= before and r.gateway == "sandbox"
        ]
        assert awaiting == [(r.id, r.idempotency_key, r.updated_at) for r in expected]


@pytest.mark.parametrize("seed", SEEDS)
def test_outbox_queries(db_engine, seed):
    rng = random.Random(seed)
    with session_scope(db_engine) as session:
        account = make_accounts(session, rng, n=1)[0]
        paid = payment(account, 0, "succeeded")
        session.add(paid)
        session.flush()
        messages = [
            OutboundMessage(to="+15555550100", kind=rng.choice(["receipt", "notice"]), body="hi",
                            status=rng.choice(["queued", "queued", "sent", "failed"]),
                            next_attempt_at=rng.choice([None, NOW - timedelta(minutes=1),
                                                        NOW + timedelta(minutes=1)]))
            for _ in range(20)
        ]  # fmt: skip
        messages.append(OutboundMessage(to="+15555550100", kind="receipt", body="paid",
                                        status="sent", payment_id=paid.id))  # fmt: skip
        session.add_all(messages)
    due = [
        m.id
        for m in messages
        if m.status == "queued" and (m.next_attempt_at is None or m.next_attempt_at <= NOW)
    ]
    with Session(db_engine) as session:
        receipt = queries.receipt_message(session=session, payment_id=paid.id)
        assert receipt is not None and receipt.body == "paid"
        assert queries.receipt_message(session=session, payment_id=paid.id + 1) is None
        assert queries.due_message_ids(session=session, now=NOW, limit=100) == due
        assert queries.due_message_ids(session=session, now=NOW, limit=2) == due[:2]
    for message in messages:
        with session_scope(db_engine) as session:
            won = queries.claim_message(session=session, message_id=message.id, now=NOW)
        assert (won is not None) == (message.id in due)
        if won is not None:
            assert (won.status, won.attempts) == ("sending", message.attempts + 1)
        with session_scope(db_engine) as session:  # a second claim never wins
            assert queries.claim_message(session=session, message_id=message.id, now=NOW) is None


def test_call_by_sid(db_engine):
    sids = [f"CA{i:032x}" for i in range(3)]
    with session_scope(db_engine) as session:
        session.add_all(Call(call_sid=sid, caller="+15555550100") for sid in sids[:2])
    with Session(db_engine) as session:
        assert [queries.call_by_sid(session=session, call_sid=s) is not None for s in sids] == [
            True, True, False,
        ]  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_count_verification_failures(db_engine, seed):
    rng = random.Random(seed)
    numbers, phones = ["100", "200", None], ["+15555550100", "withheld"]
    rows = [
        VerificationFailure(at=NOW - timedelta(minutes=rng.randint(0, 60)),
                            account_number=rng.choice(numbers), caller_phone=rng.choice(phones))
        for _ in range(40)
    ]  # fmt: skip
    with session_scope(db_engine) as session:
        session.add_all(rows)
    since = NOW - timedelta(minutes=30)
    recent = [r for r in rows if r.at >= since]
    with Session(db_engine) as session:

        def count(**key) -> int:
            return queries.count_verification_failures(session=session, since=since, **key)

        assert count() == len(recent)
        for number in numbers[:2]:
            assert count(account_number=number) == sum(r.account_number == number for r in recent)
            for phone in phones:
                either = sum(r.account_number == number or r.caller_phone == phone for r in recent)
                assert count(account_number=number, caller_phone=phone) == either
        for phone in phones:
            assert count(caller_phone=phone) == sum(r.caller_phone == phone for r in recent)
