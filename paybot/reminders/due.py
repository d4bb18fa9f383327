"""Which reminders are due: an active account with a phone number and a balance whose due
date is exactly one of the offsets (``PAYBOT_REMINDER_OFFSETS_DAYS``) after today, and no
reminder yet for that offset and due date. A day without a run is not made up later: the
reminder of that offset is simply skipped (the next offset still comes).

What the text says: the business, what is due (the balance), the day, and what a reply of PAY
does (pay with the stored method, named by brand and last four, or pay by text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db import queries
from paybot.money import format_amount


@dataclass(frozen=True)
class DueReminder:
    """A reminder to make. ``repr`` names the account id and offset only."""

    account_id: int
    account_number: str
    to: str  # E.164
    offset_days: int
    due_date: date
    amount: Decimal
    currency: str
    method: str | None = None  # "Visa ending 4242": the stored method a PAY reply would use

    def __repr__(self) -> str:
        return f"DueReminder(account_id={self.account_id}, offset_days={self.offset_days})"

    @property
    def key(self) -> tuple[int, int, date]:
        return (self.account_id, self.offset_days, self.due_date)


def due_reminders(
    engine: Engine, *, today: date, offsets: tuple[int, ...], mirrored: bool = False
) -> list[DueReminder]:
    """The reminders due ``today`` and not claimed yet, by account (blocking). ``mirrored``:
    only accounts a CRM answered for (CRM mode)."""
    days = {today + timedelta(days=offset): offset for offset in offsets}
    with Session(engine) as session:
        accounts = queries.accounts_due_on(session=session, days=days, mirrored=mirrored)
        claimed = queries.reminder_keys(
            session=session, account_ids=[a.id for a in accounts if a.id], due_dates=days
        )
        due = []
        for account in accounts:
            assert account.id is not None and account.due_date is not None and account.phone
            offset = days[account.due_date]
            if (account.id, offset, account.due_date) in claimed:
                continue
            method = queries.default_payment_method(session=session, account_id=account.id)
            due.append(DueReminder(
                account_id=account.id, account_number=account.account_number,
                to=account.phone, offset_days=offset, due_date=account.due_date,
                amount=account.balance, currency=account.currency,
                method=f"{method.brand.title()} ending {method.last4}" if method else None,
            ))  # fmt: skip
    return due


def reminder_text(reminder: DueReminder, business: str) -> str:
    """The text: "Acme Water: $321.72 for account ending 0300 is due Dec 12. Reply PAY to pay
    $321.72 with Visa ending 4242. Reply STOP to opt out." (a last four, never more)."""
    amount = format_amount(reminder.amount, reminder.currency)
    when = f"{reminder.due_date:%b} {reminder.due_date.day}"
    if reminder.offset_days == 0:
        when = "today"
    if reminder.method:
        pay = f"Reply PAY to pay {amount} with {reminder.method}."
    else:
        pay = "Reply PAY to pay it by text now."
    return (
        f"{business}: {amount} for account ending {reminder.account_number[-4:]} is due "
        f"{when}. {pay} Reply STOP to opt out."
    )
