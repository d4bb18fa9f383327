"""Whole calls that take a new card through Twilio ``<Pay>`` (``PAYBOT_CAPTURE=twilio_pay``).

``paybot up`` runs the Rasa server, the action server and the bridge; the caller
(:class:`twilio_sim.CallerSession`) talks over Media Streams until the bot asks for a new
card; the bridge then updates the call through the production Twilio REST client with
``<Pay>`` TwiML, which the fake Twilio (tests/fake_twilio.py) parses. The test plays
``<Pay>``'s side: signed status and action callbacks to the bridge, and the stream back into
the same conversation, where the caller hears the outcome read from the payments table.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from paybot.db.models import Payment, PaymentStatus
from tests.fake_twilio import FakePay, FakeTwilio
from tests.helpers import account, rows
from tests.test_voice_calls import (
    ROBERT,
    assert_no_card_digits_anywhere,
    assert_no_stutter,
    bot_said,
    call_row,
    dial,
    run,
    voice_stack,
)
from twilio_sim import CallerSession

pytestmark = pytest.mark.services
CONNECTOR = "Paybot_Test"


@pytest.fixture(scope="module")
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(
        tmp_path_factory, fake_twilio, PAYBOT_CAPTURE="twilio_pay", PAYBOT_PAY_CONNECTOR=CONNECTOR
    )


@pytest.fixture(autouse=True)
def fresh_data(stack, fake_twilio):
    stack.reset_data()
    fake_twilio.reset()


async def to_pay(phone: CallerSession, fake: FakeTwilio) -> FakePay:
    """Robert asks to pay with a new card; the bridge hands the call to <Pay>."""
    await phone.wait_bot()  # the billing ZIP code, please
    await phone.press("60601#")
    await phone.wait_bot()  # Hello Robert ...
    await phone.say("yes")
    await phone.wait_bot()  # your Mastercard ending 4444? or a new card ...
    await phone.say("no")
    await phone.wait_bot()  # card or bank account?
    await phone.say("card")
    await phone.wait_bot()  # to confirm ... shall I go ahead?
    await phone.say("yes")
    await phone.wait_bot()  # I'll now take your card details securely ...
    await asyncio.wait_for(phone.line.wait_ended(), 30)  # the bridge ended this stream
    return await asyncio.to_thread(fake.pay, phone.call_sid)


def the_payment(stack) -> Payment:
    [payment] = rows(stack.engine, Payment)
    return payment


def test_a_new_card_paid_through_pay_returns_to_the_conversation(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            pay = await to_pay(phone, fake_twilio)
            payment = the_payment(stack)
            assert payment.status == PaymentStatus.PENDING  # opened before Twilio heard of it
            # What the bridge asked of Twilio, through its REST client.
            [update] = fake_twilio.calls(phone.call_sid)
            assert "<Pay" in update.form["Twiml"]
            assert pay.attributes["paymentConnector"] == CONNECTOR
            assert pay.attributes["paymentMethod"] == "credit-card"
            assert pay.attributes["chargeAmount"] == f"{payment.total:.2f}"
            assert pay.attributes["currency"] == "usd"
            assert pay.attributes["description"] == f"paybot payment {payment.id}"
            assert pay.action.startswith(stack.env.get("PAYBOT_PUBLIC_URL", "http"))
            assert pay.after == ("Redirect",)
            # A forged result (no signature) is refused and changes nothing.
            forged = await fake_twilio.finish_pay(
                pay, "success", signed=False, PaymentConfirmationCode="ch_forged"
            )
            assert forged.status == 403
            assert the_payment(stack).status == PaymentStatus.PENDING
            for step in ("payment-card-number", "expiration-date", "security-code",
                         "postal-code", "payment-processing"):  # fmt: skip
                assert (await fake_twilio.pay_progress(pay, step)).status == 204
            back = await fake_twilio.finish_pay(
                pay, "success", caller=phone, PaymentConfirmationCode="ch_e2e_1"
            )
            assert back.status == 200 and "<Stream" in back.body
            await phone.wait_bot()  # the outcome, and would you like a receipt?
            # Twilio sending the result again changes nothing.
            again = await fake_twilio.finish_pay(pay, "success", PaymentConfirmationCode="ch_x")
            assert again.status == 409
            await phone.say("no")  # no receipt
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    payment = the_payment(stack)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.gateway == "twilio_pay"
    assert payment.gateway_transaction_id == "ch_e2e_1"
    assert payment.conversation_id == f"call:{phone.call_sid}"
    said = bot_said(stack, phone.call_sid)
    assert said.count("Welcome to the payment line.") == 1  # one conversation, not two
    spoken = " ".join(said)
    assert "confirmation number is" in spoken, said
    digits = re.sub(r"\D", "", spoken.split("confirmation number is", 1)[1].split(".")[0])
    assert digits == payment.confirmation_number
    assert any("receipt" in text for text in said)
    assert_no_stutter(phone.result())
    assert "pay" not in (call_row(stack, phone.call_sid).ended_reason or "").lower()
    assert_no_card_digits_anywhere(stack, phone.call_sid)


def test_a_declined_card_in_pay_is_explained_and_another_method_offered(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            pay = await to_pay(phone, fake_twilio)
            await fake_twilio.pay_progress(pay, "payment-processing")
            back = await fake_twilio.finish_pay(
                pay, "payment-connector-error", caller=phone,
                PaymentError="card is declined", ConnectorError="insufficient_funds",
            )  # fmt: skip
            assert back.status == 200
            await phone.wait_bot()  # declined: not enough funds; how would you like to pay?
            await phone.hangup()
            return phone

    phone = run(call())
    payment = the_payment(stack)
    assert payment.status == PaymentStatus.DECLINED
    assert payment.decline_code == "insufficient_funds"
    said = " ".join(bot_said(stack, phone.call_sid))
    assert "there weren't enough funds available" in said, said


def test_a_hang_up_during_pay_fails_the_payment_and_ends_the_call(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            pay = await to_pay(phone, fake_twilio)
            await fake_twilio.pay_progress(pay, "payment-card-number")
            ended = await fake_twilio.finish_pay(pay, "caller-hung-up", caller=phone)
            assert ended.status == 200 and "<Stream" not in ended.body
            return phone

    phone = run(call())
    payment = the_payment(stack)
    assert (payment.status, payment.decline_code) == (PaymentStatus.FAILED, "caller_hung_up")
    assert str(account(stack.engine, "300400500").balance) == "1250.00"
    said = bot_said(stack, phone.call_sid)
    assert not any("was successful" in text for text in said)
