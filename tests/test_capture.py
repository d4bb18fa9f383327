"""DTMF secure capture: card and bank flows, validation, retries, timeouts, cancel, and proof
that digits never leak into reprs, progress snapshots, prompts or logs, and are wiped."""

from __future__ import annotations

import copy
import logging
import pickle
import re
from datetime import date
from types import SimpleNamespace

import pytest

from paybot.dialog.payloads import SecureCapture
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.profile import PaymentProfile
from voice_bridge.secure_capture.fields import DigitBuffer
from voice_bridge.secure_capture.session import (
    CaptureProgress,
    CaptureSession,
    Done,
    Prompt,
    Submit,
)
from voice_bridge.secure_capture.wording import prompt_text

VISA = "4242424242424242"
VISA_BAD_LUHN = "4242424242424241"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
ROUTING = "110000000"
BANK_ACCOUNT = "000123456789"
EXPIRY = "1230"  # December 2030
TODAY = date(2025, 6, 15)
SIX_DIGITS = re.compile(r"\d{6,}")


def _instruction(method: str = "card", **overrides: object) -> SecureCapture:
    fields: dict = {
        "method": method,
        "account_number": "A-1001",
        "amount": "321.72",
        "currency": "usd",
        "idempotency_key": "cap-1",
        **overrides,
    }
    return SecureCapture(**fields)


class Caller:
    """Drives a session with a fake clock and keeps every action and snapshot it produced."""

    def __init__(
        self, method: str = "card", profile: PaymentProfile | None = None, **overrides: object
    ) -> None:
        self.session = CaptureSession(
            _instruction(method, **overrides), profile=profile, today=lambda: TODAY
        )
        self.now = 1000.0
        self.actions: list[object] = []
        self.snapshots: list[str] = []
        self._record(self.session.start(self.now))

    def press(self, keys: str, gap: float = 0.4) -> list[object]:
        out: list[object] = []
        for key in keys:
            self.now += gap
            out += self._record(self.session.key(key, self.now))
        return out

    def wait(self, seconds: float) -> list[object]:
        self.now += seconds
        return self._record(self.session.tick(self.now))

    def _record(self, actions: list[object]) -> list[object]:
        self.actions += actions
        s = self.session
        self.snapshots += [repr(s), str(s), repr(s.progress), str(s.progress)]
        self.snapshots += [repr(a) for a in actions] + [str(a) for a in actions]
        return actions

    def buffers_wiped(self) -> bool:
        buffers = self.session._buffers.values()
        return all(b.wiped and not any(b._data) for b in buffers)

    def assert_no_digits_leaked(self) -> None:
        for text in self.snapshots:
            assert not SIX_DIGITS.search(text), text


def names(actions: list[object]) -> list[str]:
    """Prompt names, and ``submit``/``done:<status>`` for the other actions."""
    out = []
    for action in actions:
        if isinstance(action, Prompt):
            out.append(action.name)
        elif isinstance(action, Submit):
            out.append("submit")
        else:
            assert isinstance(action, Done)
            out.append(f"done:{action.status}")
    return out


def submitted(actions: list[object]) -> CardData | BankAccount:
    submit = [a for a in actions if isinstance(a, Submit)]
    assert len(submit) == 1
    return submit[0].method


@pytest.fixture(autouse=True)
def _no_digits_in_logs(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert not SIX_DIGITS.search(record.getMessage()), record.getMessage()


# -- happy paths ------------------------------------------------------------------------------


def test_card_happy_path() -> None:
    caller = Caller()
    assert caller.actions == [Prompt("card_number", {"attempt": 1})]
    assert caller.press(VISA) == []  # Visa may be 19 digits: wait for "#" or the timeout
    assert caller.press("#") == [Prompt("expiry", {"attempt": 1})]
    assert caller.press(EXPIRY) == [Prompt("cvc", {"attempt": 1, "brand": "visa"})]
    assert caller.press("123") == [Prompt("zip", {"attempt": 1})]
    assert caller.press("94107") == [Prompt("confirm_card", {"last4": "4242", "brand": "visa"})]
    actions = caller.press("1")
    assert names(actions) == ["processing", "submit"]
    card = submitted(actions)
    assert card == CardData(VISA, exp_month=12, exp_year=2030, cvc="123", postal_code="94107")
    assert caller.session.state == "submitting"
    assert caller.buffers_wiped()
    assert caller.press("1") == [] and caller.session.cancel() == []
    outcome = SimpleNamespace(status="succeeded")
    assert caller.session.finished(outcome) == [Done("submitted", "succeeded", outcome)]
    assert caller.session.state == "done"
    caller.assert_no_digits_leaked()


def test_amex_completes_at_15_digits_and_takes_4_digit_cvc() -> None:
    caller = Caller()
    assert caller.press(AMEX) == [Prompt("expiry", {"attempt": 1})]
    assert caller.press(EXPIRY) == [Prompt("cvc", {"attempt": 1, "brand": "amex"})]
    assert caller.press("123") == []
    assert caller.press("4") == [Prompt("zip", {"attempt": 1})]
    assert names(caller.press("10001")) == ["confirm_card"]
    card = submitted(caller.press("1"))
    assert isinstance(card, CardData)
    assert (card.number, card.cvc, card.last4) == (AMEX, "1234", "0005")
    assert caller.buffers_wiped()
    caller.assert_no_digits_leaked()


def test_mastercard_completes_at_16_digits() -> None:
    caller = Caller()
    assert caller.press(MASTERCARD) == [Prompt("expiry", {"attempt": 1})]
    assert caller.session.progress.brand == "mastercard"


def test_bank_happy_path() -> None:
    caller = Caller("bank", bank_account_type="savings")
    assert caller.actions == [Prompt("routing", {"attempt": 1})]
    assert caller.press(ROUTING) == [Prompt("bank_account", {"attempt": 1})]
    assert caller.press(BANK_ACCOUNT) == []
    assert caller.press("#") == [Prompt("confirm_bank", {"last4": "6789"})]
    actions = caller.press("1")
    assert names(actions) == ["processing", "submit"]
    assert submitted(actions) == BankAccount(ROUTING, BANK_ACCOUNT, "savings")
    assert caller.buffers_wiped()
    caller.assert_no_digits_leaked()


def test_bank_account_type_defaults_to_checking() -> None:
    caller = Caller("bank")
    caller.press(ROUTING + BANK_ACCOUNT + "#")
    account = submitted(caller.press("1"))
    assert isinstance(account, BankAccount) and account.account_type == "checking"


def test_bank_account_of_17_digits_completes_without_hash() -> None:
    caller = Caller("bank")
    caller.press(ROUTING)
    assert names(caller.press("0" * 16 + "7")) == ["confirm_bank"]


# -- "#" and "*" ------------------------------------------------------------------------------


def test_hash_submits_early_and_an_empty_field_is_invalid() -> None:
    caller = Caller()
    assert caller.press("#") == [
        Prompt(
            "invalid_card_number",
            {"field": "card_number", "reason": "invalid-card-number", "attempt": 2},
        ),
        Prompt("card_number", {"attempt": 2}),
    ]
    assert caller.press(VISA + "#") == [Prompt("expiry", {"attempt": 1})]


CARD_STEPS = ["", VISA + "#", EXPIRY, "123", "94107"]
BANK_STEPS = ["", ROUTING, BANK_ACCOUNT + "#"]


@pytest.mark.parametrize(
    ("method", "steps", "partial"),
    [("card", CARD_STEPS[: i + 1], p) for i, p in enumerate(["4242", "12", "1", "941", ""])]
    + [("bank", BANK_STEPS[: i + 1], p) for i, p in enumerate(["1100", "000123", ""])],
    ids=[
        "card_number",
        "expiry",
        "cvc",
        "zip",
        "confirm_card",
        "routing",
        "bank_account",
        "confirm_bank",
    ],
)
def test_star_cancels_at_every_field(method: str, steps: list[str], partial: str) -> None:
    caller = Caller(method)
    for keys in steps:
        caller.press(keys)
    caller.press(partial)
    assert caller.press("*") == [
        Prompt("cancelled", {"reason": "caller_cancelled"}),
        Done("cancelled", "caller_cancelled"),
    ]
    assert caller.session.state == "done"
    assert caller.buffers_wiped()
    assert caller.press("1") == [] and caller.wait(60) == []
    caller.assert_no_digits_leaked()


def test_external_cancel_wipes_without_a_prompt() -> None:
    caller = Caller()
    caller.press(VISA + "#" + EXPIRY)
    assert caller.session.cancel("hangup") == [Done("cancelled", "hangup")]
    assert caller.buffers_wiped()


# -- validation and attempts ------------------------------------------------------------------


def test_invalid_luhn_then_retry() -> None:
    caller = Caller()
    assert caller.press(VISA_BAD_LUHN + "#") == [
        Prompt(
            "invalid_card_number",
            {"field": "card_number", "reason": "invalid-card-number", "attempt": 2},
        ),
        Prompt("card_number", {"attempt": 2}),
    ]
    assert caller.session._buffers["card_number"].wiped
    assert caller.session.progress.attempts == 1
    assert caller.press(VISA + "#") == [Prompt("expiry", {"attempt": 1})]
    caller.assert_no_digits_leaked()


def test_brand_not_allowed() -> None:
    caller = Caller(allowed_brands=["visa", "mastercard"])
    actions = caller.press(AMEX)
    assert actions[0] == Prompt(
        "brand_not_accepted",
        {"field": "card_number", "reason": "invalid-card-type", "attempt": 2, "brand": "amex"},
    )
    assert caller.session.progress.brand is None
    said = prompt_text(actions[0], ["visa", "mastercard"])
    assert said == "Sorry, we don't accept American Express cards. We accept Visa and Mastercard."


@pytest.mark.parametrize(
    ("expiry", "reason"),
    [("0124", "expired-card"), ("0525", "expired-card"), ("1330", "invalid-date"),
     ("0000", "invalid-date"), ("1299", "invalid-date")],
)
def test_bad_expiry(expiry: str, reason: str) -> None:
    caller = Caller()
    caller.press(VISA + "#")
    assert caller.press(expiry) == [
        Prompt("invalid_expiry", {"field": "expiry", "reason": reason, "attempt": 2}),
        Prompt("expiry", {"attempt": 2}),
    ]
    expected = "That card has expired." if reason == "expired-card" else "doesn't look right"
    assert expected in prompt_text(caller.actions[-2])


def test_current_month_is_not_expired() -> None:
    caller = Caller()
    caller.press(VISA + "#")
    assert names(caller.press("0625")) == ["cvc"]


@pytest.mark.parametrize(("number", "cvc"), [(AMEX, "123#"), (VISA + "#", "12#")])
def test_wrong_cvc_length(number: str, cvc: str) -> None:
    caller = Caller()
    caller.press(number + EXPIRY)
    assert names(caller.press(cvc)) == ["invalid_cvc", "cvc"]
    assert caller.actions[-2].params["reason"] == "invalid-security-code"


def test_short_zip_is_invalid() -> None:
    caller = Caller()
    caller.press(VISA + "#" + EXPIRY + "123")
    assert names(caller.press("941#")) == ["invalid_zip", "zip"]


def test_bad_routing_checksum() -> None:
    caller = Caller("bank")
    actions = caller.press("110000001")
    assert names(actions) == ["invalid_routing", "routing"]
    assert actions[0].params["reason"] == "invalid-bank-routing-number"


def test_short_bank_account() -> None:
    caller = Caller("bank")
    caller.press(ROUTING)
    assert names(caller.press("123#")) == ["invalid_bank_account", "bank_account"]


def test_three_failed_attempts_fail_the_capture() -> None:
    caller = Caller()
    caller.press(VISA + "#")
    assert names(caller.press("0124")) == ["invalid_expiry", "expiry"]
    assert names(caller.press("0124")) == ["invalid_expiry", "expiry"]
    assert caller.press("0124") == [
        Prompt("failed", {"reason": "too_many_attempts"}),
        Done("failed", "too_many_attempts"),
    ]
    assert caller.buffers_wiped()
    assert caller.session.state == "done"
    caller.assert_no_digits_leaked()


def test_attempts_are_per_field() -> None:
    caller = Caller()
    caller.press(VISA_BAD_LUHN + "#" + VISA_BAD_LUHN + "#" + VISA + "#")
    caller.press("0124" + "0124")
    assert names(caller.press(EXPIRY)) == ["cvc"]


# -- confirmation ------------------------------------------------------------------------------


def test_confirm_2_reenters_everything() -> None:
    caller = Caller()
    caller.press(VISA + "#" + EXPIRY + "123" + "94107")
    assert caller.press("2") == [Prompt("card_number", {"attempt": 1})]
    assert caller.buffers_wiped()
    assert caller.session.progress == CaptureProgress("collecting", "card_number", 0, None, None, 0)
    caller.press(MASTERCARD + "0130" + "999" + "10001")
    assert caller.actions[-1] == Prompt("confirm_card", {"last4": "4444", "brand": "mastercard"})
    card = submitted(caller.press("1"))
    assert card == CardData(MASTERCARD, 1, 2030, cvc="999", postal_code="10001")
    caller.assert_no_digits_leaked()


def test_confirm_other_key_reprompts_and_re_entries_are_bounded() -> None:
    caller = Caller()
    caller.press(VISA + "#" + EXPIRY + "123" + "94107")
    assert caller.press("5") == [
        Prompt("invalid_confirm", {"field": "confirm", "reason": "invalid-choice", "attempt": 2}),
        Prompt("confirm_card", {"last4": "4242", "brand": "visa"}),
    ]
    assert names(caller.press("2")) == ["card_number"]
    caller.press(VISA + "#" + EXPIRY + "123" + "94107")
    assert names(caller.press("#")) == ["failed", "done:failed"]
    assert caller.buffers_wiped()


# -- timeouts ---------------------------------------------------------------------------------


def test_field_start_timeout_reprompts_and_counts() -> None:
    caller = Caller()
    assert caller.wait(14.9) == []
    assert caller.wait(0.1) == [
        Prompt("timeout", {"field": "card_number", "reason": "timeout", "attempt": 2}),
        Prompt("card_number", {"attempt": 2}),
    ]
    assert names(caller.wait(15)) == ["timeout", "card_number"]
    assert names(caller.wait(15)) == ["failed", "done:failed"]
    assert caller.actions[-1] == Done("failed", "too_many_attempts")


def test_prompt_played_restarts_the_start_timeout() -> None:
    caller = Caller()
    caller.now += 10
    caller.session.prompt_played(caller.now)
    assert caller.wait(14) == []
    assert names(caller.wait(1)) == ["timeout", "card_number"]


def test_inter_digit_timeout_submits_a_complete_field() -> None:
    caller = Caller()
    caller.press(VISA)
    assert caller.wait(4.9) == []
    assert caller.wait(0.1) == [Prompt("expiry", {"attempt": 1})]
    caller.assert_no_digits_leaked()


def test_inter_digit_timeout_on_a_short_field_reprompts() -> None:
    caller = Caller()
    caller.press("4242")
    assert caller.wait(5) == [
        Prompt("timeout", {"field": "card_number", "reason": "timeout", "attempt": 2}),
        Prompt("card_number", {"attempt": 2}),
    ]
    assert caller.session._buffers["card_number"].wiped


def test_inter_digit_timeout_validates_what_was_typed() -> None:
    caller = Caller()
    caller.press(VISA_BAD_LUHN)
    assert names(caller.wait(5)) == ["invalid_card_number", "card_number"]


def test_keys_reset_the_inter_digit_timer() -> None:
    caller = Caller()
    caller.press(VISA[:8], gap=4.0)
    assert caller.wait(1) == []
    assert caller.session.progress.digits_entered == 8


def test_confirm_timeout() -> None:
    caller = Caller("bank")
    caller.press(ROUTING + BANK_ACCOUNT + "#")
    assert names(caller.wait(15)) == ["timeout", "confirm_bank"]
    assert names(caller.press("1")) == ["processing", "submit"]


# -- progress, reprs, buffers ----------------------------------------------------------------


def test_progress_shows_counts_then_brand_then_last4() -> None:
    caller = Caller()
    caller.press(VISA[:5])
    assert caller.session.progress == CaptureProgress("collecting", "card_number", 5, None, None, 0)
    caller.press(VISA[5:])
    assert caller.session.progress == CaptureProgress(
        "collecting", "card_number", 16, "visa", None, 0
    )
    caller.press("#")
    assert caller.session.progress == CaptureProgress("collecting", "expiry", 0, "visa", "4242", 0)
    caller.press(EXPIRY + "123" + "94107")
    assert caller.session.progress == CaptureProgress("confirming", "confirm", 0, "visa", "4242", 0)


def test_session_before_start_and_unknown_keys() -> None:
    session = CaptureSession(_instruction(), today=lambda: TODAY)
    assert session.key("4", 0.0) == [] and session.tick(100.0) == []
    assert session.progress.state == "new"
    session.start(0.0)
    assert session.start(1.0) == []
    assert session.key("A", 1.0) == [] and session.key("42", 1.0) == []
    assert session.progress.digits_entered == 0


def test_finished_with_an_error() -> None:
    caller = Caller("bank")
    caller.press(ROUTING + BANK_ACCOUNT + "#1")
    assert caller.session.finished(error="timeout") == [Done("failed", "timeout")]
    assert caller.session.finished(error="timeout") == []


def test_digit_buffer() -> None:
    buffer = DigitBuffer(6)
    for digit in "4242x4242":
        buffer.append(digit)
    assert len(buffer) == 6 and buffer.reveal() == "424242"
    assert buffer.last4() == "4242" and buffer.prefix(2) == "42"
    assert repr(buffer) == str(buffer) == "DigitBuffer(len=6)"
    with pytest.raises(TypeError):
        copy.copy(buffer)
    with pytest.raises(TypeError):
        pickle.dumps(buffer)
    buffer.wipe()
    assert buffer.wiped and buffer._data == bytearray(6) and buffer.reveal() == ""


def test_prompt_refuses_unsafe_params() -> None:
    with pytest.raises(ValueError):
        Prompt("confirm_card", {"number": VISA})
    with pytest.raises(ValueError):
        Prompt("confirm_card", {"last4": VISA})
