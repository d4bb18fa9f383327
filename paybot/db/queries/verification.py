"""Queries on ``verification_failures``, the identity checks that failed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, select

from paybot.db.models import VerificationFailure


def count_verification_failures(
    *,
    session: Session,
    since: datetime,
    account_number: str | None = None,
    caller_phone: str | None = None,
) -> int:
    """Failures at or after ``since`` against ``account_number`` or from ``caller_phone``
    (either matches); with neither, every failure since then."""
    query = (
        select(func.count()).select_from(VerificationFailure).where(VerificationFailure.at >= since)
    )
    keys = [
        column == value
        for column, value in (
            (VerificationFailure.account_number, account_number),
            (VerificationFailure.caller_phone, caller_phone),
        )
        if value
    ]
    if keys:
        query = query.where(or_(*keys))
    return session.exec(query).one()
