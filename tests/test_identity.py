"""ID&V with lockouts across conversations, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from paybot.accounts.directory import LocalDirectory
from paybot.db.engine import session_scope
from paybot.db.models import Account, AuditEvent, VerificationFailure
from paybot.db.types import utcnow
from paybot.gateway.sandbox import SandboxGateway
from paybot.identity import WITHHELD, IdentityVerifier, LockoutPolicy, Verification
from paybot.seed import seed_demo_data
from tests import cardscan


@pytest.fixture
def verifier(db_engine) -> IdentityVerifier:
    seed_demo_data(db_engine, SandboxGateway(db_engine))
    return IdentityVerifier(db_engine, LocalDirectory(db_engine), LockoutPolicy(max_failures=3))


async def check(verifier, number, zip_code, phone="+15555559999", conv="chat:1"):
    return await verifier.verify(
        account_number=number, billing_zip=zip_code, caller_phone=phone, conversation_id=conv
    )


async def test_right_zip_verifies(verifier):
    outcome = await check(verifier, "100200300", "94107")
    assert outcome.result is Verification.VERIFIED
    assert outcome.record.name == "James Smith"
    assert (await check(verifier, "100200300", "94107-1234")).result is Verification.VERIFIED


@pytest.mark.parametrize(("number", "zip_code"), [("100200300", "94108"), ("999999999", "94107")])
async def test_wrong_zip_and_unknown_account_fail_alike(verifier, number, zip_code):
    outcome = await check(verifier, number, zip_code)
    assert outcome.result is Verification.FAILED
    assert outcome.record is None


async def test_failures_lock_the_account_across_conversations_and_numbers(verifier):
    for i in range(3):
        outcome = await check(verifier, "100200300", "00000", phone=f"+1555555000{i}", conv=f"c{i}")
    assert outcome.result is Verification.LOCKED
    # Even the right ZIP, from another number in another conversation, is refused now.
    right = await check(verifier, "100200300", "94107", phone="+15555550100", conv="c9")
    assert right.result is Verification.LOCKED
    # Another account is not affected.
    assert (await check(verifier, "200300400", "10001", conv="c10")).result is Verification.VERIFIED


async def test_failures_lock_the_caller_number_against_enumeration(verifier):
    phone = "+15555550177"
    for number in ("111111111", "222222222", "333333333"):
        outcome = await check(verifier, number, "12345", phone=phone)
    assert outcome.result is Verification.LOCKED
    assert (await check(verifier, "100200300", "94107", phone=phone)).result is Verification.LOCKED
    assert verifier.failures(None, phone) == 3


async def test_audit_records_outcomes_without_what_was_said(verifier, db_engine):
    await check(verifier, "100200300", "94108")
    await check(verifier, "100200300", "94107")
    with Session(db_engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.kind.like("idv.%"))).all()
    assert [e.kind for e in events] == ["idv.failed", "idv.verified"]
    for event in events:
        assert "94108" not in str(event.detail) and "94107" not in str(event.detail)


@pytest.mark.parametrize("number", ["4000000000000002", "4000 0000 0000 0002"])
async def test_a_card_number_as_account_number_is_never_stored(verifier, db_engine, number):
    outcome = await check(verifier, number, "94107")
    assert outcome.result is Verification.FAILED
    with Session(db_engine) as session:
        [failure] = session.exec(select(VerificationFailure)).all()
    assert failure.account_number is None and failure.caller_phone == "+15555559999"
    assert cardscan.scan_engine(db_engine, "identity test") == []


def _sweep_accounts(engine, rng: random.Random) -> list[str]:
    """100 account numbers an attacker might try: three real ones with ZIP 94107 (James and
    two more), some real ones elsewhere, the rest unknown, in a random order."""
    with Session(engine) as session:
        for number, zip_code in (("100200301", "94107"), ("100200302", "94107"),
                                 ("100200303", "10001"), ("100200304", "60601")):
            session.add(Account(account_number=number, name="Sweep Target", phone=None,
                                billing_zip=zip_code, balance=Decimal("10.00"),
                                minimum_payment=Decimal("1.00")))
        session.commit()
    numbers = ["100200300", "100200301", "100200302", "100200303", "100200304", "200300400"]
    while len(numbers) < 100:
        candidate = str(rng.randrange(100_000_000, 999_999_999))
        if candidate not in numbers:
            numbers.append(candidate)
    rng.shuffle(numbers)
    return numbers


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_withheld_caller_sweep_is_locked_out(db_engine, seed):
    """A sweep of 100 account numbers with one common ZIP from a withheld number (each try
    in a conversation of its own) verifies at most the lockout allowance, then is locked."""
    seed_demo_data(db_engine, SandboxGateway(db_engine))
    policy = LockoutPolicy(max_failures=5)
    verifier = IdentityVerifier(db_engine, LocalDirectory(db_engine), policy)
    rng = random.Random(seed)
    results = []
    for i, number in enumerate(_sweep_accounts(db_engine, rng)):
        outcome = await check(verifier, number, "94107", phone=None, conv=f"call:CA{seed}{i}")
        results.append(outcome.result)
    verified = results.count(Verification.VERIFIED)
    assert verified <= policy.max_failures, f"seed {seed}: {verified} verified"
    summary = {r.value: results.count(r) for r in Verification}
    assert results[-1] is Verification.LOCKED, f"seed {seed}: never locked out: {summary}"
    first_lock = results.index(Verification.LOCKED)
    assert Verification.VERIFIED not in results[first_lock:], f"seed {seed}"


async def test_global_rate_limit_refuses_everyone_for_a_while(db_engine):
    """Failures from many numbers on many accounts, none locked on its own, reach the global
    limit: every check is then refused (even a right one), audited, until the window passes."""
    seed_demo_data(db_engine, SandboxGateway(db_engine))
    policy = LockoutPolicy(max_failures=5, rate_limit=8, rate_window=timedelta(minutes=1))
    verifier = IdentityVerifier(db_engine, LocalDirectory(db_engine), policy)
    rng = random.Random(7)
    for i in range(8):
        number = str(rng.randrange(100_000_000, 999_999_999))
        outcome = await check(verifier, number, "12345", phone=f"+1555555{i:04d}", conv=f"c{i}")
        assert outcome.result is Verification.FAILED
    refused = await check(verifier, "100200300", "94107", phone="+15555550100", conv="late")
    assert refused.result is Verification.THROTTLED and refused.record is None
    with Session(db_engine) as session:
        kinds = [e.kind for e in session.exec(select(AuditEvent)).all()]
    assert kinds.count("idv.throttled") == 1 and "idv.verified" not in kinds
    # Refused checks are not failures: once the minute has passed, checks run again.
    with session_scope(db_engine) as session:
        for failure in session.exec(select(VerificationFailure)).all():
            failure.at = utcnow() - timedelta(minutes=2)
            session.add(failure)
    again = await check(verifier, "100200300", "94107", phone="+15555550100", conv="later")
    assert again.result is Verification.VERIFIED


async def _records(verifier, phone):
    return await verifier.directory.find_by_phone(phone)


async def test_caller_factor_zip_and_last4(verifier):
    james = await _records(verifier, "+15555550100")
    sam = await _records(verifier, "+15555550144")  # two accounts; only 12 Oak has a card
    maria = await _records(verifier, "+15555550111")  # no stored method
    assert await verifier.caller_factor(james, "zip") == "zip"
    assert await verifier.caller_factor(james, "last4") == "last4"
    assert await verifier.caller_factor(maria, "last4") == "zip"
    assert await verifier.caller_factor(sam, "last4") == "zip"

    async def confirm(records, answer, factor, phone):
        return await verifier.confirm_caller(
            records=records, answer=answer, factor=factor, caller_phone=phone,
            conversation_id="call:CA1",
        )

    ok = await confirm(james, "4242", "last4", "+15555550100")
    assert ok.result is Verification.VERIFIED and ok.record.name == "James Smith"
    assert (await confirm(james, "94107", "zip", "+15555550100")).result is Verification.VERIFIED
    both = await confirm(sam, "97205", "zip", "+15555550144")
    assert both.result is Verification.VERIFIED
    assert [r.account_number for r in both.records] == ["500600700", "500600711"]
    assert (await confirm(james, "4444", "last4", "+15555550100")).result is Verification.FAILED
    assert verifier.failures("100200300", None) == 1  # counted against James's account


async def test_wrong_caller_factor_locks_the_number(verifier):
    """A wrong factor is a verification failure: the lockout (3 here) applies to the number,
    and then even the right answer is refused."""
    sam = await _records(verifier, "+15555550144")
    for guess in ("11111", "22222", "33333"):
        outcome = await verifier.confirm_caller(
            records=sam, answer=guess, factor="zip", caller_phone="+15555550144",
            conversation_id="call:CA2",
        )
    assert outcome.result is Verification.LOCKED
    right = await verifier.confirm_caller(
        records=sam, answer="97205", factor="zip", caller_phone="+15555550144",
        conversation_id="call:CA3",
    )
    assert right.result is Verification.LOCKED
    assert verifier.failures(None, "+15555550144") == 3


async def test_withheld_callers_share_one_lockout_key(verifier):
    for i, number in enumerate(("111111111", "222222222", "333333333")):
        outcome = await check(verifier, number, "12345", phone=None, conv=f"chat:{i}")
    assert outcome.result is Verification.LOCKED
    assert verifier.failures(None, WITHHELD) == 3
    # Another withheld caller in another conversation is locked out too; a number is not.
    assert (await check(verifier, "100200300", "94107", phone=None)).result is Verification.LOCKED
    assert (await check(verifier, "100200300", "94107")).result is Verification.VERIFIED
