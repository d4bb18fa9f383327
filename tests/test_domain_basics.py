"""Money, phone numbers, settings, confirmation numbers and log redaction."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from paybot.money import (
    InvalidAmount,
    format_amount,
    from_minor_units,
    parse_amount,
    to_minor_units,
)
from paybot.payments import confirmation
from paybot.payments.capture_choice import capture_choice
from paybot.phone import InvalidPhoneNumber, is_e164, to_e164
from paybot.redaction import RedactingFilter, redact
from paybot.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [("321.72", "321.72"), ("$1,250.00", "1250.00"), ("7", "7.00"), (" 0.1 ", "0.10")],
)
def test_parse_amount(text, expected):
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize(
    "bad", ["", "abc", "-5", "1.234", "NaN", "Infinity", 1.5, "1,2,3", "1e3", "1_000", "١٢", "12."]
)
def test_parse_amount_rejects(bad):
    with pytest.raises(InvalidAmount):
        parse_amount(bad)


def test_minor_units_round_trip():
    assert to_minor_units(Decimal("321.72")) == 32172
    assert from_minor_units(32172) == Decimal("321.72")
    assert format_amount(Decimal("1250")) == "$1,250.00"
    assert format_amount(Decimal("5"), "CHF") == "5.00 CHF"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(555) 555-0100", "+15555550100"),
        ("+1 555 555 0111", "+15555550111"),
        ("555.555.0122", "+15555550122"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_to_e164(raw, e164):
    assert to_e164(raw) == e164
    assert is_e164(e164)


@pytest.mark.parametrize("bad", ["", "12", "not a number", "+1 555"])
def test_to_e164_rejects(bad):
    with pytest.raises(InvalidPhoneNumber):
        to_e164(bad)


def test_dev_settings_have_working_defaults(settings):
    assert settings.bridge_port == 8080 and settings.rasa_port == 5005
    assert settings.action_port == 5055
    assert settings.db_url.startswith("sqlite:///")
    assert settings.fee_amount == Decimal("0.00")


def test_prod_refuses_missing_secrets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as exc:
        load_settings(env="prod")
    message = str(exc.value)
    for name in ("TWILIO_AUTH_TOKEN", "PAYBOT_CONSOLE_SECRET", "DATABASE_URL", "PAYBOT_PUBLIC_URL",
                 "PAYBOT_PAY_LINK_SECRET"):
        assert name in message


def test_prod_starts_with_real_secrets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a" * 32)
    monkeypatch.setenv("PAYBOT_CONSOLE_SECRET", "b" * 32)
    monkeypatch.setenv("PAYBOT_RASA_TOKEN", "c" * 32)
    monkeypatch.setenv("DATABASE_URL", "postgresql://paybot@db/paybot")
    monkeypatch.setenv("PAYBOT_PUBLIC_URL", "https://pay.example.com")
    monkeypatch.setenv("PAYBOT_PAY_LINK_SECRET", "short")  # a weak signing key is refused
    with pytest.raises(SettingsError, match="PAYBOT_PAY_LINK_SECRET"):
        load_settings(env="prod")
    monkeypatch.setenv("PAYBOT_PAY_LINK_SECRET", "d" * 32)
    settings = load_settings(env="prod")
    assert settings.seed_demo_data is False
    assert settings.public_base_url == "https://pay.example.com"
    assert settings.capture == "keypad" and settings.pay_connector == "Default"
    # Twilio <Pay> updates live calls through the REST API: it needs the account too.
    monkeypatch.setenv("PAYBOT_CAPTURE", "twilio_pay")
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        load_settings(env="prod")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("PAYBOT_PAY_CONNECTOR", "Stripe_Prod")
    pay = capture_choice(load_settings(env="prod"))
    assert pay.twilio_pay and pay.pay_connector == "Stripe_Prod"
    monkeypatch.setenv("PAYBOT_PAY_CONNECTOR", "no spaces or <tags>")
    with pytest.raises(SettingsError, match="pay_connector"):
        load_settings(env="prod")


def test_settings_read_env_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PAYBOT_FEE_AMOUNT=2.00\nPAYBOT_BRIDGE_PORT=9000\n")
    monkeypatch.setenv("PAYBOT_BRIDGE_PORT", "9100")  # the environment wins over .env
    settings = load_settings()
    assert settings.fee_amount == Decimal("2.00")
    assert settings.bridge_port == 9100


@pytest.mark.parametrize("bad", [{"fee_amount": "2.005"}, {"bridge_port": "0"}, {"env": "staging"}])
def test_invalid_settings_are_one_clear_error(bad, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="invalid configuration"):
        load_settings(**bad)


def test_confirmation_numbers_are_speakable_and_checked():
    numbers = {confirmation.new_confirmation_number() for _ in range(2000)}
    # 9 * 10**7 possibilities: a collision or two in 2000 draws is the birthday paradox;
    # the database's unique constraint (and a retry) makes stored numbers unique.
    assert len(numbers) >= 1995
    for number in numbers:
        assert len(number) == 9 and number.isdigit() and number[0] != "0"
        assert confirmation.is_valid(number)
        assert confirmation.is_valid(confirmation.grouped(number, "-"))
    number = numbers.pop()
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not confirmation.is_valid(wrong)
    assert confirmation.grouped("482913705") == "482 913 705"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4242424242424242 ok", "card [redacted …4242] ok"),
        ("card 4242 4242 4242 4242", "card [redacted …4242]"),
        ("acct 000123456789", "acct [redacted …6789]"),
        ("payment 42 for call CA123", "payment 42 for call CA123"),
        ("zip 94107 amount 321.72", "zip 94107 amount 321.72"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_redacting_filter_masks_args_and_exceptions(caplog):
    logger = logging.getLogger("paybot.test.redaction")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="paybot.test.redaction"):
            logger.info("charging %s", "4000000000009995")
            try:
                raise ValueError("bad card 4000000000000002")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert "4000000000009995" not in text and "4000000000000002" not in text
    assert "[redacted …9995]" in text
