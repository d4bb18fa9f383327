"""What the outbox does with a message before it goes to Twilio: send it, skip it (the number
opted out) or hold it until the recipient's quiet hours are over.

Opt-outs stop every kind of message. Quiet hours hold *outreach* only: every kind not in
:data:`ASKED_FOR`. A receipt is asked for in the conversation, a moment before it is queued, so
it goes out at once whatever the hour; a reminder or a notice the customer did not ask for now
waits. Replies to an inbound text are TwiML answers and never pass through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from paybot.db import queries
from paybot.sms.quiet_hours import QuietHours

ASKED_FOR = frozenset({"receipt"})  # kinds a customer asked for in the conversation


@dataclass(frozen=True)
class Verdict:
    """``send``; or not, because the number ``opted_out``; or not before ``resume_at``."""

    send: bool
    opted_out: bool = False
    resume_at: datetime | None = None


SEND = Verdict(send=True)


def verdict(
    session: Session, *, to: str, kind: str, now: datetime, quiet: QuietHours | None
) -> Verdict:
    """What to do now with a ``kind`` message to ``to`` (E.164)."""
    if queries.is_opted_out(session=session, phone=to):
        return Verdict(send=False, opted_out=True)
    if quiet is not None and kind not in ASKED_FOR:
        resume = quiet.resume_at(to, now)
        if resume is not None:
            return Verdict(send=False, resume_at=resume)
    return SEND
