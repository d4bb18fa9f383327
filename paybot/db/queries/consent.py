"""Queries on ``sms_consents``: who opted out of text messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from paybot.db.models import SmsConsent


def consent_for(*, session: Session, phone: str) -> SmsConsent | None:
    """The consent row of ``phone`` (E.164); None: it never texted a keyword."""
    return session.exec(select(SmsConsent).where(SmsConsent.phone == phone)).first()


def is_opted_out(*, session: Session, phone: str) -> bool:
    """True when ``phone`` (E.164) opted out and has not opted back in."""
    query = select(SmsConsent.opted_out).where(SmsConsent.phone == phone)
    return bool(session.exec(query).first())


def set_consent(
    *, session: Session, phone: str, opted_out: bool, keyword: str, now: datetime
) -> bool | None:
    """Move ``phone`` to ``opted_out`` if it is not there already: True when it moved, False
    when it already was, None when the number has no row yet (add one: the caller inserts,
    and a concurrent insert of the same number fails on the unique phone)."""
    moved = session.execute(
        update(SmsConsent)
        .where(SmsConsent.phone == phone, SmsConsent.opted_out == (not opted_out))
        .values(opted_out=opted_out, keyword=keyword, changed_at=now)
    ).rowcount
    if moved:
        return True
    return False if consent_for(session=session, phone=phone) is not None else None
