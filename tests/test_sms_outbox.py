"""The outbox and compliance: nothing is sent to an opted-out number, outreach waits out the
recipient's quiet hours (receipts do not), and Twilio's signed status callbacks
(``/twilio/sms-status``) record each message's delivery, forward only."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage
from paybot.db.queries.outbox import SENDING_LEASE
from paybot.db.types import utcnow
from paybot.settings import SettingsError, load_settings
from paybot.sms.consent import may_text, opt_in, opt_out
from paybot.sms.quiet_hours import QuietHours, parse_window, zones_for_number
from tests.helpers import rows
from tests.test_receipt_sender import SMS_FROM, rest  # noqa: F401 - the fixture
from tests.test_twilio_webhooks import PUBLIC, Bridge, make_bridge
from voice_bridge.jobs.receipt_sender import send_due
from voice_bridge.twilio import sms_status
from voice_bridge.twilio.signature import SIGNATURE_HEADER, sign

pytest_plugins = ["tests.fake_twilio"]
SF = "+14155550100"  # America/Los_Angeles
NYC = "+12125550100"  # America/New_York
TCPA = QuietHours.from_spec("21:00-08:00", "America/New_York")


def queue(engine, to: str, kind: str = "receipt", provider_id: str | None = None) -> int:
    with Session(engine) as session:
        message = OutboundMessage(to=to, kind=kind, body=f"A {kind}.", provider_id=provider_id,
                                  status="sent" if provider_id else "queued")  # fmt: skip
        session.add(message)
        session.commit()
        return message.id


def row(engine, message_id: int) -> OutboundMessage:
    with Session(engine) as session:
        return session.get(OutboundMessage, message_id)


def at_utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 8, hour, minute, tzinfo=timezone.utc)


# --- the sender -------------------------------------------------------------------------------
def test_nothing_is_sent_to_an_opted_out_number(db_engine, rest, fake_twilio):  # noqa: F811
    opt_out(db_engine, SF, "STOP")
    skipped, sent = queue(db_engine, SF), queue(db_engine, NYC)
    result = send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(18))
    assert (result.sent, result.opted_out) == (1, 1)
    assert [m.form["To"] for m in fake_twilio.messages()] == [NYC]
    assert (row(db_engine, skipped).status, row(db_engine, skipped).last_error) == (
        "opted_out", "opted out")
    assert row(db_engine, sent).status == "sent"
    opt_in(db_engine, SF, "START")  # a skipped message stays skipped; new ones go out
    assert send_due(db_engine, rest, max_attempts=3, backoff_s=0).sent == 0
    queue(db_engine, SF)
    assert send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(18)).sent == 1


def test_twilio_refusing_an_unsubscribed_number_records_the_opt_out(db_engine, rest, fake_twilio):  # noqa: F811
    message_id = queue(db_engine, SF)
    fake_twilio.unsubscribed.add(SF)
    result = send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(18))
    assert result.opted_out == 1
    refused = row(db_engine, message_id)
    assert (refused.status, refused.last_error) == ("opted_out", "http 400 code 21610")
    assert not may_text(db_engine, SF)
    queue(db_engine, SF)  # the next one is not even tried
    assert send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(18)).opted_out == 1
    assert len(fake_twilio.messages()) == 1


def test_outreach_waits_out_quiet_hours_but_receipts_do_not(db_engine, rest, fake_twilio):  # noqa: F811
    night_in_sf = at_utc(6)  # 22:00 in San Francisco, 01:00 in New York
    reminder, receipt = queue(db_engine, SF, "reminder"), queue(db_engine, SF, "receipt")
    result = send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=night_in_sf, quiet=TCPA)
    assert (result.sent, result.deferred) == (1, 1)
    held = row(db_engine, reminder)
    assert (held.status, held.attempts, held.last_error) == ("queued", 0, "quiet hours")
    assert held.next_attempt_at == at_utc(16)  # 08:00 in San Francisco
    assert row(db_engine, receipt).status == "sent"
    assert send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(15, 59),
                    quiet=TCPA).sent == 0  # fmt: skip
    assert send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(16),
                    quiet=TCPA).sent == 1  # fmt: skip
    assert row(db_engine, reminder).attempts == 1
    assert [m.form["Body"] for m in fake_twilio.messages()] == ["A receipt.", "A reminder."]


def test_every_message_asks_for_status_callbacks(db_engine, rest, fake_twilio):  # noqa: F811
    rest.status_callback = PUBLIC + "/twilio/sms-status"
    fake_twilio.callback_delay_s = 30  # not delivered during this test
    queue(db_engine, NYC)
    send_due(db_engine, rest, max_attempts=3, backoff_s=0, now=at_utc(18))
    [message] = fake_twilio.messages()
    assert message.form["StatusCallback"] == PUBLIC + "/twilio/sms-status"


# --- quiet hours ------------------------------------------------------------------------------
def test_quiet_windows():
    assert parse_window("") is None
    assert parse_window(" 21:00 - 8:00 ") == (time(21), time(8))
    for bad in ("21-08", "25:00-08:00", "21:00-21:00", "9pm-8am", "21:00-08:00-01:00"):
        with pytest.raises(ValueError):
            parse_window(bad)
    day = QuietHours.from_spec("01:00-06:00", "UTC")
    assert day.is_quiet(time(3)) and not day.is_quiet(time(6)) and not day.is_quiet(time(0, 59))
    assert zones_for_number("+15555550100", "America/Chicago") == (ZoneInfo("America/Chicago"),)
    assert zones_for_number(SF, "UTC") == (ZoneInfo("America/Los_Angeles"),)


def test_quiet_hours_settings_are_checked(settings):
    for bad in ({"sms_quiet_hours": "late"}, {"sms_time_zone": "Mars/Olympus"}):
        with pytest.raises(SettingsError):
            load_settings(env="test", **bad)
    assert load_settings(env="test", sms_quiet_hours="").sms_quiet_hours == ""


def awake(quiet: QuietHours, number: str, moment: datetime) -> bool:
    zones = zones_for_number(number, quiet.default_zone)
    return not any(quiet.is_quiet(moment.astimezone(z).time()) for z in zones)


def test_generated_times_resume_when_every_zone_of_the_number_is_awake():
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    numbers = [SF, NYC, "+15555550100", "+79165550100", "+61255501000", "+447700900100"]
    for case in range(500):
        quiet = QuietHours.from_spec(rng.choice(["21:00-08:00", "20:30-09:15", "01:00-05:00"]),
                                     rng.choice(["America/New_York", "UTC"]))  # fmt: skip
        number = rng.choice(numbers)
        now = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(525600))
        resume = quiet.resume_at(number, now)
        if resume is None:
            assert awake(quiet, number, now), f"case {case} (seed {seed})"
        else:
            assert resume > now and awake(quiet, number, resume), f"case {case} (seed {seed})"
            assert resume - now < timedelta(hours=24), f"case {case} (seed {seed})"


# --- status callbacks -------------------------------------------------------------------------
@pytest.fixture
async def bridge(settings, db_engine) -> AsyncIterator[Bridge]:
    async for bridge in make_bridge(settings.copy(update={"public_url": PUBLIC}), db_engine):
        yield bridge


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": "AC" + "0" * 32, "MessageSid": sid, "SmsSid": sid,
            "MessageStatus": status, "SmsStatus": status, "To": NYC, "From": SMS_FROM} | extra


async def report(bridge: Bridge, sid: str, status: str, **extra: str) -> int:
    return (await bridge.post("/twilio/sms-status", status_params(sid, status, **extra))).status


async def test_status_callbacks_move_a_message_forward_only(bridge):
    sid = "SM" + "a" * 32
    message_id = queue(bridge.engine, NYC, provider_id=sid)
    assert await report(bridge, sid, "sent") == 204
    assert row(bridge.engine, message_id).delivery_status == "sent"
    assert await report(bridge, sid, "delivered") == 204
    assert await report(bridge, sid, "sent") == 204  # late: ignored
    assert await report(bridge, sid, "undelivered", ErrorCode="30003") == 204  # first end sticks
    done = row(bridge.engine, message_id)
    assert (done.status, done.delivery_status, done.error_code) == ("delivered", "delivered", None)
    assert done.delivery_updated_at is not None


async def test_an_undelivered_message_keeps_its_error_code(bridge):
    sid = "SM" + "b" * 32
    message_id = queue(bridge.engine, NYC, provider_id=sid)
    assert await report(bridge, sid, "undelivered", ErrorCode="30003") == 204
    failed = row(bridge.engine, message_id)
    assert (failed.status, failed.delivery_status, failed.error_code) == (
        "undelivered", "undelivered", 30003)


async def test_unknown_forged_and_odd_callbacks_are_refused(bridge):
    sid = "SM" + "c" * 32
    message_id = queue(bridge.engine, NYC, provider_id=sid)
    assert await report(bridge, "SM" + "d" * 32, "delivered") == 404
    forged = await bridge.post("/twilio/sms-status", status_params(sid, "delivered"),
                               headers={SIGNATURE_HEADER: sign(PUBLIC + "/twilio/sms-status",
                                        status_params(sid, "delivered"), "wrong-token")})
    assert forged.status == 403
    assert await report(bridge, sid, "exploded") == 400
    assert await report(bridge, sid + "\x00", "sent") == 400  # PostgreSQL refuses NULs
    assert await report(bridge, sid, "failed", ErrorCode="30003; DROP") == 400
    params = status_params(sid, "sent")
    del params["MessageSid"], params["SmsSid"]
    assert (await bridge.post("/twilio/sms-status", params)).status == 400
    assert row(bridge.engine, message_id).delivery_status is None


async def test_a_callback_that_beats_the_stored_message_sid_is_kept(bridge, monkeypatch):
    """Twilio may call back before the sender stored the MessageSid its send returned: while
    a claimed message has no MessageSid yet, the callback waits for it instead of a 404."""
    monkeypatch.setattr(sms_status, "EARLY_WAIT_S", 30.0)  # a loaded machine is slow
    sid = "SM" + "9" * 32
    message_id = queue(bridge.engine, NYC)
    with session_scope(bridge.engine) as session:  # claimed by a sender, its send under way
        claimed = session.get(OutboundMessage, message_id)
        claimed.status, claimed.claimed_at = "sending", utcnow()
    early = asyncio.create_task(report(bridge, sid, "sent"))
    await asyncio.sleep(0.6)
    assert not early.done()
    with session_scope(bridge.engine) as session:  # the send returned: the SID is stored
        message = session.get(OutboundMessage, message_id)
        message.status, message.provider_id = "sent", sid
    assert await early == 204
    assert row(bridge.engine, message_id).delivery_status == "sent"
    # Nothing in flight: an unknown SID is refused at once.
    started = asyncio.get_running_loop().time()
    assert await report(bridge, "SM" + "8" * 32, "sent") == 404
    assert asyncio.get_running_loop().time() - started < 15


async def test_a_message_left_sending_long_ago_is_not_waited_for(bridge, monkeypatch):
    """A row a stopped sender left ``sending`` (its claim older than the lease, or from before
    claims were timed) is not a send in flight: an unknown SID is refused at once."""
    monkeypatch.setattr(sms_status, "EARLY_WAIT_S", 30.0)
    old, untimed = queue(bridge.engine, NYC), queue(bridge.engine, NYC)
    with session_scope(bridge.engine) as session:
        left = session.get(OutboundMessage, old)
        left.status, left.claimed_at = "sending", utcnow() - SENDING_LEASE - timedelta(seconds=1)
        session.get(OutboundMessage, untimed).status = "sending"
    started = asyncio.get_running_loop().time()
    assert await report(bridge, "SM" + "6" * 32, "sent") == 404
    assert asyncio.get_running_loop().time() - started < 10


async def test_a_send_that_stores_its_sid_between_the_two_looks_is_found(bridge, monkeypatch):
    """The callback looked the SID up (not there), then the send stored it and left the
    in-flight state before the callback checked that: one more look finds it."""
    sid = "SM" + "7" * 32
    message_id = queue(bridge.engine, NYC)
    in_flight = sms_status._unknown_for_now  # noqa: SLF001

    def finished_meanwhile(engine) -> bool:
        with session_scope(engine) as session:
            message = session.get(OutboundMessage, message_id)
            message.status, message.provider_id = "sent", sid
        return in_flight(engine)  # False: nothing is in flight any more

    monkeypatch.setattr(sms_status, "_unknown_for_now", finished_meanwhile)
    assert await report(bridge, sid, "delivered") == 204
    assert row(bridge.engine, message_id).delivery_status == "delivered"


async def test_generated_callback_orders_end_at_the_first_ending(bridge):
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    for case in range(15):
        sid = f"SM{case:032x}"
        message_id = queue(bridge.engine, NYC, provider_id=sid)
        statuses = rng.sample(["queued", "sending", "sent", "delivered", "undelivered"], 4)
        for status in statuses:
            assert await report(bridge, sid, status) == 204
        endings = [s for s in statuses if s in ("delivered", "undelivered")]
        stored = row(bridge.engine, message_id)
        rank = {"queued": 0, "sending": 1, "sent": 2}
        expected = endings[0] if endings else max(statuses, key=rank.__getitem__)
        assert stored.delivery_status == expected, f"case {case} (seed {seed}): {statuses}"
    assert len(rows(bridge.engine, OutboundMessage)) == 15


async def test_generated_status_callbacks_never_get_a_server_error(bridge):
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    sid = "SM" + "e" * 32
    queue(bridge.engine, NYC, provider_id=sid)
    odd = ["", "x" * 5000, "\x00", "é" * 40, "-1", "9" * 40, "3e4", "SM" + "f" * 32, "DELIVERED",
           "read", "canceled", "<Response/>", "%zz", "\ud7ff"]
    answers: dict[int, int] = {}
    for case in range(120):
        params = status_params(sid, rng.choice(["sent", "delivered", "undelivered", "failed"]))
        for _ in range(rng.randint(0, 3)):
            name = rng.choice([*params, "ErrorCode", "ErrorMessage", "x"])
            if rng.random() < 0.3:
                params.pop(name, None)
            else:
                params[name] = rng.choice(odd)
        headers = {}
        if rng.random() < 0.2:
            headers[SIGNATURE_HEADER] = rng.choice(["", "bad", "é"])
        response = await bridge.post("/twilio/sms-status", params, headers=headers)
        answers[response.status] = answers.get(response.status, 0) + 1
        assert response.status < 500, f"case {case} (seed {seed}): {response.status}"
    assert answers.get(204, 0) > 3 and answers.get(400, 0) > 3, (seed, answers)
