"""The CRM webhook: every succeeded payment reaches the biller's receiver once, signed, through
500s and answers lost to timeouts, with the same idempotency key on every attempt; two posters
racing on PostgreSQL post each payment once; a refusal or too many failures stop the retries."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import date, timedelta

import aiohttp
import pytest
from sqlmodel import Session, select

from paybot.db.models import CrmDelivery
from paybot.db.types import utcnow
from paybot.reconciliation import deliveries
from paybot.reconciliation.poster import CrmPoster, WebhookConfig
from paybot.reconciliation.signing import PaymentCompleted, signature, signed_headers, verify
from tests.conftest import require_pg
from tests.crm_receiver import Receiver
from tests.paid_payments import seed_payments

SECRET = "whsec-test-0123456789"  # noqa: S105 - the tests' webhook secret
TODAY = utcnow().date()


def config(url: str, **overrides) -> WebhookConfig:
    values = {"url": url, "secret": SECRET, "timeout_s": 0.5, "max_attempts": 6,
              "backoff_s": 0.0, "lookback": timedelta(days=3)} | overrides
    return WebhookConfig(**values)


def succeeded(seeded, since: date) -> dict[str, object]:
    """Confirmation number -> seed, for the succeeded payments the poster should send."""
    return {s.confirmation: s for s in seeded
            if s.status == "succeeded" and s.completed_at and s.completed_at.date() >= since}


async def drain(poster: CrmPoster, rounds: int = 12) -> Counter[str]:
    total: Counter[str] = Counter()
    for _ in range(rounds):
        total.update(await poster.run_once())
        states = await asyncio.to_thread(deliveries.delivery_states, poster.engine)
        if states and all(status in ("delivered", "failed") for status, _ in states.values()):
            break
    return total


def states(engine) -> Counter[str]:
    return Counter(status for status, _ in deliveries.delivery_states(engine).values())


@pytest.mark.parametrize("fail_first,stall_first", [(0, 0), (2, 0), (0, 1), (1, 1)])
async def test_each_payment_is_received_once_through_failures(db_engine, fail_first, stall_first):
    seeded = seed_payments(db_engine, random.Random(fail_first * 10 + stall_first), TODAY, 30)
    receiver = await Receiver(SECRET, fail_first=fail_first, stall_first=stall_first,
                              stall_s=1.0).start()
    try:
        async with aiohttp.ClientSession() as http:
            await drain(CrmPoster(db_engine, http, config(receiver.url)))
    finally:
        await receiver.stop()
    wanted = succeeded(seeded, TODAY - timedelta(days=3))
    assert wanted and receiver.bad_signatures == 0
    got = {body["confirmation_number"]: body for body in receiver.accepted.values()}
    assert set(got) == set(wanted)  # each succeeded payment, no other
    for number, body in got.items():
        seed = wanted[number]
        assert body["amount"] == f"{seed.amount:.2f}" and body["status"] == "succeeded"
        assert body["account_number"] == seed.account_number
        assert body["method_last4"] == seed.last4 and body["event"] == "payment.completed"
    tries = 1 + fail_first + stall_first
    assert set(receiver.attempts.values()) == {tries}  # one key per payment, on every attempt
    assert sum(receiver.duplicates.values()) == stall_first * len(wanted)  # lost answers only
    assert states(db_engine) == Counter({"delivered": len(wanted)})
    assert {a for _, a in deliveries.delivery_states(db_engine).values()} == {tries}


async def test_a_refusal_fails_at_once_and_failures_stop_after_the_attempts(db_engine):
    seed_payments(db_engine, random.Random(3), TODAY, 10)
    refusing = await Receiver("another-secret").start()  # every signature looks bad: 401
    failing = await Receiver(SECRET, fail_first=100).start()
    try:
        async with aiohttp.ClientSession() as http:
            await drain(CrmPoster(db_engine, http, config(refusing.url)))
            refused = states(db_engine)
            assert set(refused) == {"failed"}
            assert {a for _, a in deliveries.delivery_states(db_engine).values()} == {1}
            with Session(db_engine) as session:
                assert {d.last_error for d in session.exec(select(CrmDelivery))} == {
                    "refused http 401"}
    finally:
        await refusing.stop()
    # Fresh payments against a receiver that always answers 500: retried up to the limit.
    seeded = seed_payments(db_engine, random.Random(4), TODAY, 10)
    try:
        async with aiohttp.ClientSession() as http:
            await drain(CrmPoster(db_engine, http, config(failing.url, max_attempts=3)))
    finally:
        await failing.stop()
    assert set(failing.attempts.values()) == {3}
    assert len(failing.attempts) == len(succeeded(seeded, TODAY - timedelta(days=3)))
    assert not failing.accepted


async def test_an_unreachable_receiver_is_retried_later(db_engine):
    seed_payments(db_engine, random.Random(8), TODAY, 12)
    async with aiohttp.ClientSession() as http:
        poster = CrmPoster(db_engine, http, config("http://127.0.0.1:9/payments",
                                                   backoff_s=3600.0))
        first = await poster.run_once()
        assert set(first) == {"queued"}
        assert await poster.run_once() == Counter()  # not due again before the back-off
    with Session(db_engine) as session:
        assert {d.last_error.split()[0] for d in session.exec(select(CrmDelivery))} == {
            "connection"}


async def test_two_posters_on_postgresql_post_each_payment_once(request, pg_engine):
    require_pg(request.node.nodeid)
    from tests.conftest import _truncate_all

    _truncate_all(pg_engine)
    try:
        seeded = seed_payments(pg_engine, random.Random(21), TODAY, 120)
        receiver = await Receiver(SECRET).start()
        try:
            async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
                posters = [CrmPoster(pg_engine, one, config(receiver.url)),
                           CrmPoster(pg_engine, two, config(receiver.url))]
                for _ in range(3):
                    await asyncio.gather(*(p.run_once() for p in posters for _ in range(2)))
        finally:
            await receiver.stop()
        wanted = succeeded(seeded, TODAY - timedelta(days=3))
        assert len(wanted) > 20
        assert sum(receiver.attempts.values()) == len(wanted)  # one POST per payment in all
        assert not receiver.duplicates and len(receiver.accepted) == len(wanted)
        assert states(pg_engine) == Counter({"delivered": len(wanted)})
    finally:
        _truncate_all(pg_engine)


def test_a_lapsed_claim_is_taken_over_with_the_same_key(db_engine):
    seed_payments(db_engine, random.Random(9), TODAY, 6)
    deliveries.enqueue(db_engine, utcnow() - timedelta(days=3))
    delivery_id = deliveries.due_ids(db_engine, lease_s=60)[0]
    first = deliveries.claim(db_engine, delivery_id, lease_s=60)
    assert first is not None
    assert deliveries.claim(db_engine, delivery_id, lease_s=60) is None  # held
    second = deliveries.claim(db_engine, delivery_id, lease_s=0)  # the first worker went quiet
    assert second is not None and second.idempotency_key == first.idempotency_key
    assert second.attempts == 2
    assert not deliveries.finish(db_engine, first, deliveries.DELIVERED)  # its claim is gone
    assert deliveries.finish(db_engine, second, deliveries.DELIVERED)
    assert deliveries.claim(db_engine, delivery_id, lease_s=0) is None  # delivered: done


def test_the_signature_scheme():
    rng = random.Random(5)
    for _ in range(50):
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        headers = signed_headers(SECRET, body, "k" * 32, now=1_800_000_000)
        assert verify(SECRET, headers, body, now=1_800_000_100)
        assert not verify(SECRET, headers, body + b" ", now=1_800_000_100)
        assert not verify("wrong", headers, body, now=1_800_000_100)
        assert not verify(SECRET, headers, body, now=1_800_000_000 + 301)  # stale: a replay
    # The documented example: HMAC-SHA256 over "timestamp.body", hex, prefixed v1=.
    assert signature("secret", "1700000000", b'{"a":1}') == (
        "v1=" + __import__("hmac").new(b"secret", b'1700000000.{"a":1}', "sha256").hexdigest())
    assert PaymentCompleted.__dataclass_fields__.keys() >= {"idempotency_key", "amount"}
