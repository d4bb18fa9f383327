"""Reminders end to end: ``paybot up`` with its reminder job on, the local Twilio fake, and the
real bot. The due demo account gets one reminder text; ``paybot reminders run`` from "cron"
beside the bridge makes no second one; a reply of PAY over the signed SMS webhook leads into
paying with the stored card, and the reply is noted on the reminder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from paybot.db.models import Payment, PaymentStatus, Reminder
from tests.fake_twilio import FakeTwilio
from tests.helpers import rows
from tests.stack import REPO, Stack, serve, wait_until
from twilio_sim.webhook import new_sid
from voice_bridge.twilio.signature import sign

pytestmark = pytest.mark.services
JAMES = "+15555550100"  # demo account 100200300: $321.72 due in 5 days, Visa ending 4242
BUSINESS_LINE = "+15555550000"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, twilio) -> Iterator[Stack]:
    stack = Stack.configure(
        tmp_path_factory.mktemp("reminders"), **twilio.env(), PAYBOT_SMS_FROM=BUSINESS_LINE,
        PAYBOT_SCHEDULER_INTERVAL_S="0", PAYBOT_SMS_SEND_INTERVAL_S="0.3",
        PAYBOT_SMS_QUIET_HOURS="", PAYBOT_REMINDER_INTERVAL_S="1",
        PAYBOT_REMINDER_OFFSETS_DAYS="5", PAYBOT_REMINDER_RATE_PER_S="50",
        PAYBOT_SMS_TIME_ZONE="Etc/UTC",  # the day the demo data counts from
        PAYBOT_BUSINESS_NAME="Acme Water",
    )  # fmt: skip
    yield from serve(stack)


def text(stack: Stack, twilio: FakeTwilio, body: str) -> str:
    stack.track(f"sms:{JAMES}")
    url = stack.bridge_url + "/twilio/sms"
    params = {"MessageSid": new_sid("SM"), "From": JAMES, "To": BUSINESS_LINE, "Body": body,
              "AccountSid": twilio.account_sid}  # fmt: skip
    answer = requests.post(url, data=params, timeout=60,
                           headers={"X-Twilio-Signature": sign(url, params, twilio.auth_token)})
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_reminder_then_pay_by_reply(stack, twilio):
    assert wait_until(lambda: twilio.messages(), 30), stack.log_tail()
    [message] = twilio.messages()
    assert message.form["To"] == JAMES
    assert message.form["Body"].startswith("Acme Water: $321.72 for account ending 0300 is due")
    assert "Reply PAY to pay $321.72 with Visa ending 4242." in message.form["Body"]

    cron = subprocess.run([sys.executable, "-m", "paybot_cli", "reminders", "run"], cwd=REPO,
                          env=stack.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cron.returncode == 0, cron.stderr
    assert "nothing due" in cron.stdout

    assert "ZIP code" in text(stack, twilio, "PAY")
    assert "$321.72" in text(stack, twilio, "94107")
    assert "Visa ending 4242" in text(stack, twilio, "yes")
    assert "To confirm" in text(stack, twilio, "yes")
    text(stack, twilio, "yes")
    [payment] = [p for p in rows(stack.engine, Payment) if p.status == PaymentStatus.SUCCEEDED]
    assert (payment.amount, payment.method_last4, payment.channel) == (
        Decimal("321.72"), "4242", "sms")  # fmt: skip
    [reminder] = rows(stack.engine, Reminder)
    assert (reminder.reply, reminder.offset_days) == ("pay", 5)
    assert len([m for m in twilio.messages() if "Reply PAY" in m.form["Body"]]) == 1
