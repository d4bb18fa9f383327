"""The merchant payment profile: the file, its validation (errors name the key), the defaults
that reproduce paybot without a profile, the environment settings it starts from, ``paybot
up`` refusing a bad file, the ledger's amounts, and the limits the actions apply."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from paybot.payments.factory import make_ledger
from paybot.payments.profile import (
    PaymentProfile,
    ProfileError,
    build_profile,
    defaults_from,
    load_profile,
    parse_profile,
)
from paybot.payments.rules import AmountRules
from paybot.settings import load_settings
from paybot_cli.main import main
from tests.test_actions import DOMAIN, JAMES, custom, responses_of, tracker

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "payment_profile.yml"


def test_the_built_in_profile_is_todays_behaviour():
    profile = load_profile(load_settings(env="test"))
    assert profile == PaymentProfile()
    assert profile.accepted_brands == ("visa", "mastercard", "amex", "discover")
    assert (profile.currency, profile.minimum_amount, profile.maximum_amount) == (
        "USD", Decimal("1.00"), None)
    assert profile.convenience_fee == Decimal("0.00")
    assert (profile.confirm, profile.payment_style, profile.gateway, profile.capture) == (
        "at_end", "one_step", "sandbox", "keypad")
    assert profile.max_attempts_per_field == 3
    assert (profile.timeouts.inter_digit_s, profile.timeouts.field_start_s) == (5.0, 15.0)
    assert all(profile.asks_security_code(b) and profile.asks_postal_code(b) for b in
               (*profile.accepted_brands, None))
    assert profile.limits.declines.max == 2 and profile.limits.declines.then == "agent"
    assert profile.limits.failed_captures.max is None  # no limit, as before profiles


def test_env_settings_are_the_defaults_and_the_file_wins(tmp_path):
    settings = load_settings(
        env="test", currency="cad", min_payment_amount="5.00", fee_amount="1.50", max_declines=4
    )
    assert load_profile(settings).currency == "CAD"
    assert load_profile(settings).limits.declines.max == 4
    path = tmp_path / "profile.yml"
    path.write_text("convenience_fee: 2.25\nlimits: {declines: {then: goodbye}}\n")
    profile = load_profile(settings.copy(update={"payment_profile": path}))
    assert profile.convenience_fee == Decimal("2.25")  # the file's key wins
    assert profile.minimum_amount == Decimal("5.00")  # left out: PAYBOT_MIN_PAYMENT
    assert (profile.limits.declines.max, profile.limits.declines.then) == (4, "goodbye")
    assert defaults_from(settings)["currency"] == "CAD"


def test_the_example_file_is_valid_and_differs_from_the_defaults():
    profile = parse_profile(EXAMPLE.read_text(), source=str(EXAMPLE))
    assert profile.confirm == "per_field"
    assert not profile.asks_postal_code("amex") and profile.asks_postal_code("visa")
    assert profile.limits.failed_captures.max is not None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("confirm: sometimes\n", "confirm: unexpected value"),
        ("accepted_brands: [visa, bitcoin]\n", "accepted_brands: unknown brand 'bitcoin'"),
        ("accepted_brands: []\n", "accepted_brands: must be a non-empty list"),
        ("currency: US$\n", "currency: must be a 3-letter code"),
        ("minimum_amount: 1.005\n", "minimum_amount: must have at most two decimal places"),
        ("minimum_amount: 50\nmaximum_amount: 10\n", "maximum_amount: must not be below"),
        ("convenience_fee: -1\n", "convenience_fee: ensure this value is greater than"),
        ("max_attempts_per_field: 0\n", "max_attempts_per_field: ensure this value"),
        ("timeouts: {inter_digit_s: 0}\n", "timeouts.inter_digit_s: ensure this value"),
        ("fields: {expiry: false}\n", "fields.expiry: the expiry date cannot be turned off"),
        ("fields_by_brand: {amex: {zip: false}}\n", "fields_by_brand.amex.zip: not a profile key"),
        ("fields_by_brand: {tesco: {postal_code: false}}\n", "fields_by_brand: unknown brand"),
        ("payment_style: three_step\n", "payment_style: unexpected value"),
        ("capture: voice\n", "capture: unexpected value"),
        ("gateway: paypal\n", "gateway: unexpected value"),
        ("limits: {failed_captures: {max: 2, then: hangup}}\n", "limits.failed_captures.then"),
        ("limits: {declines: {max: 0}}\n", "limits.declines.max: ensure this value"),
        ("confrim: per_field\n", "confrim: not a profile key"),
        ("- a list\n", "expected a mapping"),
        ("confirm: [per_field\n", "not valid YAML (line"),
    ],
)
def test_a_bad_profile_names_the_key(text, named):
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, source="merchant.yml")
    message = str(caught.value)
    assert message.startswith("payment profile merchant.yml: ") and named in message, message


def _up_with_profile(monkeypatch, tmp_path, text: str):
    """``paybot up`` in a clean environment (no PAYBOT_ or TWILIO_ settings) with a profile
    holding ``text``; returns the profile's path and ``up``'s exit code."""
    for key in [k for k in __import__("os").environ if k.startswith(("PAYBOT_", "TWILIO_"))]:
        monkeypatch.delenv(key)
    profile = tmp_path / "profile.yml"
    profile.write_text(text)
    monkeypatch.setenv("PAYBOT_ENV", "test")
    monkeypatch.setenv("PAYBOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PAYBOT_PAYMENT_PROFILE", str(profile))
    return profile, main(["up"])


def test_paybot_up_refuses_an_invalid_profile(monkeypatch, tmp_path, capsys):
    bad, code = _up_with_profile(
        monkeypatch, tmp_path, "limits:\n  failed_captures: {max: 3, then: shrug}\n"
    )
    assert code == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"payment profile {bad}: limits.failed_captures.then" in line, line
    missing = tmp_path / "nowhere.yml"
    monkeypatch.setenv("PAYBOT_PAYMENT_PROFILE", str(missing))
    assert main(["up"]) == 1
    assert "cannot read it" in capsys.readouterr().err


def test_paybot_up_refuses_twilio_pay_without_twilio_credentials(monkeypatch, tmp_path, capsys):
    _, code = _up_with_profile(
        monkeypatch, tmp_path, "capture: twilio_pay\npay_connector: Stripe_Test\n"
    )
    assert code == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "capture: twilio_pay" in line and "TWILIO_ACCOUNT_SID" in line, line


def test_the_ledger_takes_amounts_currency_and_fee_from_the_profile(tmp_path, db_engine):
    path = tmp_path / "profile.yml"
    path.write_text("minimum_amount: 5\nmaximum_amount: 500\nconvenience_fee: 1.25\n")
    settings = load_settings(env="test", data_dir=tmp_path, payment_profile=path)
    ledger = make_ledger(settings, db_engine)
    assert ledger.rules.allowed_range_for(Decimal("1250.00")) == (Decimal("5.00"), Decimal("500"))
    assert ledger.rules.allowed_range_for(Decimal("100.00"))[1] == Decimal("100.00")
    assert ledger.fees.fee_for(Decimal("10.00")) == Decimal("1.25")
    over = AmountRules(allow_overpayment=True, maximum=Decimal("50.00"))
    assert over.allowed_range_for(Decimal("10.00"))[1] == Decimal("50.00")


# -- the limits in the conversation -------------------------------------------------------------
def capture_failed(status: str = "failed") -> dict:
    return {
        "event": "user",
        "text": "EXTERNAL: capture_result",
        "metadata": {"is_external": True},
        "parse_data": {
            "intent": {"name": "capture_result"},
            "entities": [{"entity": "capture_status", "value": status}],
        },
    }


def capture_result(events: list[dict], status: str = "failed"):
    return tracker(
        slots={**JAMES, "channel": "voice", "payment_key": "no-such-payment"},
        text="EXTERNAL: capture_result",
        intent="capture_result",
        metadata={"is_external": True},
        entities=[{"entity": "capture_status", "value": status}],
        events=events,
    )


@pytest.mark.parametrize(
    ("limit", "earlier", "expect"),
    [
        ({"max": None, "then": "agent"}, 5, "method"),  # the built-in profile: no limit
        ({"max": 2, "then": "agent"}, 0, "method"),
        ({"max": 2, "then": "agent"}, 1, "transfer"),
        ({"max": 1, "then": "goodbye"}, 0, "hangup"),
        ({"max": 1, "then": "retry"}, 3, "method"),
    ],
)
async def test_failed_captures_are_counted_and_the_limit_acts(svc, limit, earlier, expect):
    from actions.payment import ActionCaptureResult

    svc.profile = build_profile({"limits": {"failed_captures": limit}})
    # Words that NLU took for the event, and a cancelled capture, do not count; a new
    # session starts the count again.
    noise = [{**capture_failed(), "metadata": {}}, capture_failed("cancelled")]
    events = [capture_failed()] * 3 + [{"event": "session_started"}] + noise
    events += [capture_failed()] * earlier + [capture_failed()]
    d = CollectingDispatcher()
    result = await ActionCaptureResult().run(d, capture_result(events), DOMAIN)
    sent = custom(d)
    assert responses_of(d)[0] == "capture_failed"
    if expect == "method":
        assert any(e.get("name") == "payment_form" for e in result if e["event"] == "followup")
        assert sent == []
    elif expect == "transfer":
        assert [c["type"] for c in sent] == ["transfer"] and sent[0]["reason"] == "capture_failed"
    else:
        assert [c["type"] for c in sent] == ["hangup"]
        assert responses_of(d)[1:] == ["payment_limit_goodbye", "goodbye"]


async def test_declines_follow_the_profile(svc):
    from actions.payment import respond
    from paybot.payments.settlement import PaymentOutcome

    svc.profile = build_profile({"limits": {"declines": {"max": 1, "then": "goodbye"}}})
    outcome = PaymentOutcome(
        payment_id=1, status="declined", amount=Decimal("5.00"), fee=Decimal("0.00"),
        total=Decimal("5.00"), currency="USD", confirmation_number=None,
        brand="visa", last4="0002", decline_code="card_declined",
    )
    d = CollectingDispatcher()
    await respond(svc, d, tracker(slots={**JAMES, "channel": "voice"}), outcome)
    assert [c["type"] for c in custom(d)] == ["hangup"]
    assert "payment_limit_goodbye" in responses_of(d)
