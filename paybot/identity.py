"""Identification and verification (ID&V), with lockouts and a global rate limit.

Two checks: an account number plus its billing ZIP (anyone), and one more factor for a caller
the bridge vouches for by phone number (the ZIP, or the stored method's last four, of the
accounts on that number). Failed checks are stored and counted per account number and per
caller number within a window across all conversations, so nobody can enumerate accounts by
calling again; callers without a number (withheld, chat) all count under one key. Too many
failures across everyone within a short window refuse every check for a while. An unknown
account and a wrong ZIP fail the same way: the caller learns nothing about which it was.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot import audit
from paybot.accounts.directory import AccountRecord, CustomerDirectory
from paybot.accounts.methods import default_method
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import VerificationFailure
from paybot.db.types import utcnow
from paybot.parsing.card_numbers import contains_card_number

log = logging.getLogger(__name__)
# The lockout key of every caller without a number (caller ID withheld, chat): they are
# counted together, so a sweep from a withheld number is locked out like one from a number.
WITHHELD = "withheld"
Factor = Literal["zip", "last4"]


class Verification(str, enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    LOCKED = "locked"
    THROTTLED = "throttled"  # too many failures across everyone just now: try again later


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures, per account or per caller number, within what window, lock out;
    and how many failures across everyone within ``rate_window`` refuse every check."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=30)
    rate_limit: int = 30
    rate_window: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class VerifyOutcome:
    result: Verification
    record: AccountRecord | None = None
    records: tuple[AccountRecord, ...] = ()  # every account a caller factor matched


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
        """Verify, or count a failure; LOCKED once the account or the number (``None``:
        withheld, counted under one key) hit the limit; THROTTLED while everyone has."""
        refused = await self._refused([account_number], caller_phone, conversation_id)
        if refused is not None:
            return refused
        record = await self.directory.find_by_account_number(account_number)
        if record is not None and _zip_matches(record.billing_zip, billing_zip):
            await asyncio.to_thread(self._audit, "idv.verified", record, conversation_id)
            return VerifyOutcome(Verification.VERIFIED, record, (record,))
        await asyncio.to_thread(
            self._record_failure, account_number, caller_phone, conversation_id, record
        )
        if await asyncio.to_thread(self.is_locked, account_number, caller_phone):
            return VerifyOutcome(Verification.LOCKED)
        return VerifyOutcome(Verification.FAILED)

    async def caller_factor(self, records: list[AccountRecord], wanted: Factor) -> Factor:
        """The factor to ask a caller known by number for: ``last4`` when it is wanted and
        every account on the number has a stored method, else the billing ZIP."""
        if wanted == "zip" or not records:
            return "zip"
        last4s = await asyncio.gather(*(self._last4(r) for r in records))
        return "last4" if all(last4s) else "zip"

    async def confirm_caller(
        self,
        *,
        records: list[AccountRecord],
        answer: str,
        factor: Factor,
        caller_phone: str,
        conversation_id: str | None,
    ) -> VerifyOutcome:
        """Check the one more factor of a caller known by number against the accounts on
        that number; the accounts it matches are ``records``. A wrong answer is a failure
        like a wrong ZIP in :meth:`verify` (counted against the number, and the account when
        there is one)."""
        numbers = [r.account_number for r in records]
        refused = await self._refused(numbers, caller_phone, conversation_id)
        if refused is not None:
            return refused
        matched: list[AccountRecord] = []
        for record in records:
            expected = await self._last4(record) if factor == "last4" else record.billing_zip
            if expected and _factor_matches(factor, expected, answer):
                matched.append(record)
        if matched:
            for record in matched:
                await asyncio.to_thread(self._audit, "idv.verified", record, conversation_id)
            return VerifyOutcome(Verification.VERIFIED, matched[0], tuple(matched))
        only = records[0] if len(records) == 1 else None
        await asyncio.to_thread(
            self._record_failure,
            only.account_number if only else "",
            caller_phone,
            conversation_id,
            only,
        )
        locked = await asyncio.to_thread(
            lambda: any(self.is_locked(n, caller_phone) for n in numbers)
        )
        if locked:
            return VerifyOutcome(Verification.LOCKED)
        return VerifyOutcome(Verification.FAILED)

    async def _last4(self, record: AccountRecord) -> str | None:
        if record.account_id is None:
            return None
        method = await asyncio.to_thread(default_method, self.engine, record.account_id)
        return method.last4 if method else None

    async def _refused(
        self, numbers: list[str], caller_phone: str | None, conversation_id: str | None
    ) -> VerifyOutcome | None:
        """THROTTLED or LOCKED (audited) when no check may run now, else None."""
        if await asyncio.to_thread(self.is_throttled):
            await asyncio.to_thread(self._audit, "idv.throttled", None, conversation_id)
            log.warning("idv refused: rate limit reached (conversation=%s)", conversation_id)
            return VerifyOutcome(Verification.THROTTLED)
        for number in numbers or [None]:
            if await asyncio.to_thread(self.is_locked, number, caller_phone):
                await asyncio.to_thread(self._audit, "idv.locked", None, conversation_id)
                return VerifyOutcome(Verification.LOCKED)
        return None

    def is_throttled(self) -> bool:
        """True when everyone together failed ``rate_limit`` times within ``rate_window``."""
        since = utcnow() - self.policy.rate_window
        with Session(self.engine) as session:
            count = queries.count_verification_failures(session=session, since=since)
        return count >= self.policy.rate_limit

    def is_locked(self, account_number: str | None, caller_phone: str | None) -> bool:
        """True when the account or the caller number (``None``: the withheld key) has too
        many recent failures."""
        since = utcnow() - self.policy.window
        limit = self.policy.max_failures
        with Session(self.engine) as session:

            def recent(**key: str) -> int:
                return queries.count_verification_failures(session=session, since=since, **key)

            if account_number and recent(account_number=account_number) >= limit:
                return True
            return recent(caller_phone=caller_phone or WITHHELD) >= limit

    def failures(self, account_number: str | None, caller_phone: str | None) -> int:
        """Recent failures for the account or the caller number (for tests and the console;
        ``caller_phone`` may be :data:`WITHHELD`)."""
        if not account_number and not caller_phone:
            return 0
        since = utcnow() - self.policy.window
        with Session(self.engine) as session:
            return queries.count_verification_failures(
                session=session,
                since=since,
                account_number=account_number,
                caller_phone=caller_phone,
            )

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
                    caller_phone=caller_phone or WITHHELD,
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


def _factor_matches(factor: Factor, stored: str, given: str) -> bool:
    if factor == "zip":
        return _zip_matches(stored, given)
    digits = "".join(ch for ch in given if ch.isdigit())
    return len(digits) == 4 and hmac.compare_digest(stored.encode(), digits.encode())


def _zip_matches(stored: str, given: str) -> bool:
    """Compare the five-digit ZIPs in constant time (ZIP+4 on either side is fine)."""
    a = "".join(ch for ch in stored if ch.isdigit())[:5]
    b = "".join(ch for ch in given if ch.isdigit())[:5]
    return len(b) == 5 and hmac.compare_digest(a, b)
