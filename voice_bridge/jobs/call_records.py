"""Call records: one ``calls`` row per CallSid, kept up to date from Twilio's webhooks.

Twilio may deliver the voice webhook and the status callbacks in any order, more than once,
and to different bridges. So every write here is idempotent and ordered by the status's
place in the lifecycle rather than by arrival: a conditional UPDATE only moves a call forward
(``ringing`` → ``in-progress`` → an ending), and the first ending sticks. An unknown CallSid
gets its row on first sight, whichever webhook brings it.

Synchronous (SQLAlchemy sessions): call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import Call, CallStatus
from paybot.db.types import utcnow

log = logging.getLogger(__name__)


class UnknownCallStatus(ValueError):
    """A ``CallStatus`` value Twilio does not document."""


def parse_status(value: str) -> CallStatus:
    """``value`` as a :class:`CallStatus`.

    Raises:
        UnknownCallStatus: Not one of Twilio's call statuses.
    """
    try:
        return CallStatus(value)
    except ValueError:
        raise UnknownCallStatus(f"unknown call status {value!r}") from None


def record_call_started(
    engine: Engine,
    *,
    call_sid: str,
    caller: str | None,
    called: str | None,
    direction: str | None,
    status: CallStatus = CallStatus.RINGING,
    now: datetime | None = None,
) -> Call:
    """Record the voice webhook of ``call_sid`` (again: a repeated webhook changes nothing)."""
    return record_call_status(
        engine,
        call_sid=call_sid,
        status=status,
        caller=caller,
        called=called,
        direction=direction,
        now=now,
    )


def record_call_status(
    engine: Engine,
    *,
    call_sid: str,
    status: CallStatus,
    duration_s: int | None = None,
    caller: str | None = None,
    called: str | None = None,
    direction: str | None = None,
    now: datetime | None = None,
) -> Call:
    """Move ``call_sid`` to ``status`` unless it is already there or further along.

    Details (caller, called, direction, duration) only fill gaps; they never overwrite.
    Returns the row as it is afterwards.
    """
    at = now or utcnow()
    details = {"caller": caller, "called": called, "direction": direction}
    if _insert(engine, call_sid=call_sid, status=status, details=details, at=at):
        log.info("call %s recorded: %s", call_sid, status.value)
    else:
        _move_forward(engine, call_sid=call_sid, status=status, details=details, at=at)
    if duration_s is not None or status.rank == CallStatus.COMPLETED.rank:
        _set_ending(engine, call_sid=call_sid, status=status, duration_s=duration_s)
    found = get_call(engine, call_sid)
    assert found is not None  # inserted above or already there
    return found


@dataclass(frozen=True)
class CallEnd:
    """How a call's stream ended, as the bridge saw it: why ("transferred: <reason>", "caller
    hung up", "bot hung up", ...), the step it was at (the live calls' label: "listening:
    digits", "secure capture: card_number"...), the caller's turns and the seconds it lasted."""

    reason: str
    step: str | None = None
    turns: int | None = None
    handle_s: float | None = None


def record_call_ended_reason(
    engine: Engine, *, call_sid: str, reason: str, end: CallEnd | None = None
) -> bool:
    """Say why the call ended ("transfer", "hangup", "caller_hangup", ...), once.

    The bridge knows this, Twilio does not; the first reason given sticks. Returns whether
    this call wrote it; then a ``call.ended`` audit event (conversation ``call:<CallSid>``)
    keeps ``end``'s step, turns and seconds for the console's reports, in the same commit.
    """
    end = end or CallEnd(reason)
    with session_scope(engine) as session:
        result = session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.ended_reason.is_(None))
            .values(ended_reason=reason[:64], updated_at=utcnow())
        )
        if result.rowcount != 1:
            return False
        handle_s = None if end.handle_s is None else max(0, round(end.handle_s))
        audit.record(session, "call.ended", conversation_id=f"call:{call_sid}",
                     reason=reason[:64], step=(end.step or "")[:64] or None, turns=end.turns,
                     handle_s=handle_s)  # fmt: skip
        return True


async def record_end(engine: Engine, *, call_sid: str, end: CallEnd) -> None:
    """:func:`record_call_ended_reason` from the event loop; a failure is logged, not raised
    (the call is over either way)."""
    try:
        await asyncio.to_thread(
            record_call_ended_reason, engine, call_sid=call_sid, reason=end.reason, end=end
        )
    except Exception as exc:
        log.warning("call %s: end not recorded (%s)", call_sid, type(exc).__name__)


def mark_answered(engine: Engine, *, call_sid: str) -> bool:
    """Mark ``call_sid`` (already recorded) as answered with a stream token. False when it
    already was: the voice webhook is a replay and must not get a second token. One
    conditional UPDATE, so of two bridges answering at once exactly one wins."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.answered_at.is_(None))
            .values(answered_at=utcnow())
        )
        return result.rowcount == 1


def consume_stream_token(engine: Engine, *, call_sid: str) -> bool:
    """Use up the stream token of ``call_sid``: True for the first stream of an answered
    call, False for any later one (or a call we never answered)."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Call)
            .where(
                Call.call_sid == call_sid,
                Call.answered_at.is_not(None),
                Call.stream_started_at.is_(None),
            )
            .values(stream_started_at=utcnow())
        )
        return result.rowcount == 1


def rearm_stream(engine: Engine, *, call_sid: str) -> Call | None:
    """Allow one more stream for an answered call (it comes back from ``<Pay>``): the next
    token :func:`consume_stream_token` accepts. Returns the row, None for a call we never
    answered (nothing changes then)."""
    with session_scope(engine) as session:
        session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.answered_at.is_not(None))
            .values(stream_started_at=None, updated_at=utcnow())
        )
    call = get_call(engine, call_sid)
    return call if call is not None and call.answered_at is not None else None


def get_call(engine: Engine, call_sid: str) -> Call | None:
    """The row of ``call_sid``, if any."""
    with Session(engine, expire_on_commit=False) as session:
        return queries.call_by_sid(session=session, call_sid=call_sid)


def _insert(
    engine: Engine, *, call_sid: str, status: CallStatus, details: dict, at: datetime
) -> bool:
    """Create the row if the call is new; False if it exists (a concurrent insert included)."""
    with Session(engine) as session:
        if queries.call_by_sid(session=session, call_sid=call_sid) is not None:
            return False
        session.add(
            Call(call_sid=call_sid, status=status.value, started_at=at, updated_at=at, **details)
        )
        try:
            session.commit()
        except IntegrityError:  # another webhook for this call won the race
            session.rollback()
            return False
        return True


def _move_forward(
    engine: Engine, *, call_sid: str, status: CallStatus, details: dict, at: datetime
) -> None:
    """One conditional UPDATE per change, so concurrent writers cannot move a call back."""
    earlier = [s.value for s in CallStatus if s.rank < status.rank]
    with session_scope(engine) as session:
        moved = session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.status.in_(earlier))
            .values(status=status.value, updated_at=at)
        )
        for column, value in details.items():
            if value:
                session.execute(
                    update(Call)
                    .where(Call.call_sid == call_sid, getattr(Call, column).is_(None))
                    .values({column: value})
                )
    if moved.rowcount:
        log.info("call %s now %s", call_sid, status.value)


def _set_ending(
    engine: Engine, *, call_sid: str, status: CallStatus, duration_s: int | None
) -> None:
    """Fill the duration, and for calls that never connected the ending as the reason."""
    with session_scope(engine) as session:
        if duration_s is not None:
            session.execute(
                update(Call)
                .where(Call.call_sid == call_sid, Call.duration_s.is_(None))
                .values(duration_s=max(0, duration_s))
            )
        if status is not CallStatus.COMPLETED and status.rank == CallStatus.COMPLETED.rank:
            session.execute(
                update(Call)
                .where(
                    Call.call_sid == call_sid,
                    Call.status == status.value,
                    Call.ended_reason.is_(None),
                )
                .values(ended_reason=status.value)
            )


async def softphone_call_ended(engine: Engine, call_sid: str) -> None:
    """A browser softphone call's socket closed: record it completed, with its duration, as
    Twilio's status callback would for a phone call (none comes for these). A failure is
    logged, not raised."""

    def complete() -> None:
        call = get_call(engine, call_sid)
        started = call.started_at if call is not None else None
        duration = int((utcnow() - started).total_seconds()) if started is not None else None
        record_call_status(
            engine, call_sid=call_sid, status=CallStatus.COMPLETED, duration_s=duration
        )

    try:
        await asyncio.to_thread(complete)
    except Exception as exc:
        log.warning("call %s: end not recorded (%s)", call_sid, type(exc).__name__)
