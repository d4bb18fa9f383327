"""Reminders meet the webhooks (signed, over real HTTP; Rasa a stub as in
tests/test_twilio_webhooks.py): STOP over the webhook stops the next reminder and START brings
it back; a reply is noted on its reminder by kind, never by its words; an answered reminder call
asks the voice webhook and streams the conversation with the number called."""

# ruff: noqa: F811 - fixtures are imported, then named by the tests that use them
from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from paybot.db.models import Call, OutboundMessage, Reminder
from paybot.reminders.replies import reply_kind
from paybot.reminders.run import ReminderRun
from paybot.settings import load_settings
from tests.helpers import rows
from tests.test_reminders import PUBLIC, TODAY, add_account
from tests.test_twilio_webhooks import (  # noqa: F401 - the fixture these tests share
    Bridge,
    make_bridge,
    message_of,
    rasa,
    sms_params,
    stream_of,
)
from voice_bridge.jobs.receipt_sender import send_due
from voice_bridge.jobs.reminders import TwilioDialer
from voice_bridge.twilio.rest import TwilioRest

pytest_plugins = ["tests.fake_twilio"]
CUSTOMER = "+15555551003"
BUSINESS = "+15555550999"


@pytest.fixture
async def bridge(settings, db_engine, rasa, fake_twilio) -> AsyncIterator[Bridge]:
    _, rasa_port = rasa
    configured = load_settings(
        env="test", data_dir=settings.data_dir, public_url=PUBLIC, rasa_port=rasa_port,
        business_name="Acme Water", sms_quiet_hours="", reminder_rate_per_s=1000.0,
        reminder_offsets_days="3", sms_from=BUSINESS, **fake_twilio.settings_overrides(),
    )  # fmt: skip
    async for bridge in make_bridge(configured, db_engine):
        yield bridge


async def text(bridge: Bridge, body: str) -> str | None:
    response = await bridge.post("/twilio/sms", sms_params(body, From=CUSTOMER))
    assert response.status == 200, await response.text()
    return message_of(await response.text())


async def remind_and_send(bridge: Bridge, **kw) -> int:
    """One reminder run and one outbox pass; how many texts went out."""
    await ReminderRun(bridge.engine, bridge.settings, **kw).run(TODAY)
    rest = TwilioRest.from_settings(bridge.settings)
    return send_due(bridge.engine, rest, max_attempts=3, backoff_s=0).sent


async def test_stop_over_the_webhook_stops_reminders_and_start_restores_them(bridge, fake_twilio):
    add_account(bridge.engine, "1003", 3)
    assert "unsubscribed" in await text(bridge, "STOP")
    assert await remind_and_send(bridge) == 0
    assert fake_twilio.messages() == [] and rows(bridge.engine, Reminder) == []
    assert "resubscribed" in await text(bridge, "START")
    assert await remind_and_send(bridge) == 1
    assert await remind_and_send(bridge) == 0
    [message] = fake_twilio.messages()
    assert message.form["To"] == CUSTOMER and "Reply PAY" in message.form["Body"]


async def test_a_reply_is_noted_on_the_reminder_without_its_words(bridge, rasa):
    stub, _ = rasa
    stub.replies = [{"text": "To keep your account safe, please send the billing ZIP code."}]
    add_account(bridge.engine, "1003", 3, card=True)
    assert await remind_and_send(bridge) == 1
    assert "ZIP code" in await text(bridge, "PAY")
    assert stub.received[-1]["message"] == "PAY"  # the conversation goes on as usual
    await text(bridge, "4242 4242 4242 4242")  # a second reply is not noted
    [reminder] = rows(bridge.engine, Reminder)
    assert reminder.reply == "pay" and reminder.replied_at is not None
    stored = repr([r.__dict__ for r in rows(bridge.engine, Reminder)])
    assert "4242 4242" not in stored and "PAY" not in stored


async def test_a_text_from_a_number_without_a_reminder_is_not_noted(bridge, rasa):
    add_account(bridge.engine, "1003", 3)
    assert await remind_and_send(bridge) == 1
    await text(bridge, "hi")  # noted: the reminder was to this number
    response = await bridge.post("/twilio/sms", sms_params("PAY", From="+15555550177"))
    assert response.status == 200
    assert [r.reply for r in rows(bridge.engine, Reminder)] == ["other"]


@pytest.mark.parametrize("seed", [5, 6])
def test_generated_replies_are_one_of_the_kinds(seed):
    rng = random.Random(seed)
    alphabet = "PAYpaySTOPstartHELPyes 0123456789!?.,\n\u00e9"
    for _ in range(500):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert reply_kind(body) in {"pay", "stop", "start", "help", "yes", "other"}
    assert [reply_kind(b) for b in ("PAY", " pay now", "Pay.", "payment", "STOP", "yes")] == [
        "pay", "pay", "pay", "other", "stop", "yes"]  # fmt: skip


async def test_an_answered_reminder_call_streams_the_conversation_with_the_customer(
    bridge, fake_twilio
):
    voice = bridge.settings.copy(update={"reminder_channel": "voice"})
    add_account(bridge.engine, "1003", 3)
    dialer = TwilioDialer.from_settings(voice)
    result = await ReminderRun(bridge.engine, voice, dialer=dialer).run(TODAY)
    assert result.called == 1
    [created] = fake_twilio.created_calls()
    # The fake plays the callee answering: Twilio's signed request goes to the public URL;
    # the test client serves the bridge elsewhere, so the request is replayed at it.
    assert created.form["Url"] == PUBLIC + "/twilio/voice"
    form = {"AccountSid": fake_twilio.account_sid, "CallSid": created.sid, "From": BUSINESS,
            "To": CUSTOMER, "Direction": "outbound-api", "CallStatus": "in-progress"}  # fmt: skip
    response = await bridge.post("/twilio/voice", form)
    assert response.status == 200
    _, params = stream_of(await response.text())
    assert params["caller"] == CUSTOMER
    [call] = rows(bridge.engine, Call)
    assert (call.call_sid, call.caller, call.called, call.direction) == (
        created.sid, CUSTOMER, BUSINESS, "outbound-api")  # fmt: skip
    assert rows(bridge.engine, OutboundMessage) == []


# The bridge's job ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, expected",
    [({}, "not run by the bridge (PAYBOT_REMINDER_INTERVAL_S=0)"),
     ({"reminder_interval_s": 0.05, "reminder_channel": "voice"},
      "not run (reminder calls need PAYBOT_REMINDER_CALL_FROM)")],
)  # fmt: skip
async def test_the_job_says_why_it_makes_no_reminders(settings, sqlite_engine, caplog, overrides,
                                                       expected):  # fmt: skip
    import asyncio
    import logging

    from aiohttp import web

    from voice_bridge.jobs.reminders import reminder_job
    from voice_bridge.keys import DB_ENGINE, SETTINGS

    caplog.set_level(logging.INFO)
    app = web.Application()
    app[SETTINGS] = load_settings(env="test", data_dir=settings.data_dir, **overrides)
    app[DB_ENGINE] = sqlite_engine
    add_account(sqlite_engine, "1003", 3)
    job = reminder_job(app)
    await job.__anext__()
    await asyncio.sleep(0.2)
    with pytest.raises(StopAsyncIteration):
        await job.__anext__()
    assert expected in caplog.text
    assert rows(sqlite_engine, Reminder) == []


def test_the_reminder_caller_id_must_be_a_number(settings):
    from paybot.settings import SettingsError

    assert load_settings(env="test", reminder_call_from=" +15555550999 ").reminder_call_from == (
        "+15555550999")  # fmt: skip
    with pytest.raises(SettingsError, match="reminder_call_from"):
        load_settings(env="test", reminder_call_from="our main line")
