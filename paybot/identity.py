"""Identification and verification (ID&V): account number plus billing ZIP, with lockouts.

Failed checks are stored, and counted per account number and per caller number within a
window across all conversations, so nobody can enumerate accounts by calling again. An unknown
account and a wrong ZIP fail the same way: the caller learns nothing about which it was.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot import audit
from paybot.accounts.directory import AccountRecord, CustomerDirectory
from paybot.db.engine import session_scope
from paybot.db.models import VerificationFailure
from paybot.db.types import utcnow
from paybot.parsing.card_numbers import contains_card_number

log = logging.getLogger(__name__)


class Verification(str, enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    LOCKED = "locked"


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures, per account or per caller number, within what window, lock out."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class VerifyOutcome:
    result: Verification
    record: AccountRecord | None = None


class IdentityVerifier:
    """Checks an account number and billing ZIP, and keeps count of failures."""

    def __init__(
        self, engine: Engine, directory: CustomerDirectory, policy: LockoutPolicy | None = None
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.policy = policy or LockoutPolicy()

    async def verify(
        self,
        *,
        account_number: str,
        billing_zip: str,
        caller_phone: str | None,
        conversation_id: str | None,
    ) -> VerifyOutcome:
        """Verify, or count a failure; LOCKED once the account or the number hit the limit."""
        if await asyncio.to_thread(self.is_locked, account_number, caller_phone):
            await asyncio.to_thread(self._audit, "idv.locked", None, conversation_id)
            return VerifyOutcome(Verification.LOCKED)
        record = await self.directory.find_by_account_number(account_number)
        if record is not None and _zip_matches(record.billing_zip, billing_zip):
            await asyncio.to_thread(self._audit, "idv.verified", record, conversation_id)
            return VerifyOutcome(Verification.VERIFIED, record)
        await asyncio.to_thread(
            self._record_failure, account_number, caller_phone, conversation_id, record
        )
        if await asyncio.to_thread(self.is_locked, account_number, caller_phone):
            return VerifyOutcome(Verification.LOCKED)
        return VerifyOutcome(Verification.FAILED)

    def is_locked(self, account_number: str | None, caller_phone: str | None) -> bool:
        """True when the account or the caller number has too many recent failures."""
        since = utcnow() - self.policy.window
        with Session(self.engine) as session:
            for column, value in (
                (VerificationFailure.account_number, account_number),
                (VerificationFailure.caller_phone, caller_phone),
            ):
                if not value:
                    continue
                count = session.exec(
                    select(func.count())
                    .select_from(VerificationFailure)
                    .where(column == value, VerificationFailure.at >= since)
                ).one()
                if count >= self.policy.max_failures:
                    return True
        return False

    def failures(self, account_number: str | None, caller_phone: str | None) -> int:
        """Recent failures for the account or the caller number (for tests and the console)."""
        since = utcnow() - self.policy.window
        conditions = [
            c
            for c, v in (
                (VerificationFailure.account_number == account_number, account_number),
                (VerificationFailure.caller_phone == caller_phone, caller_phone),
            )
            if v
        ]
        if not conditions:
            return 0
        with Session(self.engine) as session:
            return session.exec(
                select(func.count())
                .select_from(VerificationFailure)
                .where(or_(*conditions), VerificationFailure.at >= since)
            ).one()

    def _record_failure(
        self,
        account_number: str,
        caller_phone: str | None,
        conversation_id: str | None,
        record: AccountRecord | None,
    ) -> None:
        with session_scope(self.engine) as session:
            session.add(
                VerificationFailure(
                    # A card number typed as an account number is never stored.
                    account_number=None
                    if contains_card_number(account_number)
                    else account_number[:32] or None,
                    caller_phone=caller_phone,
                    conversation_id=conversation_id,
                )
            )
            audit.record(
                session,
                "idv.failed",
                account_id=record.account_id if record else None,
                conversation_id=conversation_id,
            )
        log.info("idv failure recorded (conversation=%s)", conversation_id)

    def _audit(self, kind: str, record: AccountRecord | None, conversation_id: str | None) -> None:
        with session_scope(self.engine) as session:
            audit.record(
                session,
                kind,
                account_id=record.account_id if record else None,
                conversation_id=conversation_id,
            )


def _zip_matches(stored: str, given: str) -> bool:
    """Compare the five-digit ZIPs in constant time (ZIP+4 on either side is fine)."""
    a = "".join(ch for ch in stored if ch.isdigit())[:5]
    b = "".join(ch for ch in given if ch.isdigit())[:5]
    return len(b) == 5 and hmac.compare_digest(a, b)
