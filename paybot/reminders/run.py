"""One reminder run: every reminder due today, made once, at the configured pace.

For each due reminder (:mod:`paybot.reminders.due`), in order:

1. CRM mode: the account is asked of the CRM again (which refreshes its mirror row); a CRM
   that does not answer, or an account no longer due or owing, gets no reminder this run.
2. A number that opted out (STOP) gets nothing, by text or by call, and nothing is claimed,
   so a number that opts back in (START) gets the reminders still due.
3. Claimed and made (:mod:`paybot.reminders.claims`), no faster than ``rate_per_s``: a text
   goes to the outbox (which holds it through quiet hours); a call is placed through the
   :class:`Dialer`, unless the number is in its quiet hours (then it waits for a later run).

Calls that failed in a way worth trying again are placed again by the next run (first thing,
so the run interval is the back-off), up to ``PAYBOT_SMS_MAX_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Protocol

from sqlalchemy.engine import Engine

from paybot.accounts.directory import CustomerDirectory, DirectoryError
from paybot.db.types import utcnow
from paybot.reminders import claims
from paybot.reminders.due import DueReminder, due_reminders, reminder_text
from paybot.settings import Settings
from paybot.sms.consent import may_text
from paybot.sms.quiet_hours import QuietHours, zone

log = logging.getLogger(__name__)


class CallFailed(RuntimeError):
    """Placing a call failed. ``retryable``: trying again later may work; ``maybe_done``: no
    answer came after the request went out, so the call may have been placed."""

    def __init__(self, reason: str, *, retryable: bool, maybe_done: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:64]
        self.retryable = retryable
        self.maybe_done = maybe_done


class Dialer(Protocol):
    """Places an outbound call that starts the bot's conversation (blocking)."""

    def place_call(self, to: str) -> str:
        """Call ``to`` (E.164); the CallSid. Raises :class:`CallFailed`."""
        ...


@dataclass
class RunResult:
    """What one run did (counts of reminders)."""

    queued: int = 0  # texts now in the outbox
    called: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0
    opted_out: int = 0  # not made: the number opted out
    held: int = 0  # calls not placed in quiet hours (a later run places them)
    taken: int = 0  # claimed by another runner first
    unconfirmed: int = 0  # CRM mode: the CRM did not answer, or the account is no longer due

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def summary(self) -> str:
        parts = [f"{getattr(self, f.name)} {f.name}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing due"


class Pacer:
    """At most ``rate_per_s`` steps a second (a step waits for its turn)."""

    def __init__(self, rate_per_s: float) -> None:
        self.gap = 1.0 / rate_per_s
        self.next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if now < self.next:
            await asyncio.sleep(self.next - now)
            now = self.next
        self.next = now + self.gap


@dataclass
class ReminderRun:
    """The reminder job with its settings; :meth:`run` it once per run."""

    engine: Engine
    settings: Settings
    dialer: Dialer | None = None  # needed for PAYBOT_REMINDER_CHANNEL=voice
    directory: CustomerDirectory | None = None  # CRM mode: asked again before each reminder

    @property
    def quiet(self) -> QuietHours | None:
        s = self.settings
        return QuietHours.from_spec(s.sms_quiet_hours, s.sms_time_zone)

    def today(self) -> date:
        """Today where the business is (``PAYBOT_SMS_TIME_ZONE``)."""
        return datetime.now(zone(self.settings.sms_time_zone)).date()

    async def run(self, today: date | None = None, now: datetime | None = None) -> RunResult:
        """Make every reminder due ``today``; the counts (logged, no numbers or amounts)."""
        today = today or self.today()
        voice = self.settings.reminder_channel == "voice"
        if voice and self.dialer is None:
            raise ValueError("PAYBOT_REMINDER_CHANNEL=voice needs a way to place calls")
        result, pacer = RunResult(), Pacer(self.settings.reminder_rate_per_s)
        if voice:  # the calls earlier runs could not place (first: not this run's failures)
            await self._retry_calls(result, pacer, now)
        due = await asyncio.to_thread(
            due_reminders, self.engine, today=today, offsets=self.settings.reminder_offsets,
            mirrored=self.directory is not None,
        )  # fmt: skip
        for reminder in due:
            confirmed = await self._confirm(reminder)
            if confirmed is None:
                result.add("unconfirmed")
                continue
            if not await asyncio.to_thread(may_text, self.engine, confirmed.to):
                result.add("opted_out")
                continue
            if voice:
                result.add(await self._call(confirmed, pacer, now))
                continue
            await pacer.wait()
            body = reminder_text(confirmed, self.settings.business_name)
            won = await asyncio.to_thread(claims.claim_text, self.engine, confirmed, body)
            result.add("queued" if won else "taken")
        log.info("reminders for %s: %s", today.isoformat(), result.summary())
        return result

    async def _confirm(self, reminder: DueReminder) -> DueReminder | None:
        """The reminder as the CRM has the account now (local mode: as it is); None when the
        CRM did not answer or the account is no longer due, owing and on the same number."""
        if self.directory is None:
            return reminder
        try:
            record = await self.directory.find_by_account_number(reminder.account_number)
        except DirectoryError as exc:
            log.warning("reminders: the CRM did not answer (%s)", type(exc).__name__)
            return None
        if record is None or not record.confirmed or not record.is_active:
            return None
        if record.due_date != reminder.due_date or record.phone != reminder.to:
            return None
        if record.balance <= 0:
            return None
        return replace(reminder, amount=record.balance, currency=record.currency)

    async def _call(self, reminder: DueReminder, pacer: Pacer, now: datetime | None) -> str:
        quiet = self.quiet
        if quiet is not None and quiet.resume_at(reminder.to, now or utcnow()) is not None:
            return "held"
        await pacer.wait()
        reminder_id = await asyncio.to_thread(claims.claim_call, self.engine, reminder)
        if reminder_id is None:
            return "taken"
        return await self._place(reminder_id, reminder.to, attempt=1)

    async def _retry_calls(self, result: RunResult, pacer: Pacer, now: datetime | None) -> None:
        quiet = self.quiet
        for reminder_id in await asyncio.to_thread(claims.retry_ids, self.engine):
            row = await asyncio.to_thread(claims.claim_retry, self.engine, reminder_id)
            if row is None:
                continue
            if quiet is not None and quiet.resume_at(row.to, now or utcnow()) is not None:
                await asyncio.to_thread(
                    claims.finish_call, self.engine, reminder_id, status="retry",
                    attempts=row.attempts - 1,
                )  # fmt: skip
                result.add("held")
                continue
            await pacer.wait()
            result.add(await self._place(reminder_id, row.to, attempt=row.attempts))

    async def _place(self, reminder_id: int, to: str, *, attempt: int) -> str:
        assert self.dialer is not None
        try:
            sid = await asyncio.to_thread(self.dialer.place_call, to)
        except CallFailed as exc:
            if exc.maybe_done:
                status = "unknown"
            elif exc.retryable and attempt < self.settings.sms_max_attempts:
                status = "retry"
            else:
                status = "failed"
            await asyncio.to_thread(
                claims.finish_call, self.engine, reminder_id, status=status, last_error=exc.reason
            )
            log.warning("reminder %s: call attempt %d failed (%s)", reminder_id, attempt, status)
            return {"retry": "retrying"}.get(status, status)
        await asyncio.to_thread(
            claims.finish_call, self.engine, reminder_id, status="called", call_sid=sid,
            last_error=None,
        )  # fmt: skip
        log.info("reminder %s: call %s placed", reminder_id, sid)
        return "called"
