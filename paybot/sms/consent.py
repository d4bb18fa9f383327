"""Opt-outs per number: STOP (and the other opt-out keywords) stops every text to the number
until START (or UNSTOP, or YES) brings it back. Every sender of text messages asks
:func:`may_text` first; the outbox sender skips, and marks ``opted_out``, what it may not send.

Synchronous (SQLAlchemy sessions): call from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import SmsConsent
from paybot.db.types import utcnow

log = logging.getLogger(__name__)


def may_text(engine: Engine, phone: str) -> bool:
    """Whether ``phone`` (E.164) takes text messages: False once it opted out (STOP) until it
    opts back in (START). Outreach must also wait out quiet hours
    (:class:`paybot.sms.quiet_hours.QuietHours`)."""
    with Session(engine) as session:
        return not queries.is_opted_out(session=session, phone=phone)


def opt_out(engine: Engine, phone: str, keyword: str, now: datetime | None = None) -> bool:
    """Record that ``phone`` opted out (by ``keyword``); True the first time (the one time a
    confirmation is due), False when it already had."""
    return _set(engine, phone, opted_out=True, keyword=keyword, now=now)


def opt_in(engine: Engine, phone: str, keyword: str, now: datetime | None = None) -> bool:
    """Record that ``phone`` opted back in; True when it had opted out."""
    return _set(engine, phone, opted_out=False, keyword=keyword, now=now)


def _set(
    engine: Engine, phone: str, *, opted_out: bool, keyword: str, now: datetime | None
) -> bool:
    now = now or utcnow()
    for _ in range(3):  # a concurrent first keyword from the same number inserted the row
        try:
            with session_scope(engine) as session:
                moved = queries.set_consent(
                    session=session, phone=phone, opted_out=opted_out, keyword=keyword, now=now
                )
                if moved is None:  # a new row: opting out changes things, opting in does not
                    row = SmsConsent(phone=phone, opted_out=opted_out, keyword=keyword)
                    row.changed_at = now
                    session.add(row)
                    moved = opted_out
        except IntegrityError:
            continue
        if moved:
            change = "opted out of" if opted_out else "opted back in to"
            log.info("a number %s text messages (%s)", change, keyword)
        return bool(moved)
    raise RuntimeError("could not record the opt-out state")  # pragma: no cover
