"""Text and outreach end to end, in CRM mode: ``paybot up`` with ``PAYBOT_CRM=http`` against a
local CRM server (tests/fake_crm.py) and the local Twilio fake (tests/fake_twilio.py), both
started by the test.

* The customer is only in the CRM: identified by text (signed SMS webhooks to the bridge), told
  the balance, refreshed when the CRM changes it, and paying by card keyed into the voice
  capture of a real call (the machinery of tests/test_voice_calls.py); during a CRM outage the
  bot knows the customer but will not vouch for a balance.
* STOP, HELP and START over the same webhook: after STOP neither outreach nor the receipt the
  caller asks for is sent; after START outreach goes out again and Twilio's status callbacks
  record its delivery."""

from __future__ import annotations

import asyncio
import html
import os
import random
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from sqlmodel import Session

from paybot.db.models import Account, OutboundMessage, Payment, PaymentStatus
from paybot.settings import load_settings
from paybot.sms.segments import segments
from tests import cardscan
from tests.fake_crm import FakeCrm, crm_account
from tests.fake_twilio import FakeTwilio
from tests.helpers import account, rows, text_bridge
from tests.stack import RASA_TOKEN, Stack, serve, wait_until

pytestmark = pytest.mark.services

CASEYS = iter(f"+1404555{n:04d}" for n in range(100, 10000))  # one per test: Rasa keeps
# each number's conversation for the whole module
NUMBER = "700800900"
BUSINESS_LINE = "+15555550000"
TEST_CARD = cardscan.keyed_card("5555555555554444")
SECURITY_CODE = cardscan.keyed_code("739")
SEED = os.environ.get("PAYBOT_TEST_SEED", "20261205")


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeCrm, FakeTwilio]]:
    with FakeCrm() as crm, FakeTwilio() as twilio:
        yield crm, twilio


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fakes) -> Iterator[Stack]:
    crm, twilio = fakes
    yield from serve(Stack.configure(
        tmp_path_factory.mktemp("crm"), **crm.env(), **twilio.env(),
        PAYBOT_SMS_FROM=BUSINESS_LINE, PAYBOT_SCHEDULER_INTERVAL_S="0",
        PAYBOT_SMS_SEND_INTERVAL_S="0.3", PAYBOT_SMS_QUIET_HOURS="",  # any hour of the run
        PAYBOT_BUSINESS_NAME="Acme Water", PAYBOT_SUPPORT_CONTACT="call 1-800-555-0199",
    ))  # fmt: skip


@pytest.fixture
def casey(stack, fakes) -> str:
    """Casey's phone number for this test; Casey is in the CRM only."""
    crm, twilio = fakes
    phone = next(CASEYS)
    stack.reset_data()
    twilio.reset()
    crm.down = False
    crm.accounts.clear()
    crm.accounts[NUMBER] = crm_account(NUMBER, phone=phone)
    return phone


def text(stack: Stack, twilio: FakeTwilio, phone: str, body: str, key: str | None = None) -> str:
    """The bridge's TwiML answer to ``body`` texted from ``phone`` (signed with ``key``)."""
    stack.track(f"sms:{phone}")
    answer = text_bridge(stack.bridge_url, twilio, phone, BUSINESS_LINE, body, key)
    assert answer.status_code == (200 if key is None else 403), answer.text
    return answer.text


def queue_outreach(stack: Stack, phone: str) -> int:
    """A message nobody asked for just now (what a reminder run queues)."""
    with Session(stack.engine) as session:
        message = OutboundMessage(to=phone, kind="reminder", body="Your bill is due soon.")
        session.add(message)
        session.commit()
        return message.id


def outbox(stack: Stack, message_id: int) -> OutboundMessage:
    with Session(stack.engine) as session:
        return session.get(OutboundMessage, message_id)


def test_stop_help_and_start_over_the_webhook(stack, fakes, casey):
    _, twilio = fakes
    help_answer = text(stack, twilio, casey, "help")
    assert "Acme Water" in help_answer and "1-800-555-0199" in help_answer
    assert "unsubscribed" in text(stack, twilio, casey, " Stop ")
    assert "<Message>" not in text(stack, twilio, casey, "what's my balance?")
    skipped = queue_outreach(stack, casey)
    assert wait_until(lambda: outbox(stack, skipped).status == "opted_out", 15)
    assert twilio.messages() == []
    text(stack, twilio, casey, "START", key="forged")  # refused: Casey stays opted out
    assert "<Message>" not in text(stack, twilio, casey, "hi")
    assert "resubscribed" in text(stack, twilio, casey, "start")
    assert "ZIP code on your account" in text(stack, twilio, casey, "what's my balance?")
    sent = queue_outreach(stack, casey)
    assert wait_until(lambda: outbox(stack, sent).status == "delivered", 15), outbox(stack, sent)
    [message] = twilio.messages()
    assert (message.form["To"], message.sid) == (casey, outbox(stack, sent).provider_id)
    assert sorted(status for _, status, answer in twilio.callbacks if answer == 204) == [
        "delivered", "sent"]
    assert outbox(stack, skipped).status == "opted_out"  # never sent later


def test_a_crm_customer_is_identified_by_text_and_told_a_fresh_balance(stack, fakes, casey):
    crm, twilio = fakes
    assert "ZIP code on your account" in text(stack, twilio, casey, "what's my balance?")
    answer = text(stack, twilio, casey, "30301")
    assert "Casey" in answer and "$140.25" in answer
    mirrored = account(stack.engine, NUMBER)
    assert (mirrored.phone, mirrored.crm_balance) == (casey, Decimal("140.25"))
    crm.accounts[NUMBER] |= {"balance": "152.40", "due_date": "2026-12-28"}
    answer = text(stack, twilio, casey, "what's my balance")
    assert "$152.40" in answer and "December 28" in answer
    assert account(stack.engine, NUMBER).balance == Decimal("152.40")
    assert len(rows(stack.engine, Account)) == 7  # the six demo accounts and Casey's mirror


def test_during_a_crm_outage_the_balance_is_not_vouched_for(stack, fakes, casey):
    crm, twilio = fakes
    text(stack, twilio, casey, "hi")  # the CRM answers: Casey is mirrored
    crm.down = True
    text(stack, twilio, casey, "what's my balance?")
    answer = text(stack, twilio, casey, "30301")
    assert "can't confirm your current balance" in answer and "$140.25" not in answer
    assert rows(stack.engine, Payment) == []


def test_a_crm_customer_pays_by_card_keyed_on_a_call(stack, fakes, casey):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from twilio_sim import CallerSession
    from twilio_sim.voice import EspeakVoice

    crm, twilio = fakes
    assert "unsubscribed" in text(stack, twilio, casey, "STOP")  # no texts, not even a receipt
    settings = load_settings(
        **twilio.settings_overrides(), bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"])
    )

    async def call():
        async with CallerSession(settings=settings, from_=casey, voice=EspeakVoice(),
                                 wait_timeout_s=45.0) as phone:  # fmt: skip
            said = [await phone.wait_bot()]  # the billing ZIP code, please
            await phone.press("30301#")
            said.append(await phone.wait_bot())  # Hello Casey ... $140.25 now?
            for words in ("yes", "card", "yes"):  # pay now; by card; go ahead
                await phone.say(words)
                said.append(await phone.wait_bot())
            for keys in (TEST_CARD + "#", "1230", SECURITY_CODE, "30301", "1"):
                await phone.press(keys)
                said.append(await phone.wait_bot())
            said.append(await phone.wait_bot())  # the result after "processing"
            await phone.hangup()
            return phone

    phone = asyncio.run(asyncio.wait_for(call(), 300))
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED, stack.log_tail()
    assert (payment.amount, payment.method_last4) == (Decimal("140.25"), "4444")
    mirrored = account(stack.engine, NUMBER)
    assert payment.account_id == mirrored.id and mirrored.balance == Decimal("0.00")
    # Casey texted STOP: no receipt by text is offered (the outbox would skip one anyway).
    tracker = requests.get(f"{stack.rasa_url}/conversations/call:{phone.call_sid}/tracker",
                           params={"token": RASA_TOKEN}, timeout=30).json()  # fmt: skip
    said = [e["text"] for e in tracker["events"] if e["event"] == "bot" and e.get("text")]
    assert any("was successful" in line for line in said), said
    assert not any("receipt" in line for line in said), said
    assert rows(stack.engine, OutboundMessage) == [] and twilio.messages() == []
    # The CRM has not posted the payment yet: the bot does not offer the balance again.
    text(stack, twilio, casey, "start")
    text(stack, twilio, casey, "what's my balance?")
    answer = text(stack, twilio, casey, "30301")
    assert "no balance to pay" in answer and "$140.25" not in answer
    assert TEST_CARD not in stack.all_output()


JAMES = "+15555550100"  # a demo account with a Visa ending 4242 on file, here also in the CRM


def messages_of(answer: str) -> list[str]:
    """The bodies of a TwiML answer's ``<Message>`` elements."""
    return [html.unescape(m) for m in re.findall(r"<Message>(.*?)</Message>", answer, re.S)]


@pytest.mark.parametrize("walk", range(3))
def test_a_known_customer_pays_with_the_stored_card_by_text(stack, fakes, walk):
    """Identify, choose an amount (seeded: FULL, MIN or a sum), YES to the card on file, YES to
    pay; every answer fits the SMS budget in GSM-7, none says press or asks about a receipt."""
    crm, twilio = fakes
    stack.reset_data()
    twilio.reset()
    crm.down = False
    crm.accounts.clear()
    crm.accounts["100200300"] = crm_account(
        "100200300", name="James Smith", phone=JAMES, billing_zip="94107", balance="321.72",
        minimum_payment="25.00",
    )  # fmt: skip
    rng = random.Random(f"{SEED}-{walk}")
    choice, amount = rng.choice(
        [("FULL", "321.72"), ("min", "25.00"), *[(f"{n}", f"{n}.00") for n in (7, 60, 150)]]
    )
    answers = []

    def say(body: str) -> str:
        answer = text(stack, twilio, JAMES, body)
        answers.append(answer)
        return " ".join(messages_of(answer))

    assert "ZIP code on your account" in say("hi")
    assert "ready to make your payment of $321.72 now? Reply YES or NO" in say("94107")
    options = say("no")
    assert "Reply FULL to pay $321.72" in options and "MIN" in options
    assert "Pay with your Visa ending 4242? Reply YES" in say(choice)
    confirm = say("yes")
    assert f"${amount}" in confirm and "Reply YES to pay" in confirm, confirm
    paid = say("YES")
    assert "was successful" in paid and "receipt" not in paid and "text message" not in paid
    [payment] = rows(stack.engine, Payment)
    assert (payment.status, payment.amount, payment.channel, payment.method_last4) == (
        PaymentStatus.SUCCEEDED, Decimal(amount), "sms", "4242")  # fmt: skip
    assert payment.confirmation_number in paid.replace("-", "").replace(" ", "")
    assert "Your balance is" in say("what's my balance?")
    assert "Goodbye" in say("bye")
    for answer in answers:
        for message in messages_of(answer):
            count = segments(message)
            assert count.encoding == "GSM-7" and count.segments <= 3, message
            assert "press" not in message.lower(), message
    assert rows(stack.engine, OutboundMessage) == []  # nothing texted besides the answers

