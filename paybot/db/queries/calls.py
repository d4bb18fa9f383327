"""Queries on ``calls``."""

from __future__ import annotations

from sqlmodel import Session, select

from paybot.db.models import Call


def call_by_sid(*, session: Session, call_sid: str) -> Call | None:
    """The row of Twilio's ``call_sid``, if any."""
    return session.exec(select(Call).where(Call.call_sid == call_sid)).first()
