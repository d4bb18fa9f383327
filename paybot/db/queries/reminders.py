"""Queries on ``reminders`` and the accounts they are for.

A reminder is claimed by inserting its row (unique per account, offset and due date); a call
to place again is claimed by a conditional UPDATE (``retry`` to ``calling``). Either way only
one runner wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import update
from sqlmodel import Session, select

from paybot.db.models import Account, AccountStatus, Reminder


def accounts_due_on(*, session: Session, days: Iterable[date], mirrored: bool) -> list[Account]:
    """Active accounts with a phone and a balance, due on one of ``days``, by id; with
    ``mirrored`` only the rows a CRM answered for (``crm_synced_at`` set)."""
    query = (
        select(Account)
        .where(Account.status == AccountStatus.ACTIVE.value)
        .where(Account.phone.is_not(None))  # type: ignore[union-attr]
        .where(Account.balance > 0)
        .where(Account.due_date.in_(list(days)))  # type: ignore[union-attr]
        .order_by(Account.id)
    )
    if mirrored:
        query = query.where(Account.crm_synced_at.is_not(None))  # type: ignore[union-attr]
    return list(session.exec(query).all())


def reminder_keys(
    *, session: Session, account_ids: Iterable[int], due_dates: Iterable[date]
) -> set[tuple[int, int, date]]:
    """(account id, offset, due date) of the reminders already claimed among these."""
    ids = list(account_ids)
    if not ids:
        return set()
    query = select(Reminder.account_id, Reminder.offset_days, Reminder.due_date).where(
        Reminder.account_id.in_(ids),  # type: ignore[attr-defined]
        Reminder.due_date.in_(list(due_dates)),  # type: ignore[attr-defined]
    )
    return {tuple(row) for row in session.exec(query).all()}  # type: ignore[misc]


def calls_to_retry(*, session: Session, limit: int) -> list[int]:
    """Ids of call reminders waiting for another attempt, oldest first."""
    query = (
        select(Reminder.id)
        .where(Reminder.status == "retry", Reminder.channel == "voice")
        .order_by(Reminder.id)
        .limit(limit)
    )
    return list(session.exec(query).all())


def claim_call_retry(*, session: Session, reminder_id: int) -> Reminder | None:
    """Take a ``retry`` call reminder for one more attempt (``calling``, attempts + 1); None
    when another runner took it first."""
    won = session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "retry")
        .values(status="calling", attempts=Reminder.attempts + 1)
    ).rowcount
    return session.get(Reminder, reminder_id) if won == 1 else None


def unreplied_reminder(*, session: Session, phone: str, since: datetime) -> Reminder | None:
    """The latest reminder to ``phone`` made after ``since`` that has no reply yet."""
    query = (
        select(Reminder)
        .where(Reminder.to == phone, Reminder.created_at >= since)
        .where(Reminder.replied_at.is_(None))  # type: ignore[union-attr]
        .order_by(Reminder.id.desc())  # type: ignore[union-attr]
    )
    return session.exec(query).first()


def mark_replied(*, session: Session, reminder_id: int, reply: str, now: datetime) -> bool:
    """Note the first reply to a reminder (only once: False when one was noted already)."""
    won = session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.replied_at.is_(None))  # type: ignore
        .values(replied_at=now, reply=reply)
    ).rowcount
    return won == 1
