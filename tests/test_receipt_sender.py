"""The outbox sender: each queued text goes out exactly once through (fake) Twilio, failures
are retried with backoff, and two bridges racing over one table never double-send."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from sqlmodel import Session

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage
from paybot.db.queries.outbox import SENDING_LEASE, STOPPED_MID_SEND
from paybot.db.types import utcnow
from paybot.settings import load_settings
from tests.helpers import rows
from voice_bridge.jobs.receipt_sender import (
    Claimed,
    PassResult,
    _after_failure,
    claim_due,
    receipt_sender,
    send_due,
)
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.rest import TwilioRest, TwilioRestError

pytest_plugins = ["tests.fake_twilio"]  # the fake_twilio fixture
SMS_FROM = "+15555550999"


def queue(engine, count: int = 1) -> list[int]:
    with Session(engine) as session:
        messages = [
            OutboundMessage(to=f"+1555555{i:04d}", kind="receipt", body=f"Receipt number {i}.")
            for i in range(count)
        ]
        session.add_all(messages)
        session.commit()
        return [m.id for m in messages]


def by_id(engine) -> dict[int, OutboundMessage]:
    return {m.id: m for m in rows(engine, OutboundMessage)}


@pytest.fixture
def rest(fake_twilio) -> TwilioRest:
    return TwilioRest(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        api_url=fake_twilio.url,
        sms_from=SMS_FROM,
    )


def send(engine, rest, **kw):
    return send_due(engine, rest, **({"max_attempts": 3, "backoff_s": 30.0} | kw))


def test_each_queued_message_is_sent_once(db_engine, rest, fake_twilio, caplog):
    ids = queue(db_engine, 3)
    caplog.set_level(logging.DEBUG)
    assert send(db_engine, rest).sent == 3
    assert send(db_engine, rest).sent == 0
    sent = fake_twilio.messages()
    assert sorted(m.form["Body"] for m in sent) == [f"Receipt number {i}." for i in range(3)]
    assert {m.form["From"] for m in sent} == {SMS_FROM}
    stored = by_id(db_engine)
    for message_id in ids:
        row = stored[message_id]
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
        assert row.provider_id.startswith("SM") and row.sent_at is not None
    assert "Receipt number" not in caplog.text and "+1555555" not in caplog.text


def test_server_error_is_retried_after_the_backoff(db_engine, rest, fake_twilio):
    (message_id,) = queue(db_engine)
    fake_twilio.fail_next(1)
    assert send(db_engine, rest).retrying == 1
    row = by_id(db_engine)[message_id]
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "http 500 code 20500")
    assert timedelta(seconds=25) < row.next_attempt_at - utcnow() <= timedelta(seconds=30)

    assert send(db_engine, rest).sent == 0  # not due yet
    assert send(db_engine, rest, now=utcnow() + timedelta(seconds=31)).sent == 1
    row = by_id(db_engine)[message_id]
    assert (row.status, row.attempts) == ("sent", 2)
    assert [m.sid for m in fake_twilio.messages()][-1] == row.provider_id
    assert len(fake_twilio.messages()) == 2


def test_gives_up_after_max_attempts(db_engine, rest, fake_twilio):
    (message_id,) = queue(db_engine)
    fake_twilio.fail_next(5, status=503)
    results = [send(db_engine, rest, max_attempts=2, backoff_s=0) for _ in range(3)]
    assert [(r.retrying, r.failed) for r in results] == [(1, 0), (0, 1), (0, 0)]
    row = by_id(db_engine)[message_id]
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, "http 503 code 20500")


def test_refused_message_fails_at_once(db_engine, rest, fake_twilio):
    (message_id,) = queue(db_engine)
    fake_twilio.fail_next(1, status=400)
    assert send(db_engine, rest, backoff_s=0).failed == 1
    assert send(db_engine, rest, backoff_s=0).sent == 0
    assert by_id(db_engine)[message_id].status == "failed"


def test_message_that_may_have_gone_out_is_not_retried(db_engine):
    (message_id,) = queue(db_engine)
    (claimed,) = claim_due(db_engine, now=utcnow())
    lost = TwilioRestError("send_sms", status=None, code=None, retryable=False, maybe_done=True)
    assert _after_failure(db_engine, claimed, lost, 5, 0) == "unknown"
    row = by_id(db_engine)[message_id]
    assert (row.status, row.last_error) == ("unknown", "no answer")
    assert claim_due(db_engine, now=utcnow() + timedelta(days=1)) == []


def test_a_claim_is_won_once(db_engine):
    (message_id,) = queue(db_engine)
    first = claim_due(db_engine, now=utcnow())
    assert first == [Claimed(message_id, "+15555550000", "Receipt number 0.", 1)]
    assert claim_due(db_engine, now=utcnow()) == []
    assert by_id(db_engine)[message_id].status == "sending"


def test_a_message_left_sending_by_a_stopped_sender_is_marked_unknown(
    db_engine, rest, fake_twilio, caplog
):
    """A sender that died mid-send left its claims ``sending``: within the lease nothing
    touches them (that sender may still be sending); after it the next pass marks them
    ``unknown`` (they may have gone out), never sends them, and sends what is due as usual.
    Rows claimed before claims were timed (no ``claimed_at``) are parked at once."""
    left = queue(db_engine, 2)
    claimed_at = utcnow()
    assert len(claim_due(db_engine, now=claimed_at)) == 2  # the sender then died
    (untimed,) = queue(db_engine, 1)
    with session_scope(db_engine) as session:  # claimed by a sender from before claims were timed
        session.get(OutboundMessage, untimed).status = "sending"
    caplog.set_level(logging.INFO)

    first = send(db_engine, rest, now=claimed_at + SENDING_LEASE - timedelta(seconds=1))
    assert (first.unknown, first.sent) == (1, 0)
    stored = by_id(db_engine)
    assert [stored[i].status for i in left] == ["sending", "sending"]
    assert (stored[untimed].status, stored[untimed].last_error) == ("unknown", STOPPED_MID_SEND)

    (fresh,) = queue(db_engine, 1)
    later = send(db_engine, rest, now=claimed_at + SENDING_LEASE + timedelta(seconds=1))
    assert (later.unknown, later.sent) == (2, 1)
    stored = by_id(db_engine)
    for message_id in left:
        row = stored[message_id]
        assert (row.status, row.attempts, row.last_error) == ("unknown", 1, STOPPED_MID_SEND)
        assert row.provider_id is None
    assert stored[fresh].status == "sent"
    assert [m.form["Body"] for m in fake_twilio.messages()] == [stored[fresh].body]
    assert send(db_engine, rest, now=utcnow() + timedelta(days=1)) == PassResult()
    assert len(fake_twilio.messages()) == 1
    parked = [r.getMessage() for r in caplog.records if "stopped sender" in r.getMessage()]
    assert len(parked) == 3 and all(str(i) in " ".join(parked) for i in [*left, untimed])
    assert "Receipt number" not in caplog.text and "+1555555" not in caplog.text


def test_a_stale_claim_that_finishes_meanwhile_is_left_alone(db_engine):
    """Parking is conditional: a row that left ``sending`` after it was found stale (its slow
    sender finished after all) keeps what that sender wrote."""
    (message_id,) = queue(db_engine)
    claim_due(db_engine, now=utcnow() - SENDING_LEASE - timedelta(minutes=1))
    before = utcnow() - SENDING_LEASE
    with Session(db_engine) as session:
        assert queries.stale_sending_ids(session=session, before=before, limit=5) == [message_id]
    with session_scope(db_engine) as session:
        row = session.get(OutboundMessage, message_id)
        row.status, row.provider_id = "sent", "SM" + "1" * 32
    with session_scope(db_engine) as session:
        assert not queries.park_stale_sending(session=session, message_id=message_id, before=before)
    assert by_id(db_engine)[message_id].status == "sent"


def test_two_senders_racing_send_each_message_once(db_engine, fake_twilio):
    count = 30
    queue(db_engine, count)
    senders = [
        TwilioRest(
            account_sid=fake_twilio.account_sid,
            auth_token=fake_twilio.auth_token,
            api_url=fake_twilio.url,
            sms_from=SMS_FROM,
        )
        for _ in range(2)
    ]
    sent = [0, 0]
    start = threading.Barrier(2)

    def bridge(index: int) -> None:
        start.wait()
        for _ in range(count):
            sent[index] += send(db_engine, senders[index]).sent

    threads = [threading.Thread(target=bridge, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(sent) == count
    bodies = [m.form["Body"] for m in fake_twilio.messages()]
    assert sorted(bodies) == sorted(f"Receipt number {i}." for i in range(count))
    assert {m.status for m in rows(db_engine, OutboundMessage)} == {"sent"}


# The background task in the app ---------------------------------------------------------------
async def run_sender(app: web.Application) -> AsyncIterator[None]:
    context = receipt_sender(app)
    await context.__anext__()
    try:
        yield
    finally:
        with pytest.raises(StopAsyncIteration):
            await context.__anext__()


def app_for(engine, **settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = load_settings(env="test", **settings)
    app[DB_ENGINE] = engine
    return app


async def test_background_sender_sends_what_is_queued(settings, sqlite_engine, fake_twilio):
    app = app_for(
        sqlite_engine,
        data_dir=settings.data_dir,
        sms_from=SMS_FROM,
        sms_send_interval_s=0.05,
        **fake_twilio.settings_overrides(),
    )
    async for _ in run_sender(app):
        queue(sqlite_engine, 2)
        for _ in range(100):  # until both rows are marked sent (not just received)
            if {m.status for m in rows(sqlite_engine, OutboundMessage)} == {"sent"}:
                break
            await asyncio.sleep(0.05)
    assert len(fake_twilio.messages()) == 2
    assert {m.status for m in rows(sqlite_engine, OutboundMessage)} == {"sent"}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        ({"twilio_account_sid": "AC1", "twilio_auth_token": "t"}, "PAYBOT_SMS_FROM"),
        ({"sms_send_interval_s": 0}, "PAYBOT_SMS_SEND_INTERVAL_S=0"),
    ],
)
async def test_sender_stays_idle_when_it_cannot_send(
    settings, sqlite_engine, caplog, overrides, expected
):
    caplog.set_level(logging.INFO)
    app = app_for(sqlite_engine, data_dir=settings.data_dir, **overrides)
    async for _ in run_sender(app):
        queue(sqlite_engine)
        await asyncio.sleep(0.05)
    assert expected in caplog.text
    assert [m.status for m in rows(sqlite_engine, OutboundMessage)] == ["queued"]
