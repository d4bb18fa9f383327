"""Queries on ``outbound_messages``, the text-message outbox.

A queued message is *due* when it has no ``next_attempt_at`` or that time has come. Taking
one is a conditional UPDATE (:func:`claim_message`) that only one sender can win.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from paybot.db.models import OutboundMessage

# A sender's pass claims up to 20 messages and sends them one request (at most ten seconds)
# after another: a claim older than this was left by a sender that stopped mid-send
# (voice_bridge.jobs.receipt_sender marks such rows unknown), not one still working through
# a pass that Twilio slowed down.
SENDING_LEASE = timedelta(minutes=10)
STOPPED_MID_SEND = "sender stopped mid-send"  # last_error of a row parked by park_stale_sending


def receipt_message(*, session: Session, payment_id: int) -> OutboundMessage | None:
    """The receipt queued for ``payment_id``, if one was."""
    query = select(OutboundMessage).where(
        OutboundMessage.payment_id == payment_id, OutboundMessage.kind == "receipt"
    )
    return session.exec(query).first()


def message_by_provider_id(*, session: Session, provider_id: str) -> OutboundMessage | None:
    """The message Twilio accepted as ``provider_id`` (its MessageSid), if it is ours."""
    query = select(OutboundMessage).where(OutboundMessage.provider_id == provider_id)
    return session.exec(query).first()


def send_in_flight(*, session: Session, now: datetime) -> bool:
    """True while a sender holds a message it claimed within :data:`SENDING_LEASE` of ``now``
    and whose MessageSid is not stored yet (rows left ``sending`` longer ago are not)."""
    query = select(OutboundMessage.id).where(
        OutboundMessage.status == "sending",
        OutboundMessage.provider_id.is_(None),  # type: ignore[union-attr]
        OutboundMessage.claimed_at >= now - SENDING_LEASE,  # type: ignore[operator]
    )
    return session.exec(query.limit(1)).first() is not None


def stale_sending_ids(*, session: Session, before: datetime, limit: int) -> list[int]:
    """Up to ``limit`` ids of messages still ``sending`` that were claimed before ``before``
    (or before claims were timed)."""
    query = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status == "sending",
            or_(
                OutboundMessage.claimed_at.is_(None),  # type: ignore[union-attr]
                OutboundMessage.claimed_at < before,  # type: ignore[operator]
            ),
        )
        .order_by(OutboundMessage.id)
        .limit(limit)
    )
    return list(session.exec(query).all())


def park_stale_sending(*, session: Session, message_id: int, before: datetime) -> bool:
    """Mark message ``message_id`` ``unknown`` if it is still ``sending`` under a claim older
    than ``before``: its sender stopped mid-send, so it may have gone out and is not retried.
    False when it moved on meanwhile. Commit to make it stick."""
    return session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.status == "sending",
            or_(
                OutboundMessage.claimed_at.is_(None),  # type: ignore[union-attr]
                OutboundMessage.claimed_at < before,  # type: ignore[operator]
            ),
        )
        .values(status="unknown", last_error=STOPPED_MID_SEND)
    ).rowcount == 1


def due_message_ids(*, session: Session, now: datetime, limit: int) -> list[int]:
    """Up to ``limit`` ids of queued messages due at ``now``, oldest first."""
    query = (
        select(OutboundMessage.id)
        .where(OutboundMessage.status == "queued", _due(now))
        .order_by(OutboundMessage.id)
        .limit(limit)
    )
    return list(session.exec(query).all())


def claim_message(*, session: Session, message_id: int, now: datetime) -> OutboundMessage | None:
    """Take message ``message_id`` for one send attempt: ``queued`` (and due) becomes
    ``sending`` and ``attempts`` goes up by one. The row as it is now, or None when another
    sender took it first (or it is not due). Commit to make the claim stick."""
    won = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.status == "queued",
            _due(now),
        )
        .values(status="sending", attempts=OutboundMessage.attempts + 1, claimed_at=now)
    ).rowcount
    return session.get(OutboundMessage, message_id) if won == 1 else None


def _due(now: datetime):
    return or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= now)


BACKLOG_STATUSES = ("queued", "sending", "unknown")  # not yet sent, nor given up on


def outbox_backlog(*, session: Session) -> dict[str, int]:
    """How many messages wait in each of :data:`BACKLOG_STATUSES` (0 for none)."""
    query = (
        select(OutboundMessage.status, func.count())
        .where(OutboundMessage.status.in_(BACKLOG_STATUSES))  # type: ignore[attr-defined]
        .group_by(OutboundMessage.status)
    )
    counts = dict.fromkeys(BACKLOG_STATUSES, 0)
    counts.update({status: count for status, count in session.exec(query).all()})
    return counts
