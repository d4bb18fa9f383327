"""Twilio's REST client (the official one) against the local fake of Twilio's wire protocol."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET  # noqa: S405 - parses TwiML we generated
from urllib.parse import parse_qsl, urlsplit

import pytest

from paybot.settings import load_settings
from tests.stack import free_port
from voice_bridge.twilio.rest import (
    RedirectingHttpClient,
    TwilioNotConfigured,
    TwilioRest,
    TwilioRestError,
)
from voice_bridge.twilio.twiml import SIP_HEADERS_MAX, InvalidTransferTarget

pytest_plugins = ["tests.fake_twilio"]  # the fake_twilio fixture
CALL = "CA" + "d" * 32
CALLER = "+15555550100"
SMS_FROM = "+15555550999"


@pytest.fixture
def rest(fake_twilio) -> TwilioRest:
    return TwilioRest(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        api_url=fake_twilio.url,
        sms_from=SMS_FROM,
        transfer_to="+15555550123",
    )


def dial_of(twiml: str) -> ET.Element:
    root = ET.fromstring(twiml)  # noqa: S314
    (verb,) = list(root)
    return verb


def test_transfer_to_a_number_dials_it(rest, fake_twilio):
    rest.transfer(CALL, reason="caller_request", context={"account_number": "100200300"})
    (update,) = fake_twilio.calls(CALL)
    dial = dial_of(update.form["Twiml"])
    assert dial.tag == "Dial" and dial.get("answerOnBridge") == "true"
    assert [(n.tag, n.text) for n in dial] == [("Number", "+15555550123")]
    assert update.path.endswith(f"/Accounts/{fake_twilio.account_sid}/Calls/{CALL}.json")


def test_transfer_to_sip_carries_reason_and_context_as_headers(rest, fake_twilio):
    context = {
        "account_number": "100200300",
        "verified": True,
        "amount": "321.72",
        "nested": {"no": "dicts"},
        "name": "James Smith",
    }
    rest.transfer(CALL, "sip:agent@pbx.example.com", "idv_failed", context)
    (sip,) = dial_of(fake_twilio.calls(CALL)[0].form["Twiml"])
    assert sip.tag == "Sip"
    uri, _, query = sip.text.partition("?")
    assert uri == "sip:agent@pbx.example.com"
    assert dict(parse_qsl(query)) == {
        "X-Paybot-Reason": "idv_failed",
        "X-Paybot-Call-Sid": CALL,
        "X-Paybot-Account-Number": "100200300",
        "X-Paybot-Verified": "yes",
        "X-Paybot-Amount": "321.72",
        "X-Paybot-Name": "James Smith",
    }


def test_sip_headers_stay_under_twilios_limit(rest, fake_twilio, caplog):
    context = {f"key_{i:02d}": "v" * 100 for i in range(30)}
    rest.transfer(CALL, "sip:agent@pbx.example.com", "declined", context)
    (sip,) = dial_of(fake_twilio.calls(CALL)[0].form["Twiml"])
    query = urlsplit(sip.text).query if "://" in sip.text else sip.text.partition("?")[2]
    assert len(query) <= SIP_HEADERS_MAX
    assert dict(parse_qsl(query))["X-Paybot-Reason"] == "declined"
    assert "dropped" in caplog.text and "v" * 100 not in caplog.text


def test_transfer_to_a_queue_enqueues(rest, fake_twilio):
    rest.transfer(CALL, "queue:billing", "caller_request", {})
    verb = dial_of(fake_twilio.calls(CALL)[0].form["Twiml"])
    assert (verb.tag, verb.text) == ("Enqueue", "billing")


@pytest.mark.parametrize("target", ["555-0100", "queue:", "queue:" + "q" * 65, "sip:nohost", "x"])
def test_bad_transfer_targets_are_refused_before_calling_twilio(rest, fake_twilio, target):
    with pytest.raises(InvalidTransferTarget):
        rest.transfer(CALL, target, "caller_request", {})
    assert fake_twilio.requests == []


def test_transfer_needs_a_target(fake_twilio):
    rest = TwilioRest(account_sid=fake_twilio.account_sid, auth_token="t", api_url=fake_twilio.url)
    with pytest.raises(TwilioNotConfigured, match="PAYBOT_TRANSFER_TO"):
        rest.transfer(CALL, reason="caller_request")


def test_hangup_completes_the_call(rest, fake_twilio):
    rest.hangup(CALL)
    (update,) = fake_twilio.calls(CALL)
    assert update.form == {"Status": "completed"}


async def test_async_wrappers_run_in_threads(rest, fake_twilio):
    await rest.hangup_async(CALL)
    await rest.transfer_async(CALL, "queue:billing", "silence", {})
    sid = await rest.send_sms_async(CALLER, "hello")
    assert len(fake_twilio.calls(CALL)) == 2 and sid.startswith("SM")


def test_send_sms_returns_the_message_sid(rest, fake_twilio, caplog):
    caplog.set_level(logging.DEBUG)
    sid = rest.send_sms(CALLER, "Payment received: $321.72. Confirmation 123-456-789.")
    (message,) = fake_twilio.messages()
    assert sid == message.sid and sid.startswith("SM") and len(sid) == 34
    assert message.form == {
        "To": CALLER,
        "From": SMS_FROM,
        "Body": "Payment received: $321.72. Confirmation 123-456-789.",
    }
    assert sid in caplog.text
    assert CALLER not in caplog.text and "321.72" not in caplog.text


def test_send_sms_needs_a_sender_number(fake_twilio):
    rest = TwilioRest(account_sid=fake_twilio.account_sid, auth_token="t", api_url=fake_twilio.url)
    with pytest.raises(TwilioNotConfigured, match="PAYBOT_SMS_FROM"):
        rest.send_sms(CALLER, "hi")


def test_wrong_credentials_are_a_401(fake_twilio, caplog):
    rest = TwilioRest(
        account_sid=fake_twilio.account_sid, auth_token="wrong", api_url=fake_twilio.url
    )
    with pytest.raises(TwilioRestError) as info:
        rest.hangup(CALL)
    assert (info.value.status, info.value.code, info.value.retryable) == (401, 20003, False)
    assert "wrong" not in caplog.text
    assert [r.authorized for r in fake_twilio.requests] == [False]


def test_server_errors_are_retryable(rest, fake_twilio):
    fake_twilio.fail_next(1)
    with pytest.raises(TwilioRestError) as info:
        rest.send_sms(CALLER, "hi")
    assert (info.value.status, info.value.retryable, info.value.maybe_done) == (500, True, False)
    assert rest.send_sms(CALLER, "hi").startswith("SM")


def test_unreachable_twilio_is_retryable_and_nothing_was_sent():
    rest = TwilioRest(account_sid="AC1", auth_token="t", api_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TwilioRestError) as info:
        rest.hangup(CALL)
    assert (info.value.status, info.value.retryable, info.value.maybe_done) == (None, True, False)


def test_from_settings_needs_the_account(settings, fake_twilio):
    with pytest.raises(TwilioNotConfigured, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        TwilioRest.from_settings(settings)
    configured = load_settings(
        env="test", data_dir=settings.data_dir, **fake_twilio.settings_overrides()
    )
    TwilioRest.from_settings(configured).hangup(CALL)
    assert len(fake_twilio.calls(CALL)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA1.json",
        "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
    ],
)
def test_twilio_hosts_are_redirected_to_the_configured_api(url):
    client = RedirectingHttpClient("http://127.0.0.1:9999/prefix/")
    rewritten = urlsplit(client.rewrite(url))
    assert (rewritten.scheme, rewritten.netloc) == ("http", "127.0.0.1:9999")
    assert rewritten.path == "/prefix" + urlsplit(url).path


def test_other_hosts_and_the_real_api_are_left_alone():
    assert RedirectingHttpClient("http://fake").rewrite("https://example.com/x") == (
        "https://example.com/x"
    )
    real = "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA1.json"
    assert RedirectingHttpClient().rewrite(real) == real


def test_fake_twilio_can_run_outside_pytest():
    from tests.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        env = fake.env()
        assert env["PAYBOT_TWILIO_API_URL"] == fake.url
