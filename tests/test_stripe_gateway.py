"""The Stripe gateway against localstripe (started by the tests), through the official SDK:
charges, a decline per reason, retries under one key, tokens kept and deleted, bank refusal."""

from __future__ import annotations

import random
import uuid
from datetime import date
from decimal import Decimal

import pytest
import stripe

from paybot.gateway.base import CardDeclined, IdempotencyConflict, InvalidPaymentData, UnknownToken
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.stripe_errors import decline_reason
from paybot.gateway.stripe_gateway import BankAccountsNotSupported, StripeGateway
from tests.localstripe import API_KEY, DECLINES

VISA = "4242424242424242"
YEAR = date.today().year + 3


def card(number: str = VISA, cvc: str = "123") -> CardData:
    return CardData(number, 12, YEAR, cvc, "94107")


@pytest.fixture
def gateway(localstripe, db_engine) -> StripeGateway:
    return StripeGateway(db_engine, api_key=API_KEY, api_base=localstripe.url, timeout_s=10)


def test_a_card_is_charged_once_as_moto(gateway, localstripe) -> None:
    result = gateway.charge_card(card(), Decimal("321.72"), "USD", idempotency_key="k-visa")
    assert result.approved and result.amount == Decimal("321.72") and result.last4 == "4242"
    assert result.brand == "visa" and not result.replayed
    intent = localstripe.get(f"/v1/payment_intents/{result.transaction_id}")
    assert intent["status"] == "succeeded" and intent["amount"] == 32172
    assert intent["metadata"]["paybot_key"] == "k-visa"


@pytest.mark.parametrize("number", sorted(DECLINES))
def test_each_decline_card_declines_with_its_reason(gateway, number) -> None:
    key = f"k-{number[-4:]}"  # not the number: the card-data scan would find it
    result = gateway.charge_card(card(number), Decimal("10.00"), "USD", idempotency_key=key)
    code, decline = DECLINES[number]
    assert not result.approved
    assert result.decline_code == decline_reason(code, decline)
    assert result.decline_code == (decline if number != "4000000000000341" else "generic_decline")


def test_a_retry_with_the_same_key_charges_once(gateway, localstripe) -> None:
    key = f"k-retry-{uuid.uuid4().hex[:8]}"  # localstripe is shared by the database runs
    first = gateway.charge_card(card(), Decimal("25.00"), "USD", idempotency_key=key)
    again = gateway.charge_card(card(), Decimal("25.00"), "USD", idempotency_key=key)
    assert again.transaction_id == first.transaction_id and again.replayed
    assert gateway.find_charge(key) == again
    succeeded = [
        i for i in localstripe.get("/v1/payment_intents?limit=100")["data"]
        if i["metadata"].get("paybot_key") == key and i["status"] == "succeeded"
    ]
    assert len(succeeded) == 1


def test_the_same_key_for_another_request_is_refused(gateway) -> None:
    gateway.charge_card(card(), Decimal("25.00"), "USD", idempotency_key="k-other")
    with pytest.raises(IdempotencyConflict):
        gateway.charge_card(card(), Decimal("26.00"), "USD", idempotency_key="k-other")


def test_an_intent_created_but_never_confirmed_is_resumed_or_cancelled(
    gateway, localstripe
) -> None:
    """A crash (or timeout) between creating and confirming: a retry confirms that intent;
    asking about the key cancels an unconfirmed one, so it can never land later."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe.url})
    for key, retry in (("k-resume", True), ("k-ask", False)):
        method = gateway.tokenize_card(card(), reusable=False)
        gateway._refs.claim("intent", key, fingerprint=_fingerprint(method.token, "9.00"))
        made = client.v1.payment_intents.create(
            params={"amount": 900, "currency": "usd", "payment_method": method.token}
        )
        gateway._refs.set_id("intent", key, made.id)
        if retry:
            result = gateway.charge_token(method.token, Decimal("9.00"), "USD", idempotency_key=key)
            assert result.approved and result.transaction_id == made.id
        else:
            assert gateway.find_charge(key) is None
            assert localstripe.get(f"/v1/payment_intents/{made.id}")["status"] == "canceled"
    assert gateway.find_charge("k-never") is None


def _fingerprint(token: str, amount: str) -> str:
    from paybot.gateway.sandbox_requests import request_fingerprint

    return request_fingerprint("charge_token", token, Decimal(amount), "USD")


def test_a_one_time_token_is_refused_once_deleted(gateway) -> None:
    info = gateway.tokenize_card(card(), reusable=False)
    assert info.token.startswith("pm_") and not info.reusable
    gateway.charge_token(info.token, Decimal("5.00"), "USD", idempotency_key="k-once")
    gateway.delete_token(info.token)
    with pytest.raises(UnknownToken):
        gateway.charge_token(info.token, Decimal("5.00"), "USD", idempotency_key="k-twice")


def test_a_reusable_token_is_attached_to_the_accounts_customer_and_detached(
    gateway, localstripe
) -> None:
    first = gateway.tokenize_card(card(), reusable=True, customer="100200300")
    second = gateway.tokenize_card(card("5555555555554444"), reusable=True, customer="100200300")
    owner, method = first.token.split("/")
    assert second.token.split("/")[0] == owner  # one Customer per account
    assert localstripe.get(f"/v1/payment_methods/{method}")["customer"] == owner
    assert gateway.charge_token(first.token, Decimal("7.00"), "USD", idempotency_key="k-r").approved
    gateway.delete_token(first.token)
    assert localstripe.get(f"/v1/payment_methods/{method}")["customer"] is None
    with pytest.raises(UnknownToken):
        gateway.charge_token(first.token, Decimal("7.00"), "USD", idempotency_key="k-r2")


def test_a_declining_card_cannot_be_kept(gateway) -> None:
    with pytest.raises(CardDeclined) as declined:
        gateway.tokenize_card(card("4000000000009995"), reusable=True, customer="200300400")
    assert declined.value.decline_code == "insufficient_funds"


def test_bad_cards_are_refused_before_stripe_and_banks_are_refused(gateway) -> None:
    with pytest.raises(InvalidPaymentData):
        gateway.charge_card(card("4242424242424241"), Decimal("1.00"), "USD", idempotency_key="b")
    with pytest.raises(BankAccountsNotSupported):
        gateway.tokenize_bank_account(BankAccount("110000000", "000123456789"))


def test_refunds(gateway) -> None:
    paid = gateway.charge_card(card(), Decimal("40.00"), "USD", idempotency_key="k-refund")
    part = gateway.refund(paid.transaction_id, Decimal("15.00"), idempotency_key="r-1")
    assert part.approved and part.amount == Decimal("15.00")


def test_random_amounts_and_cards_charge_exactly_what_was_asked(gateway) -> None:
    rng = random.Random(1404)
    numbers = [VISA, "5555555555554444", *DECLINES]
    for i in range(12):
        amount = Decimal(rng.randint(100, 500_000)) / 100
        number = rng.choice(numbers)
        result = gateway.charge_card(card(number), amount, "USD", idempotency_key=f"gen-{i}")
        assert result.amount == amount
        assert result.approved == (number not in DECLINES)


def test_stripe_codes_map_to_the_bots_reasons() -> None:
    assert decline_reason("card_declined", "insufficient_funds") == "insufficient_funds"
    assert decline_reason("card_declined", "do_not_honor") == "generic_decline"
    assert decline_reason("expired_card") == "expired_card"
    assert decline_reason("invalid_cvc") == "incorrect_cvc"
    assert decline_reason("card_declined", "something_new") == "generic_decline"
