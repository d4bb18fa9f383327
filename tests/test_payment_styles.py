"""The two payment styles through the ledger and the sandbox gateway: tokens are made only
after the payment row and the rules, once per payment; a one-time token is deleted after use
whatever the outcome; a reusable one is kept only with consent, once per instrument; the sweep
fails payments whose token was never charged and cleans up what a crash left."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from paybot.db.models import Payment, PaymentMethod, SandboxToken
from paybot.dialog.payloads import SecureCapture
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.ledger import Ledger
from paybot.payments.rules import PaymentRefused
from paybot.payments.style import payment_choice
from paybot.settings import load_settings
from tests.helpers import account, rows
from voice_bridge.secure_capture.session import CaptureSession, Done, Prompt, Submit

MARIA = "200300400"  # owes 89.10, nothing on file
YEAR = date.today().year + 3


def card(number: str = "5555555555554444", year: int = YEAR) -> CardData:
    return CardData(number, 12, year, "123", "10001")


def request(ledger: Ledger, engine, amount: str = "20.00", key: str | None = None):
    maria = account(engine, MARIA)
    return ledger.new_request(maria.id, Decimal(amount), "voice", "call:test", key)


def live_tokens(engine) -> list[SandboxToken]:
    return [t for t in rows(engine, SandboxToken) if t.deleted_at is None]


def methods(engine) -> list[PaymentMethod]:
    maria = account(engine, MARIA)
    with Session(engine) as session:
        query = select(PaymentMethod).where(PaymentMethod.account_id == maria.id)
        return list(session.exec(query).all())


def two_steps(ledger: Ledger, engine, method, *, save=False, amount="20.00", key=None):
    opened = ledger.tokens.tokenize(request(ledger, engine, amount, key), method, save=save)
    return opened, ledger.tokens.charge(opened.payment_id)


def test_the_choice_comes_from_the_settings(settings) -> None:
    assert payment_choice(settings).capture_mode == "charge"
    two = load_settings(env="test", payment_style="two_step", gateway="stripe")
    assert (payment_choice(two).gateway, payment_choice(two).capture_mode) == ("stripe", "tokenize")


def test_two_steps_tokenize_then_charge_and_delete_a_one_time_token(ledger, db_engine) -> None:
    before = len(live_tokens(db_engine))
    opened, paid = two_steps(ledger, db_engine, card())
    assert opened.status == "pending" and opened.last4 == "4444"
    assert paid.succeeded and paid.total == Decimal("22.00")
    assert len(live_tokens(db_engine)) == before  # the one-time token is gone
    [method] = methods(db_engine)
    assert method.deleted_at is not None and method.saved_at is None


def test_a_declined_one_time_token_is_deleted_too(ledger, db_engine) -> None:
    before = len(live_tokens(db_engine))
    _, paid = two_steps(ledger, db_engine, card("4000000000009995"))
    assert paid.status == "declined" and paid.decline_code == "insufficient_funds"
    assert len(live_tokens(db_engine)) == before


def test_a_refused_request_makes_no_token(ledger, db_engine) -> None:
    before = len(rows(db_engine, SandboxToken))
    with pytest.raises(PaymentRefused):
        ledger.tokens.tokenize(request(ledger, db_engine, "500.00"), card(), save=True)
    assert len(rows(db_engine, SandboxToken)) == before
    assert rows(db_engine, Payment) == [] or all(
        p.account_id != account(db_engine, MARIA).id for p in rows(db_engine, Payment)
    )


def test_a_repeated_request_makes_no_second_token(ledger, db_engine) -> None:
    before = len(rows(db_engine, SandboxToken))
    first = ledger.tokens.tokenize(request(ledger, db_engine, key="k-same"), card(), save=False)
    again = ledger.tokens.tokenize(request(ledger, db_engine, key="k-same"), card(), save=False)
    assert again.payment_id == first.payment_id
    assert len(rows(db_engine, SandboxToken)) == before + 1
    paid = ledger.tokens.charge(first.payment_id)
    assert ledger.tokens.charge(first.payment_id) == paid  # charged once
    settled = ledger.tokens.tokenize(request(ledger, db_engine, key="k-same"), card(), save=False)
    assert settled == paid and len(rows(db_engine, SandboxToken)) == before + 1


def test_a_reusable_token_is_kept_once_per_instrument(ledger, db_engine) -> None:
    _, first = two_steps(ledger, db_engine, card(), save=True, amount="10.00")
    _, second = two_steps(ledger, db_engine, card(), save=True, amount="10.00")
    _, other = two_steps(ledger, db_engine, card("4242424242424242"), save=True, amount="10.00")
    assert first.succeeded and second.succeeded and other.succeeded
    kept = [m for m in methods(db_engine) if m.saved_at is not None and m.deleted_at is None]
    assert sorted(m.last4 for m in kept) == ["4242", "4444"]
    live = {t.id for t in live_tokens(db_engine)}
    assert all(m.token in live for m in kept)
    assert all(m.token not in live for m in methods(db_engine) if m not in kept)


def test_one_step_bank_payments_leave_no_token(ledger, db_engine) -> None:
    before = len(live_tokens(db_engine))
    paid = ledger.pay_with_new_method(
        account_id=account(db_engine, MARIA).id,
        method=BankAccount("110000000", "000123456789"),
        amount=Decimal("30.00"),
        channel="voice",
    )
    assert paid.succeeded and len(live_tokens(db_engine)) == before


def test_the_sweep_fails_a_token_never_charged_and_deletes_it(ledger, db_engine) -> None:
    before = len(live_tokens(db_engine))
    opened = ledger.tokens.tokenize(request(ledger, db_engine), card(), save=True)
    [failed] = ledger.tokens.sweep(older_than_s=0)
    assert failed.payment_id == opened.payment_id and failed.decline_code == "abandoned"
    assert len(live_tokens(db_engine)) == before
    assert ledger.tokens.charge(opened.payment_id).status == "failed"  # never charged now
    assert ledger.tokens.sweep(older_than_s=0) == []


def test_a_claimed_charge_is_never_swept(ledger, db_engine) -> None:
    opened = ledger.tokens.tokenize(request(ledger, db_engine), card(), save=False)
    assert ledger.tokens._claim_for_charge(opened.payment_id)
    assert ledger.tokens.sweep(older_than_s=0) == []


def test_random_sequences_keep_the_token_rules(ledger, db_engine) -> None:
    rng = random.Random(14)
    numbers = ["5555555555554444", "4242424242424242", "4000000000000002", "4000000000000341"]
    for _ in range(16):
        number, save = rng.choice(numbers), rng.random() < 0.5
        key = f"gen-{rng.randint(0, 6)}"  # repeats on purpose
        try:
            opened = ledger.tokens.tokenize(
                request(ledger, db_engine, "1.00", key), card(number), save=save
            )
        except PaymentRefused:
            continue  # the same key with another amount, or the rules
        if rng.random() < 0.8:
            ledger.tokens.charge(opened.payment_id)
    ledger.tokens.sweep(older_than_s=0)
    kept = [m for m in methods(db_engine) if m.saved_at is not None and m.deleted_at is None]
    instruments = [(m.last4, m.exp_year) for m in kept]
    assert len(instruments) == len(set(instruments))  # never kept twice
    maria_tokens = {m.token for m in methods(db_engine)}
    live = {t.id for t in live_tokens(db_engine)} & maria_tokens
    assert live == {m.token for m in kept}  # every other token was deleted
    with Session(db_engine) as session:
        payments = session.exec(select(Payment)).all()
        assert all(p.status != "pending" for p in payments)


# -- the capture asks for consent -----------------------------------------------------------


def _capture(**overrides) -> CaptureSession:
    instruction = SecureCapture(
        method="card", account_number=MARIA, amount="20.00", currency="USD",
        idempotency_key="cap", mode="tokenize", **overrides,
    )
    session = CaptureSession(instruction, today=lambda: date(2025, 6, 15))
    session.start(0.0)
    return session


def _key_card(session: CaptureSession) -> list:
    out: list = []
    for i, key in enumerate("5555555555554444" + "1230" + "123" + "10001" + "1"):
        out = session.key(key, 1.0 + i * 0.1)
    return out


@pytest.mark.parametrize(("answer", "kept"), [("1", True), ("2", False), (None, False)])
def test_the_capture_asks_before_keeping_the_card(answer, kept) -> None:
    session = _capture(offer_save=True)
    [offer] = _key_card(session)
    assert isinstance(offer, Prompt) and offer.name == "save_offer"
    actions = session.key(answer, 10.0) if answer else session.tick(100.0)
    submit = next(a for a in actions if isinstance(a, Submit))
    assert submit.save is kept and "5555" not in repr(submit)


def test_no_offer_no_question_and_star_still_cancels() -> None:
    submit = next(a for a in _key_card(_capture()) if isinstance(a, Submit))
    assert submit.save is False
    session = _capture(offer_save=True)
    _key_card(session)
    assert any(isinstance(a, Done) and a.status == "cancelled" for a in session.key("*", 9.0))
