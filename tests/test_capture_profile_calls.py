"""Phone calls through a merchant payment profile (PAYBOT_PAYMENT_PROFILE), end to end.

The whole stack (``paybot up``) reads one profile file: confirm per field, American Express
without a ZIP, two attempts per field, short keypad timeouts, and a transfer to an agent after
one failed capture. Calls are placed over the real Media Streams protocol as in
tests/test_voice_calls.py; the results are read from the database, the tracker and the
fake Twilio's call updates.
"""

from __future__ import annotations

import pytest
import requests
from sqlmodel import Session, select

from paybot.db.models import Payment, PaymentStatus, SandboxCharge
from paybot.gateway.sandbox_requests import request_fingerprint
from tests import cardscan
from tests.helpers import rows
from tests.stack import RASA_TOKEN
from tests.test_voice_calls import (  # noqa: F401 - fixtures
    ROBERT,
    _to_capture,
    assert_no_card_digits_anywhere,
    bot_said,
    call_row,
    dial,
    fake_twilio,
    fresh_data,
    run,
    voice_stack,
)

AMEX = cardscan.keyed_card("378282246310005")
AMEX_CODE = cardscan.keyed_code("7391")
BAD_LUHN = "5555555555554445"  # 16 digits end the entry; fails the Luhn check
PROFILE = """\
confirm: per_field
accepted_brands: [visa, mastercard, amex]
fields_by_brand:
  amex: {postal_code: false}
max_attempts_per_field: 2
timeouts: {inter_digit_s: 3, field_start_s: 8}
limits:
  failed_captures: {max: 1, then: agent}
"""


pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):  # noqa: F811
    profile = tmp_path_factory.mktemp("profile") / "payment_profile.yml"
    profile.write_text(PROFILE, encoding="utf-8")
    yield from voice_stack(tmp_path_factory, fake_twilio, PAYBOT_PAYMENT_PROFILE=str(profile))


def transfers(stack, call_sid: str) -> list[dict]:
    """The transfer instructions the bot gave in this call (reason and context)."""
    response = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    )
    response.raise_for_status()
    return [
        e["data"]["custom"]
        for e in response.json()["events"]
        if e["event"] == "bot" and ((e.get("data") or {}).get("custom") or {}).get("type")
        == "transfer"
    ]


def assert_heard_in_full(phone) -> None:
    """The caller keyed only once the bot was quiet, so nothing the bot said was cut off: not
    a re-prompt by the one after it, nor the capture's last words by the bot's answer."""
    cut = [(t.index, t.audio_s) for t in phone.log.bot_turns if t.interrupted]
    assert cut == [], cut


def test_amex_with_a_four_digit_code_no_zip_and_one_field_keyed_again(stack, fake_twilio):  # noqa: F811
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press(AMEX)  # 15 digits end an Amex number
            await phone.wait_bot()  # your American Express ending 0 0 0 5, press 1 or 2
            await phone.press("1")
            await phone.wait_bot()  # the expiry date
            await phone.press("1230")
            await phone.wait_bot()  # expiring 12 30, press 1 or 2
            await phone.press("2")  # a slip: only the expiry is keyed again
            await phone.wait_bot()  # let's try again: the expiry date
            await phone.press("1231")
            await phone.wait_bot()  # expiring 12 31
            await phone.press("1")
            await phone.wait_bot()  # the four digit security code
            await phone.press(AMEX_CODE)
            await phone.wait_bot()  # the four digit security code, press 1 or 2
            await phone.press("1")  # no ZIP for Amex in this profile: straight to the charge
            await phone.wait_bot()  # one moment, then the bot's result
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (payment.method_brand, payment.method_last4) == ("amex", "0005")
    # One step vaults nothing: the sandbox's charge keeps a fingerprint of what it was sent,
    # which names the re-entered expiry (12 31), not the first one.
    with Session(stack.engine) as session:
        [charge] = session.exec(select(SandboxCharge)).all()
    sent = [request_fingerprint("charge_card", "amex", "0005", 12, year, charge.amount,
                                charge.currency) for year in (2031, 2030)]
    assert charge.request_fingerprint == sent[0] != sent[1]
    assert any("was successful" in text for text in bot_said(stack, phone.call_sid))
    assert AMEX not in stack.all_output()
    assert_no_card_digits_anywhere(stack, phone.call_sid)
    assert_heard_in_full(phone)


def test_a_failed_capture_at_the_limit_transfers_with_a_reason(stack, fake_twilio):  # noqa: F811
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press(BAD_LUHN)
            await phone.wait_bot()  # that card number doesn't look right; let's try again
            await phone.press(BAD_LUHN)  # two attempts per field: the capture fails
            await phone.wait_bot()  # we couldn't take those details; no payment; transfer
            await phone.wait_ended(30)
            return phone

    phone = run(call())
    assert rows(stack.engine, Payment) == []
    [transfer] = transfers(stack, phone.call_sid)
    assert transfer["reason"] == "capture_failed"
    [update] = fake_twilio.calls(phone.call_sid)
    assert "<Dial" in update.form["Twiml"]
    assert "transfer" in (call_row(stack, phone.call_sid).ended_reason or "")
    said = bot_said(stack, phone.call_sid)
    assert not any("card or bank account" in text.lower() for text in said[-3:]), said
    assert_heard_in_full(phone)  # "that doesn't look right", "we couldn't take those details"


def test_star_cancels_and_a_silent_field_times_out(stack, fake_twilio):  # noqa: F811
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press("5555")
            await phone.press("*")  # cancel: back to the method question, nothing counted
            await phone.wait_bot()  # okay, I've stopped; card or bank account?
            await phone.say("card")
            await phone.wait_bot()  # to confirm ... shall I go ahead?
            await phone.say("yes")
            await phone.wait_bot()  # key in your card number
            await phone.wait(9.0)  # past the profile's 8 s to start: I didn't get it
            await phone.wait_bot()
            await phone.wait(9.0)  # the second silent attempt fails the capture: an agent
            await phone.wait_ended(40)
            return phone

    phone = run(call())
    assert rows(stack.engine, Payment) == []
    said = bot_said(stack, phone.call_sid)
    assert any("didn't take any card details" in text for text in said), said
    [transfer] = transfers(stack, phone.call_sid)
    assert transfer["reason"] == "capture_failed"
