"""The secure capture's acceptance matrix: every scenario a phone call, over the real Media
Streams protocol, on the embedded sandbox and on Stripe (localstripe, started by the tests).

For each gateway two stacks run at once (``paybot up``, as in tests/test_voice_calls.py), each
with its own payment profile, and every scenario call is placed on them concurrently (one
thread per call, twilio_sim's ``CallerSession``), each caller with an account of their own:

- ``ONE_STEP``: one step, confirm per field, Visa/Mastercard/Amex only (Discover is refused),
  no ZIP for Mastercard, two attempts per field, 8 s to start a field. A new Visa, an Amex
  (4-digit code), a checking account; the expiry keyed again with 2 (on a Mastercard: no ZIP
  asked); ``*``; a bad Luhn; an expired card; a brand not accepted; a timeout; too many
  attempts.
- ``TWO_STEP``: two steps (the capture tokenizes, the action server charges the one-time token,
  which is gone afterwards), confirm at the end. A new Visa, a savings account, and each of
  the sandbox's decline test cards (``paybot/gateway/sandbox_outcomes.py``; localstripe
  declines the same numbers with the same codes), one call each.

Each scenario checks what the bot said (Rasa's tracker), what the capture did (the bridge's
log: field names and reason codes, never digits) and the payments, tokens and the gateway's
charges afterwards: charged once, nothing charged, the token gone.

What localstripe cannot do is checked as the refusal the caller gets on the Stripe gateway:
a bank account is refused (``bank_not_supported``: "we can only take card payments", nothing
charged, another method offered); localstripe takes only 16-digit numbers, so an American
Express card fails there with nothing charged (Stripe itself takes them).
A ``<Pay>`` call that returns to the conversation with a confirmation number is
tests/test_voice_twilio_pay.py (its charge is the Pay Connector's, not paybot's gateway).

Card numbers are generated from a seed printed at the start (``PAYBOT_TEST_SEED`` repeats it).
"""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlmodel import Session, select

from actions.wording import DECLINE_REASONS
from paybot.db.models import Account, Payment, PaymentStatus
from paybot.gateway.sandbox_outcomes import CARD_OUTCOMES, decline_code
from tests import capture_calls as cc
from tests import cardscan
from tests.stack import Stack
from tests.test_voice_calls import (  # noqa: F401 - fixtures
    assert_no_card_digits_anywhere,
    dial,
    fake_twilio,
    voice_stack_env,
)
from twilio_sim.voice import EspeakVoice

pytestmark = pytest.mark.services

ONE_STEP = """\
payment_style: one_step
confirm: per_field
accepted_brands: [visa, mastercard, amex]
fields_by_brand:
  mastercard: {postal_code: false}
max_attempts_per_field: 2
timeouts: {inter_digit_s: 4, field_start_s: 8}
"""
TWO_STEP = """\
payment_style: two_step
confirm: at_end
"""
CODE, AMEX_CODE = cardscan.keyed_code("739"), cardscan.keyed_code("7391")
ROUTING, BANK_ACCOUNT = "110000000", "000123456789"
ENDINGS = ("was successful", "didn't go through", "went wrong", "No payment was taken",
           "didn't take any card details", "waiting to hear back")
SUCCESS, NOTHING = "was successful", None
DECLINES = sorted(n for n in CARD_OUTCOMES)


@dataclass
class Call:
    """One scenario: on which stack, what the caller keys, and what happened."""

    profile: str  # "one" or "two"
    script: Any  # async (phone) -> None, from the capture's first question
    method: str = "card"
    account_type: str = "checking"
    phone_number: str = ""
    call_sid: str = ""
    error: BaseException | None = None
    said: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    account_id: int = 0


def scenarios(rng: random.Random) -> dict[str, Call]:
    visa, visa2 = cc.card_number("visa", rng), cc.card_number("visa", rng)
    amex, mastercard = cc.card_number("amex", rng), cc.card_number("mastercard", rng)
    discover, expired = cc.card_number("discover", rng), cc.card_number("visa", rng)
    bad = [cc.bad_luhn("mastercard", rng) for _ in range(3)]

    def keys(*entries: str, end: tuple[str, ...] = ENDINGS):
        async def script(phone, stack):
            await cc.steps(phone, *entries)
            if end:
                await cc.until_said(stack, phone, *end)
        return script

    async def silent(phone, stack):
        await phone.wait(10.0)  # past the profile's 8 s to start the card number
        await phone.wait_bot()  # I didn't get the card number; let's try again

    calls = {
        "new_visa": Call("one", keys(visa + "#", "1", "1230", "1", CODE, "1", cc.ZIP, "1")),
        "amex_4_digit_code": Call("one", keys(amex, "1", "1230", "1", AMEX_CODE, "1", cc.ZIP,
                                              "1")),
        "bank_checking": Call("one", keys(ROUTING, "1", BANK_ACCOUNT + "#", "1"), "bank"),
        "reenter_expiry_no_zip": Call("one", keys(mastercard, "1", "1230", "2", "1231", "1",
                                                  CODE, "1")),
        "star_cancels": Call("one", keys("5555*", end=("didn't take any card details",))),
        "bad_luhn": Call("one", keys(bad[0], end=())),
        "expired_card": Call("one", keys(expired + "#", "1", "0120", end=())),
        "brand_not_accepted": Call("one", keys(discover + "#", end=())),
        "timeout": Call("one", silent),
        "too_many_attempts": Call("one", keys(bad[1], bad[2], end=("No payment was taken",))),
        "two_step_visa": Call("two", keys(visa2 + "#", "1230", CODE, cc.ZIP, "1", "2")),
        "bank_savings_two_step": Call("two", keys(ROUTING, BANK_ACCOUNT + "#", "1", "2"),
                                      "bank", "savings"),
    }
    for number in DECLINES:
        card = cardscan.keyed_card(number)
        calls[f"decline_{number[-4:]}"] = Call(
            "two", keys(card + "#", "1230", CODE, cc.ZIP, "1", "2"))
    return calls


def place(stack: Stack, fake, call: Call) -> None:
    async def run():
        # The default caller voice, not the run's: this module is about the keypad, and the
        # speech on the way to the capture is 21 callers at once (en-us+klatt3's "no" at the
        # stored-method question went unheard there; the voice modules cover the pool).
        async with dial(stack, fake, call.phone_number, EspeakVoice()) as phone:
            try:
                await cc.to_capture(phone, stack, call.method, call.account_type)
                await call.script(phone, stack)
            finally:
                call.call_sid = phone.call_sid
                await phone.hangup()

    try:
        asyncio.run(asyncio.wait_for(run(), 360))
    except BaseException as exc:  # reported by the scenario's own test
        call.error = exc


@dataclass
class Matrix:
    gateway: str
    stacks: dict[str, Stack]
    calls: dict[str, Call]
    localstripe: Any = None

    def call(self, name: str) -> Call:
        call = self.calls[name]
        if call.error is not None:
            raise AssertionError(f"{name}: the call failed; said {call.said}; capture "
                                 f"{call.log}") from call.error
        return call

    def stack(self, name: str) -> Stack:
        return self.stacks[self.calls[name].profile]


@pytest.fixture(scope="module", params=["sandbox", "stripe"])
def matrix(request, tmp_path_factory, fake_twilio):  # noqa: F811
    emulator = request.getfixturevalue("localstripe") if request.param == "stripe" else None
    extra = emulator.env() if emulator is not None else {}
    stacks = {}
    for name, text in (("one", ONE_STEP), ("two", TWO_STEP)):
        profile = tmp_path_factory.mktemp("profile") / "payment_profile.yml"
        profile.write_text(text, encoding="utf-8")
        stacks[name] = Stack.configure(tmp_path_factory.mktemp("matrix"),
                                       **voice_stack_env(fake_twilio),
                                       PAYBOT_PAYMENT_PROFILE=str(profile), **extra)
    starts = [threading.Thread(target=s.start) for s in stacks.values()]
    try:
        for t in starts:
            t.start()
        for t in starts:
            t.join()
        for s in stacks.values():
            if s.engine is None:
                raise RuntimeError("a stack did not start:\n" + s.log_tail())
        calls = scenarios(random.Random(cc.seed()))
        for profile, stack in stacks.items():
            mine = [c for c in calls.values() if c.profile == profile]
            for call, phone in zip(mine, cc.add_callers(stack, len(mine)), strict=True):
                call.phone_number = phone
        with ThreadPoolExecutor(len(calls)) as pool:
            for call in calls.values():
                pool.submit(place, stacks[call.profile], fake_twilio, call)
        for call in calls.values():
            collect(stacks[call.profile], call)
        yield Matrix(request.param, stacks, calls, emulator)
    finally:
        codes = [s.stop() for s in stacks.values()]
        for s in stacks.values():
            if s.engine is not None:
                s.engine.dispose()
    assert codes == [0, 0], [s.log_tail() for s in stacks.values()]


def collect(stack: Stack, call: Call) -> None:
    with Session(stack.engine) as session:
        account = session.exec(select(Account).where(Account.phone == call.phone_number)).one()
        call.account_id = account.id
        call.payments = list(session.exec(select(Payment).where(
            Payment.account_id == account.id)).all())
    if call.call_sid:
        call.said = cc.said(stack, call.call_sid)
        call.log = cc.capture_log(stack, call.call_sid)


# --- the checks ----------------------------------------------------------------------------
def charged_once(matrix: Matrix, name: str, brand: str) -> Payment:
    call, stack = matrix.call(name), matrix.stack(name)
    assert len(call.payments) == 1, (call.payments, call.said, call.log)
    [payment] = call.payments
    assert payment.status == PaymentStatus.SUCCEEDED, (payment.status, payment.decline_code)
    assert payment.method_brand == brand
    assert payment.gateway == matrix.gateway
    assert cc.gateway_charges(stack, matrix.localstripe, payment.idempotency_key) == [
        "succeeded"]
    assert any(SUCCESS in t and "confirmation number is" in t for t in call.said), call.said
    assert_no_card_digits_anywhere(stack, call.call_sid)
    return payment


def nothing_charged(matrix: Matrix, name: str) -> Call:
    call = matrix.call(name)
    for payment in call.payments:  # a payment opened and refused, if any
        assert payment.status == PaymentStatus.FAILED
        assert "succeeded" not in cc.gateway_charges(
            matrix.stack(name), matrix.localstripe, payment.idempotency_key)
    assert_no_card_digits_anywhere(matrix.stack(name), call.call_sid)
    return call


def refused_on_stripe(matrix: Matrix, name: str, code: str) -> None:
    call = nothing_charged(matrix, name)
    [payment] = call.payments
    assert payment.decline_code == code
    assert not any(SUCCESS in t for t in call.said)


def tokens_gone(matrix: Matrix, name: str, payment: Payment) -> None:
    """Two steps: the one-time token was made for this payment, used and deleted."""
    call, stack = matrix.call(name), matrix.stack(name)
    [token] = cc.one_time_tokens(stack, call.account_id)
    assert payment.payment_method_id == token.id and token.deleted_at is not None
    assert cc.token_gone(stack, matrix.localstripe, token.token)


def test_a_new_visa_is_charged_once_and_nothing_is_kept(matrix):
    payment = charged_once(matrix, "new_visa", "visa")
    call = matrix.call("new_visa")
    assert "zip accepted" in call.log and payment.gateway_reference == "one-step"
    assert cc.one_time_tokens(matrix.stack("new_visa"), call.account_id) == []


def test_an_amex_with_a_four_digit_code(matrix):
    if matrix.gateway == "stripe":  # localstripe takes 16-digit numbers only
        call = nothing_charged(matrix, "amex_4_digit_code")
        assert any("went wrong" in t for t in call.said), (call.said, call.payments)
        return
    payment = charged_once(matrix, "amex_4_digit_code", "amex")
    assert "cvc accepted" in matrix.call("amex_4_digit_code").log
    assert payment.method_last4


@pytest.mark.parametrize("name, kind", [("bank_checking", "checking"),
                                        ("bank_savings_two_step", "savings")])
def test_a_bank_account(matrix, name, kind):
    if matrix.gateway == "stripe":
        refused_on_stripe(matrix, name, "bank_not_supported")
        said = matrix.call(name).said
        assert any("we can only take card payments" in t for t in said), said
        return
    payment = charged_once(matrix, name, kind)
    assert payment.method_last4 == BANK_ACCOUNT[-4:]
    tokens_gone(matrix, name, payment)  # a bank account is always charged through a token


def test_reentering_the_expiry_keeps_the_other_fields_and_mastercard_has_no_zip(matrix):
    payment = charged_once(matrix, "reenter_expiry_no_zip", "mastercard")
    log = matrix.call("reenter_expiry_no_zip").log
    assert "expiry re-entry 1" in log and log.count("card_number accepted") == 1, log
    assert not any(line.startswith("zip") for line in log), log  # the profile: no ZIP
    if matrix.localstripe is not None:
        intent = matrix.localstripe.get(
            f"/v1/payment_intents/{payment.gateway_transaction_id}")
        method = matrix.localstripe.get(f"/v1/payment_methods/{intent['payment_method']}")
        assert method["card"]["exp_year"] == 2031  # the expiry keyed the second time


@pytest.mark.parametrize("name, line, bot", [
    ("star_cancels", "cancelled (caller_cancelled)", "didn't take any card details"),
    ("bad_luhn", "card_number attempt 1 failed (invalid-card-number)", None),
    ("expired_card", "expiry attempt 1 failed (expired-card)", None),
    ("brand_not_accepted", "card_number attempt 1 failed (invalid-card-type)", None),
    ("timeout", "card_number attempt 1 failed (timeout)", None),
    ("too_many_attempts", "failed (too_many_attempts)", "No payment was taken"),
])
def test_a_capture_that_takes_nothing(matrix, name, line, bot):
    call = nothing_charged(matrix, name)
    assert call.payments == []
    assert line in call.log, call.log
    if bot is not None:
        assert any(bot in t for t in call.said), call.said


def test_two_steps_charge_the_one_time_token_and_delete_it(matrix):
    payment = charged_once(matrix, "two_step_visa", "visa")
    tokens_gone(matrix, "two_step_visa", payment)


@pytest.mark.parametrize("number", DECLINES)
def test_each_decline_test_card(matrix, number):
    name = f"decline_{number[-4:]}"
    call = matrix.call(name)
    [payment] = call.payments
    code = decline_code(CARD_OUTCOMES[number])
    assert (payment.status, payment.decline_code) == (PaymentStatus.DECLINED, code)
    charges = cc.gateway_charges(matrix.stack(name), matrix.localstripe,
                                 payment.idempotency_key)
    assert "succeeded" not in charges and len(charges) == 1, charges
    assert any(DECLINE_REASONS[code] in t for t in call.said), call.said
    tokens_gone(matrix, name, payment)
    assert_no_card_digits_anywhere(matrix.stack(name), call.call_sid)
