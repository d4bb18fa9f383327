"""Claiming reminders, so that each goes out once however many runners there are.

A reminder is claimed by inserting its row, unique per account, offset and due date: a second
runner's insert of the same row fails (on PostgreSQL it waits for the first to commit, then
fails) and that runner moves on. A text is written to the outbox (``outbound_messages``, kind
``reminder``) in the same transaction as its claim, so a claimed text is always queued and a
queued one always claimed; the outbox sender sends it once, retrying failures, holding it in
quiet hours and skipping it once the number opted out. A call is claimed as ``calling``, placed,
then marked ``called``, ``retry`` (Twilio unreachable or 5xx: the next run takes it again by a
conditional update), ``failed`` (refused, or out of attempts) or ``unknown`` (no answer after
the request went out: it may have been placed, so it is not placed again).

Blocking: call from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage, Reminder
from paybot.reminders.due import DueReminder


def claim_text(engine: Engine, reminder: DueReminder, body: str) -> int | None:
    """Claim ``reminder`` and queue its text; the reminder's id, or None when another runner
    claimed it first."""
    return _claim(engine, reminder, body=body)


def claim_call(engine: Engine, reminder: DueReminder) -> int | None:
    """Claim ``reminder`` as a call about to be placed (``calling``); its id, or None when
    another runner claimed it first."""
    return _claim(engine, reminder, body=None)


def _claim(engine: Engine, reminder: DueReminder, *, body: str | None) -> int | None:
    """Insert the reminder's row (and with a ``body``, its outbox row) in one transaction."""
    values: dict[str, object] = {"channel": "voice", "status": "calling", "attempts": 1}
    try:
        with session_scope(engine) as session:
            if body is not None:
                message = OutboundMessage(to=reminder.to, kind="reminder", body=body)
                session.add(message)
                session.flush()
                values = {"channel": "sms", "status": "queued", "message_id": message.id}
            row = Reminder(
                account_id=reminder.account_id, offset_days=reminder.offset_days,
                due_date=reminder.due_date, to=reminder.to, amount=reminder.amount,
                currency=reminder.currency, **values,
            )  # fmt: skip
            session.add(row)
            session.flush()
            audit.record(
                session, f"reminder.{row.status}", account_id=row.account_id,
                reminder_id=row.id, offset_days=row.offset_days, channel=row.channel,
            )  # fmt: skip
            return row.id
    except IntegrityError:
        return None


def claim_retry(engine: Engine, reminder_id: int) -> Reminder | None:
    """Take a call reminder waiting in ``retry`` for one more attempt; None if taken."""
    with session_scope(engine) as session:
        row = queries.claim_call_retry(session=session, reminder_id=reminder_id)
        if row is not None:
            session.expunge(row)
        return row


def retry_ids(engine: Engine, limit: int = 100) -> list[int]:
    with session_scope(engine) as session:
        return queries.calls_to_retry(session=session, limit=limit)


def finish_call(engine: Engine, reminder_id: int, *, status: str, **values: object) -> None:
    """Leave ``calling`` for ``status`` (``call_sid``, ``last_error`` in ``values``)."""
    with session_scope(engine) as session:
        session.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id, Reminder.status == "calling")
            .values(status=status, **values)
        )
