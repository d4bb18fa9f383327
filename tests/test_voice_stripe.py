"""A keyed card payment over Twilio Media Streams, charged on Stripe (localstripe, started by
the tests) through the real stack: one step (the card charged as keyed, nothing kept) and two
steps (the capture tokenizes, the action server charges the token, the one-time token is gone
afterwards). Calls are placed as in ``tests/test_voice_calls.py``."""

from __future__ import annotations

import pytest

from paybot.db.models import Payment, PaymentMethod, PaymentStatus, StripeRef
from tests.helpers import rows
from tests.test_voice_calls import (
    ROBERT,
    SECURITY_CODE,
    TEST_CARD,
    _to_capture,
    assert_no_card_digits_anywhere,
    bot_said,
    dial,
    run,
    voice_stack,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def fake_twilio():
    from tests.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module", params=["one_step", "two_step"])
def stack(request, tmp_path_factory, fake_twilio, localstripe):
    yield from voice_stack(
        tmp_path_factory, fake_twilio, **localstripe.env(), PAYBOT_PAYMENT_STYLE=request.param
    )


def test_a_keyed_card_is_charged_on_stripe(stack, fake_twilio, localstripe):
    stack.reset_data()
    two_step = stack.env["PAYBOT_PAYMENT_STYLE"] == "two_step"

    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press(TEST_CARD + "#")
            for keys in ("1230", SECURITY_CODE, "60601", "1"):
                await phone.wait_bot()
                await phone.press(keys)
            if two_step:
                await phone.wait_bot()  # keep this card on file? 1 or 2
                await phone.press("2")
            await phone.wait_bot()  # processing, then the bot's result
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.method_last4 == "4444"
    assert payment.gateway == "stripe" and payment.gateway_transaction_id.startswith("pi_")
    intent = localstripe.get(f"/v1/payment_intents/{payment.gateway_transaction_id}")
    assert intent["status"] == "succeeded" and intent["amount"] == int(payment.total * 100)
    assert intent["metadata"]["paybot_key"] == payment.idempotency_key
    assert any("was successful" in text for text in bot_said(stack, phone.call_sid))
    methods = [m for m in rows(stack.engine, PaymentMethod) if m.saved_at is None]
    if two_step:  # the one-time token was made, used and deleted
        [token] = methods
        assert token.deleted_at is not None and payment.payment_method_id == token.id
        deleted = [r.ref for r in rows(stack.engine, StripeRef) if r.kind == "deleted"]
        assert token.token in deleted
        assert localstripe.get(f"/v1/payment_methods/{token.token}")["customer"] is None
    else:
        assert methods == [] and payment.gateway_reference == "one-step"
    assert_no_card_digits_anywhere(stack, phone.call_sid)
