"""ID&V with lockouts across conversations, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from paybot.accounts.directory import LocalDirectory
from paybot.db.models import AuditEvent, VerificationFailure
from paybot.gateway.sandbox import SandboxGateway
from paybot.identity import IdentityVerifier, LockoutPolicy, Verification
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
