"""The embedded sandbox gateway, on SQLite and PostgreSQL (``db_engine``)."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text

from paybot.gateway.base import (
    ChargeResult,
    GatewayError,
    GatewayTimeout,
    IdempotencyConflict,
    InvalidPaymentData,
    UnknownToken,
)
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.sandbox import InvalidRequest, SandboxGateway

TODAY = date(2026, 5, 15)
ROUTING = "110000000"

SUCCESS_CARDS = [
    ("4242424242424242", "visa"),
    ("5555555555554444", "mastercard"),
    ("378282246310005", "amex"),
    ("6011111111111117", "discover"),
    ("3056930009020004", "diners"),
    ("3566002020360505", "jcb"),
    ("6200000000000005", "unionpay"),
    ("4111111111111111", "visa"),
    ("5105105105105100", "mastercard"),
]
DECLINE_CARDS = [
    ("4000000000000002", "generic_decline"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000009987", "lost_card"),
    ("4000000000009979", "stolen_card"),
    ("4000000000000069", "expired_card"),
    ("4000000000000127", "incorrect_cvc"),
    ("4000000000000119", "processing_error"),
    ("4000000000006975", "card_velocity_exceeded"),
    ("4000000000000341", "generic_decline"),  # attach succeeds, charges fail
]
BANK_ACCOUNTS = [
    ("000123456789", None),
    ("000111111113", "account_closed"),
    ("000111111116", "no_account"),
    ("000222222227", "insufficient_funds"),
    ("000333333335", "debit_not_authorized"),
    ("000444444440", "invalid_currency"),
    ("987654321", None),  # any other account succeeds
]


class Clock:
    """A settable ``today`` for the gateway."""

    def __init__(self, today: date) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today


@pytest.fixture
def clock() -> Clock:
    return Clock(TODAY)


@pytest.fixture
def gateway(db_engine, clock) -> SandboxGateway:
    return SandboxGateway(db_engine, today=clock)


def card(number: str, cvc: str | None = None, month: int = 12, year: int = 2030) -> CardData:
    if cvc is None:
        cvc = "1234" if number.startswith(("34", "37")) else "123"
    return CardData(number, month, year, cvc, "94105")


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()  # noqa: S608


def refunded(engine, charge_id: str) -> Decimal:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT refunded FROM sandbox_charges WHERE id = :id"), {"id": charge_id}
        ).scalar_one()
    # SQLite stores whole cents, PostgreSQL NUMERIC(14, 2).
    return Decimal(value) / 100 if engine.dialect.name == "sqlite" else Decimal(value)


def charge(gateway: SandboxGateway, token: str, amount: str = "10.00", key: str = "k1"):
    return gateway.charge_token(token, Decimal(amount), "USD", idempotency_key=key)


# -- test cards -------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "brand"), SUCCESS_CARDS)
def test_success_cards_approve(gateway, db_engine, number: str, brand: str) -> None:
    one_step = gateway.charge_card(card(number), Decimal("25.00"), "USD", idempotency_key="a")
    assert one_step == ChargeResult(
        approved=True,
        transaction_id=one_step.transaction_id,
        amount=Decimal("25.00"),
        currency="USD",
        brand=brand,
        last4=number[-4:],
    )
    assert one_step.transaction_id.startswith("ch_sbx_")

    info = gateway.tokenize_card(card(number))
    assert (info.kind, info.brand, info.last4) == ("card", brand, number[-4:])
    assert (info.exp_month, info.exp_year, info.reusable) == (12, 2030, True)
    assert info.token.startswith("tok_sbx_")
    stored = charge(gateway, info.token, "25.00", key="b")
    assert stored.approved and stored.decline_code is None and stored.brand == brand
    assert stored.transaction_id != one_step.transaction_id
    assert count(db_engine, "sandbox_charges") == 2


@pytest.mark.parametrize(("number", "code"), DECLINE_CARDS)
def test_decline_cards_tokenize_but_decline(gateway, db_engine, number: str, code: str) -> None:
    info = gateway.tokenize_card(card(number))
    assert info.brand == "visa" and info.last4 == number[-4:]
    result = charge(gateway, info.token)
    assert not result.approved
    assert result.decline_code == code
    assert result.amount == Decimal("10.00")

    one_step = gateway.charge_card(card(number), Decimal("10.00"), "USD", idempotency_key="k2")
    assert (one_step.approved, one_step.decline_code) == (False, code)
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT status, decline_code FROM sandbox_charges")).all()
    assert [tuple(r) for r in rows] == [("declined", code), ("declined", code)]


@pytest.mark.parametrize(
    "number", ["4000056655665556", "5200828282828210", "4012888888881881", "6759649826438453"]
)
def test_other_valid_cards_approve(gateway, number: str) -> None:
    result = gateway.charge_card(card(number), Decimal("1.00"), "USD", idempotency_key="k")
    assert result.approved and result.decline_code is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (card("4242424242424241"), "invalid-card-number"),
        (card("424242424242424"), "invalid-card-number"),
        (card("9000000000000001"), "invalid-card-type"),
        (card("4242424242424242", month=4, year=2026), "invalid-date"),
        (card("4242424242424242", month=13), "invalid-date"),
        (card("4242424242424242", cvc="1234"), "invalid-security-code"),
        (card("378282246310005", cvc="123"), "invalid-security-code"),
        (card("4000000000000127", cvc="12"), "invalid-security-code"),
    ],
)
def test_invalid_cards_are_refused_and_not_stored(gateway, db_engine, bad, reason) -> None:
    with pytest.raises(InvalidPaymentData) as excinfo:
        gateway.tokenize_card(bad)
    assert excinfo.value.reason == reason
    with pytest.raises(InvalidPaymentData) as excinfo:
        gateway.charge_card(bad, Decimal("5.00"), "USD", idempotency_key="k")
    assert excinfo.value.reason == reason
    assert not re.search(r"[0-9]", str(excinfo.value))
    assert count(db_engine, "sandbox_tokens") == 0
    assert count(db_engine, "sandbox_charges") == 0
    assert gateway.find_charge("k") is None


def test_two_digit_expiry_year(gateway) -> None:
    info = gateway.tokenize_card(CardData("4242424242424242", 7, 29, "123"))
    assert (info.exp_month, info.exp_year) == (7, 2029)


def test_card_token_expiring_after_tokenization_declines(gateway, clock) -> None:
    info = gateway.tokenize_card(card("4242424242424242", month=5, year=2026))
    assert charge(gateway, info.token, key="may").approved
    clock.today = date(2026, 6, 1)
    result = charge(gateway, info.token, key="june")
    assert (result.approved, result.decline_code) == (False, "expired_card")


# -- bank accounts ----------------------------------------------------------------------


@pytest.mark.parametrize("routing", [ROUTING, "021000021"])
@pytest.mark.parametrize(("account", "code"), BANK_ACCOUNTS)
def test_ach_outcomes(gateway, routing: str, account: str, code: str | None) -> None:
    info = gateway.tokenize_bank_account(BankAccount(routing, account, "savings"))
    assert (info.kind, info.brand, info.last4) == ("bank", "savings", account[-4:])
    assert info.exp_month is None and info.exp_year is None
    result = charge(gateway, info.token, "42.10")
    assert result.approved is (code is None)
    assert result.decline_code == code
    assert (result.brand, result.last4, result.amount) == (
        "savings",
        account[-4:],
        Decimal("42.10"),
    )


def test_ach_only_in_usd(gateway) -> None:
    info = gateway.tokenize_bank_account(BankAccount(ROUTING, "000123456789"))
    result = gateway.charge_token(info.token, Decimal("5.00"), "EUR", idempotency_key="eur")
    assert (result.approved, result.decline_code) == (False, "invalid_currency")


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        (BankAccount("110000001", "000123456789"), "invalid-bank-routing-number"),
        (BankAccount("130000006", "000123456789"), "invalid-bank-routing-number"),
        (BankAccount(ROUTING, "123"), "invalid-bank-account-number"),
        (BankAccount(ROUTING, "123456789012345678"), "invalid-bank-account-number"),
        (BankAccount(ROUTING, "000123456789", "brokerage"), "invalid-bank-account-type"),
    ],
)
def test_invalid_bank_accounts(gateway, db_engine, account, reason) -> None:
    with pytest.raises(InvalidPaymentData) as excinfo:
        gateway.tokenize_bank_account(account)
    assert excinfo.value.reason == reason
    assert count(db_engine, "sandbox_tokens") == 0


# -- idempotency ------------------------------------------------------------------------


def test_same_key_same_request_replays(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    first = charge(gateway, info.token, "10.00")
    again = charge(gateway, info.token, "10")  # the same amount, written differently
    assert first.replayed is False and again.replayed is True
    assert again.transaction_id == first.transaction_id
    assert again.amount == Decimal("10.00") and again.approved
    assert gateway.charge_token(info.token, Decimal("10.00"), "usd", idempotency_key="k1").replayed
    assert count(db_engine, "sandbox_charges") == 1


def test_declines_replay_too(gateway, db_engine) -> None:
    decline = card("4000000000009995")
    first = gateway.charge_card(decline, Decimal("7.00"), "USD", idempotency_key="d")
    again = gateway.charge_card(decline, Decimal("7.00"), "USD", idempotency_key="d")
    assert (again.approved, again.decline_code, again.replayed) == (
        False,
        "insufficient_funds",
        True,
    )
    assert again.transaction_id == first.transaction_id
    assert count(db_engine, "sandbox_charges") == 1


def test_replay_wins_over_a_token_deleted_since(gateway) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    first = charge(gateway, info.token)
    gateway.delete_token(info.token)
    assert charge(gateway, info.token).transaction_id == first.transaction_id
    with pytest.raises(UnknownToken):
        charge(gateway, info.token, key="new-key")


def test_same_key_different_request_conflicts(gateway, db_engine) -> None:
    visa = gateway.tokenize_card(card("4242424242424242"))
    mastercard = gateway.tokenize_card(card("5555555555554444"))
    first = charge(gateway, visa.token, "10.00")
    with pytest.raises(IdempotencyConflict):
        charge(gateway, visa.token, "10.01")
    with pytest.raises(IdempotencyConflict):
        charge(gateway, mastercard.token, "10.00")
    with pytest.raises(IdempotencyConflict):
        gateway.charge_token(visa.token, Decimal("10.00"), "EUR", idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        gateway.charge_card(card("4242424242424242"), Decimal("10.00"), "USD", idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        gateway.refund(first.transaction_id, idempotency_key="k1")
    assert count(db_engine, "sandbox_charges") == 1
    assert refunded(db_engine, first.transaction_id) == Decimal("0.00")


def test_one_step_fingerprint_uses_brand_last4_and_expiry(gateway) -> None:
    first = gateway.charge_card(
        card("4242424242424242"), Decimal("3.00"), "USD", idempotency_key="c"
    )
    with pytest.raises(IdempotencyConflict):
        gateway.charge_card(
            card("4242424242424242", year=2031), Decimal("3.00"), "USD", idempotency_key="c"
        )
    again = gateway.charge_card(
        card("4242424242424242"), Decimal("3.00"), "USD", idempotency_key="c"
    )
    assert again.replayed and again.transaction_id == first.transaction_id


def test_find_charge(gateway) -> None:
    assert gateway.find_charge("nope") is None
    info = gateway.tokenize_card(card("4000000000000002"))
    declined = charge(gateway, info.token, key="declined")
    found = gateway.find_charge("declined")
    assert found == declined
    assert found.approved is False and found.decline_code == "generic_decline"


# -- faults -----------------------------------------------------------------------------


def test_timeout_before_processing_then_retry(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    gateway.faults.timeout_next(when="before")
    assert gateway.faults.pending == 1
    with pytest.raises(GatewayTimeout):
        charge(gateway, info.token)
    assert gateway.faults.pending == 0
    assert count(db_engine, "sandbox_charges") == 0
    assert gateway.find_charge("k1") is None
    retry = charge(gateway, info.token)
    assert retry.approved and retry.replayed is False
    assert count(db_engine, "sandbox_charges") == 1


@pytest.mark.parametrize("one_step", [False, True])
def test_timeout_after_processing_then_retry_replays(gateway, db_engine, one_step) -> None:
    number = "4242424242424242"
    info = gateway.tokenize_card(card(number))

    def pay() -> ChargeResult:
        if one_step:
            return gateway.charge_card(card(number), Decimal("10.00"), "USD", idempotency_key="k1")
        return charge(gateway, info.token)

    gateway.faults.timeout_next(when="after")
    with pytest.raises(GatewayTimeout):
        pay()
    assert count(db_engine, "sandbox_charges") == 1
    found = gateway.find_charge("k1")
    assert found is not None and found.approved
    retry = pay()
    assert retry.replayed is True and retry.approved
    assert retry.transaction_id == found.transaction_id
    assert count(db_engine, "sandbox_charges") == 1


def test_several_timeouts_in_a_row(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    gateway.faults.timeout_next(n=2, when="after")
    for _ in range(2):
        with pytest.raises(GatewayTimeout):
            charge(gateway, info.token)
    assert charge(gateway, info.token).replayed
    assert count(db_engine, "sandbox_charges") == 1


def test_fault_for_one_operation_only(gateway, db_engine) -> None:
    gateway.faults.timeout_next(operation="charge_card")
    info = gateway.tokenize_card(card("4242424242424242"))  # not affected
    assert charge(gateway, info.token).approved
    with pytest.raises(GatewayTimeout):
        gateway.charge_card(card("4242424242424242"), Decimal("1.00"), "USD", idempotency_key="x")
    assert count(db_engine, "sandbox_charges") == 1


def test_error_next_and_tokenize_faults(gateway, db_engine) -> None:
    gateway.faults.error_next()
    with pytest.raises(GatewayError) as excinfo:
        gateway.tokenize_card(card("4242424242424242"))
    assert not isinstance(excinfo.value, GatewayTimeout)
    assert count(db_engine, "sandbox_tokens") == 0
    gateway.faults.timeout_next(when="after", operation="tokenize_bank_account")
    with pytest.raises(GatewayTimeout):
        gateway.tokenize_bank_account(BankAccount(ROUTING, "000123456789"))
    assert count(db_engine, "sandbox_tokens") == 1  # stored, answer lost


def test_fault_controls(gateway) -> None:
    gateway.faults.timeout_next(n=3)
    assert gateway.faults.pending == 3
    gateway.faults.clear()
    assert gateway.faults.pending == 0
    with pytest.raises(ValueError):
        gateway.faults.timeout_next(when="during")
    with pytest.raises(ValueError):
        gateway.faults.error_next(operation="find_charge")
    assert gateway.faults.pending == 0


def test_latency(db_engine) -> None:
    slow = SandboxGateway(db_engine, latency_ms=60)
    started = time.monotonic()
    slow.find_charge("nothing")
    assert time.monotonic() - started >= 0.06
    with pytest.raises(ValueError):
        SandboxGateway(db_engine, latency_ms=-1)


# -- concurrency ------------------------------------------------------------------------


def run_together(n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads released at once; results or exceptions, in order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_same_key_charges_once(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    results = run_together(8, lambda _: charge(gateway, info.token, "19.99", key="race"))
    assert all(isinstance(r, ChargeResult) for r in results), results
    assert len({r.transaction_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 7
    assert all(r.approved and r.amount == Decimal("19.99") for r in results)
    assert count(db_engine, "sandbox_charges") == 1


def test_concurrent_one_step_same_key(gateway, db_engine) -> None:
    def pay(_: int) -> ChargeResult:
        amount = Decimal("5.00")
        return gateway.charge_card(card("5555555555554444"), amount, "USD", idempotency_key="race")

    results = run_together(6, pay)
    assert len({r.transaction_id for r in results}) == 1
    assert [r.replayed for r in results].count(False) == 1
    assert count(db_engine, "sandbox_charges") == 1


def test_single_use_token_is_used_up(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"), reusable=False)
    assert info.reusable is False
    first = charge(gateway, info.token, key="once")
    assert first.approved
    assert charge(gateway, info.token, key="once").replayed
    with pytest.raises(UnknownToken):
        charge(gateway, info.token, key="twice")
    assert count(db_engine, "sandbox_charges") == 1


def test_single_use_token_raced_with_different_keys(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"), reusable=False)
    results = run_together(6, lambda i: charge(gateway, info.token, key=f"key-{i}"))
    approved = [r for r in results if isinstance(r, ChargeResult)]
    assert len(approved) == 1, results
    assert all(isinstance(r, UnknownToken) for r in results if r not in approved)
    assert count(db_engine, "sandbox_charges") == 1


# -- tokens -----------------------------------------------------------------------------


def test_delete_token(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    gateway.delete_token(info.token)
    with pytest.raises(UnknownToken):
        charge(gateway, info.token)
    gateway.delete_token(info.token)  # deleting twice is fine
    with pytest.raises(UnknownToken):
        gateway.delete_token("tok_sbx_doesnotexist")
    with pytest.raises(UnknownToken):
        charge(gateway, "tok_sbx_doesnotexist", key="other")
    with db_engine.connect() as conn:
        deleted_at = conn.execute(text("SELECT deleted_at FROM sandbox_tokens")).scalar_one()
    assert deleted_at is not None
    assert count(db_engine, "sandbox_charges") == 0


# -- refunds ----------------------------------------------------------------------------


@pytest.fixture
def paid(gateway) -> ChargeResult:
    info = gateway.tokenize_card(card("4242424242424242"))
    return charge(gateway, info.token, "10.00", key="paid")


def test_full_refund(gateway, db_engine, paid) -> None:
    result = gateway.refund(paid.transaction_id, idempotency_key="r1")
    assert result.approved and result.transaction_id.startswith("re_sbx_")
    assert (result.amount, result.currency, result.last4) == (Decimal("10.00"), "USD", "4242")
    assert refunded(db_engine, paid.transaction_id) == Decimal("10.00")
    with pytest.raises(InvalidRequest):
        gateway.refund(paid.transaction_id, Decimal("0.01"), idempotency_key="r2")
    assert gateway.find_charge("r1") is None  # a refund is not a charge
    assert gateway.find_charge("paid") == paid


def test_partial_refunds(gateway, db_engine, paid) -> None:
    first = gateway.refund(paid.transaction_id, Decimal("3.50"), idempotency_key="r1")
    assert first.amount == Decimal("3.50")
    rest = gateway.refund(paid.transaction_id, idempotency_key="r2")
    assert rest.amount == Decimal("6.50")
    assert refunded(db_engine, paid.transaction_id) == Decimal("10.00")
    assert count(db_engine, "sandbox_charges") == 3


def test_over_refund_is_refused(gateway, db_engine, paid) -> None:
    with pytest.raises(InvalidRequest):
        gateway.refund(paid.transaction_id, Decimal("10.01"), idempotency_key="r1")
    gateway.refund(paid.transaction_id, Decimal("6.00"), idempotency_key="r2")
    with pytest.raises(InvalidRequest):
        gateway.refund(paid.transaction_id, Decimal("4.01"), idempotency_key="r3")
    assert gateway.refund(paid.transaction_id, Decimal("4.00"), idempotency_key="r4").approved
    assert refunded(db_engine, paid.transaction_id) == Decimal("10.00")
    assert count(db_engine, "sandbox_charges") == 3


def test_refund_replay_and_conflict(gateway, db_engine, paid) -> None:
    first = gateway.refund(paid.transaction_id, Decimal("2.00"), idempotency_key="r1")
    again = gateway.refund(paid.transaction_id, Decimal("2.00"), idempotency_key="r1")
    assert again.replayed and again.transaction_id == first.transaction_id
    with pytest.raises(IdempotencyConflict):
        gateway.refund(paid.transaction_id, Decimal("3.00"), idempotency_key="r1")
    assert refunded(db_engine, paid.transaction_id) == Decimal("2.00")


def test_refund_timeout_after_then_retry(gateway, db_engine, paid) -> None:
    gateway.faults.timeout_next(when="after", operation="refund")
    with pytest.raises(GatewayTimeout):
        gateway.refund(paid.transaction_id, idempotency_key="r1")
    retry = gateway.refund(paid.transaction_id, idempotency_key="r1")
    assert retry.replayed and retry.amount == Decimal("10.00")
    assert refunded(db_engine, paid.transaction_id) == Decimal("10.00")


def test_concurrent_refunds_never_exceed_the_charge(gateway, db_engine, paid) -> None:
    results = run_together(
        6, lambda i: gateway.refund(paid.transaction_id, Decimal("3.00"), idempotency_key=f"r{i}")
    )
    done = [r for r in results if isinstance(r, ChargeResult)]
    assert len(done) == 3, results
    assert all(isinstance(r, InvalidRequest) for r in results if r not in done)
    assert refunded(db_engine, paid.transaction_id) == Decimal("9.00")


def test_refund_refusals(gateway) -> None:
    declined = gateway.charge_card(
        card("4000000000000002"), Decimal("5.00"), "USD", idempotency_key="d"
    )
    with pytest.raises(InvalidRequest):
        gateway.refund(declined.transaction_id, idempotency_key="r1")
    with pytest.raises(InvalidRequest):
        gateway.refund("ch_sbx_doesnotexist", idempotency_key="r2")
    approved = gateway.charge_card(
        card("4242424242424242"), Decimal("5.00"), "USD", idempotency_key="a"
    )
    refund = gateway.refund(approved.transaction_id, Decimal("1.00"), idempotency_key="r3")
    with pytest.raises(InvalidRequest):
        gateway.refund(refund.transaction_id, idempotency_key="r4")  # a refund of a refund
    for bad in (Decimal("0"), Decimal("-1.00"), Decimal("1.001")):
        with pytest.raises(InvalidRequest):
            gateway.refund(approved.transaction_id, bad, idempotency_key="r5")


# -- request validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (Decimal("0.00"), "USD"),
        (Decimal("-5.00"), "USD"),
        (Decimal("1.005"), "USD"),
        (Decimal("NaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("1000000000000.00"), "USD"),
        (Decimal("1.5"), "JPY"),
        (Decimal("1.000"), "BHD"),  # three minor units: the sandbox stores two
        (Decimal("1.00"), "US"),
        (Decimal("1.00"), "U$D"),
    ],
)
def test_bad_amounts_and_currencies(gateway, db_engine, amount, currency) -> None:
    with pytest.raises(InvalidRequest):
        gateway.charge_card(card("4242424242424242"), amount, currency, idempotency_key="k")
    assert count(db_engine, "sandbox_charges") == 0


def test_money_must_be_decimal(gateway) -> None:
    with pytest.raises(TypeError):
        gateway.charge_card(card("4242424242424242"), 10.0, "USD", idempotency_key="k")
    with pytest.raises(TypeError):
        gateway.charge_card(card("4242424242424242"), 10, "USD", idempotency_key="k")


def test_zero_decimal_currency(gateway) -> None:
    result = gateway.charge_card(
        card("4242424242424242"), Decimal("500"), "jpy", idempotency_key="y"
    )
    assert (result.amount, result.currency) == (Decimal("500"), "JPY")
    assert gateway.find_charge("y").amount == Decimal("500")


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_bad_idempotency_keys(gateway, key: str) -> None:
    with pytest.raises(InvalidRequest):
        gateway.charge_card(card("4242424242424242"), Decimal("1.00"), "USD", idempotency_key=key)


def test_long_description_is_cut(gateway, db_engine) -> None:
    info = gateway.tokenize_card(card("4242424242424242"))
    gateway.charge_token(
        info.token, Decimal("1.00"), "USD", idempotency_key="k", description="d" * 300
    )
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT description FROM sandbox_charges")).scalar_one()
    assert stored == "d" * 200


# -- no secrets at rest or in logs ------------------------------------------------------

GENERATED = ("id", "token_id", "request_fingerprint", "created_at", "deleted_at")
GENERATED_ID = re.compile(r"\b(?:tok|ch|re)_sbx_[0-9a-f]{24}\b")


def assert_clean(text_: str, secrets: list[str], cvcs: list[str], where: object) -> None:
    """No secret, CVC or long digit run in ``text_`` once the gateway's random ids are gone."""
    scrubbed = GENERATED_ID.sub("<id>", text_)
    assert not any(s in text_ for s in secrets), where
    assert not any(c in scrubbed for c in cvcs), where
    assert not re.search(r"[0-9]{9,}", scrubbed), where


def test_no_card_or_account_data_in_the_sandbox_tables(gateway, db_engine, caplog) -> None:
    """Charge every test card and account, then look at every column of every row."""
    caplog.set_level(logging.DEBUG)
    numbers = [n for n, _ in SUCCESS_CARDS + DECLINE_CARDS]
    for index, number in enumerate(numbers):
        name = "".join(chr(ord("a") + int(d)) for d in str(index))  # keys without digits
        test_card = card(number, cvc="3518" if number.startswith("3782") else "351")
        info = gateway.tokenize_card(test_card, reusable=index % 2 == 0)
        charge(gateway, info.token, "25.00", key=f"token-{name}")
        gateway.charge_card(test_card, Decimal("25.00"), "USD", idempotency_key=f"card-{name}")
    accounts = [a for a, _ in BANK_ACCOUNTS]
    for index, account in enumerate(accounts):
        name = "".join(chr(ord("a") + int(d)) for d in str(index))
        info = gateway.tokenize_bank_account(BankAccount(ROUTING, account))
        charge(gateway, info.token, "25.00", key=f"bank-{name}")
    paid = gateway.find_charge("token-a")
    gateway.refund(paid.transaction_id, Decimal("5.00"), idempotency_key="refund-a")

    secrets = numbers + accounts + [ROUTING]
    cvcs = ["351", "3518"]  # digits in no test number's last four
    seen_rows = 0
    with db_engine.connect() as conn:
        for table in ("sandbox_tokens", "sandbox_charges"):
            result = conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            columns = list(result.keys())
            for row in result:
                seen_rows += 1
                for column, value in zip(columns, row, strict=True):
                    as_text = str(value)
                    assert not any(s in as_text for s in secrets), (table, column)
                    assert as_text not in cvcs, (table, column)
                    if column not in GENERATED:  # random hex and timestamps hold any digits
                        assert_clean(as_text, secrets, cvcs, (table, column, value))
    tokens = len(numbers) + len(accounts)
    assert seen_rows == tokens + 2 * len(numbers) + len(accounts) + 1
    assert len(caplog.records) > len(numbers)
    for record in caplog.records:
        assert_clean(record.getMessage(), secrets, cvcs, record.getMessage())
