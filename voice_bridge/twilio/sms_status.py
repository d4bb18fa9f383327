"""``POST /twilio/sms-status``: Twilio's status callbacks for the texts the outbox sent.

Each outbound message asks for them (``StatusCallback``); Twilio posts ``MessageSid``,
``MessageStatus`` and, when it failed, ``ErrorCode``. The row with that MessageSid gets the
status in ``delivery_status`` (and a final one, delivered, undelivered or failed, in ``status``
too), the error code in ``error_code``. Callbacks can arrive late, twice or out of order, so a
message only moves forward (queued, sending, sent, then one ending; the first ending sticks).

Twilio can call back before the sender stored the MessageSid its send returned: while a send
is in flight (a claimed message without its MessageSid), an unknown MessageSid is looked up
again for up to ``EARLY_WAIT_S`` before it is refused.

Refused: a forged or missing signature (403), a MessageSid that is not one of ours (404), a
malformed one or a status Twilio does not document (400). Logs carry the MessageSid, never
the number or the text.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage
from paybot.db.types import utcnow
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.signature import verified_form

log = logging.getLogger(__name__)
SMS_STATUS_PATH = "/twilio/sms-status"
# Twilio's message statuses by their place in the lifecycle; every ending ranks the same.
RANK = {
    "accepted": 0, "scheduled": 0, "queued": 0, "sending": 1, "sent": 2,
    "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "read": 4,
}  # fmt: skip
FINAL = {"delivered", "undelivered", "failed", "canceled"}
EARLY_WAIT_S = 5.0  # how long a callback may wait for its send to store the MessageSid
_LOOK_AGAIN_S = 0.1
_SID = re.compile(r"[A-Za-z0-9]{2,64}")  # SM… or MM… and 32 hex digits, as Twilio makes them


class UnknownMessage(LookupError):
    """No outbound message has this MessageSid."""


def record_delivery(
    engine: Engine, *, message_sid: str, status: str, error_code: int | None
) -> bool:
    """Move the message Twilio accepted as ``message_sid`` to ``status``; False when it is
    already there or further along (blocking: run it in a thread).

    Raises:
        UnknownMessage: No outbound message has this MessageSid.
    """
    with Session(engine) as session:
        if queries.message_by_provider_id(session=session, provider_id=message_sid) is None:
            raise UnknownMessage(message_sid)
    earlier = [name for name, rank in RANK.items() if rank < RANK[status]]
    values: dict[str, object] = {"delivery_status": status, "delivery_updated_at": utcnow()}
    if error_code is not None:
        values["error_code"] = error_code
    if status in FINAL or status == "read":
        values["status"] = "delivered" if status == "read" else status
    with session_scope(engine) as session:
        moved = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.provider_id == message_sid,
                or_(
                    OutboundMessage.delivery_status.is_(None),  # type: ignore[union-attr]
                    OutboundMessage.delivery_status.in_(earlier),  # type: ignore[union-attr]
                ),
            )
            .values(**values)
        ).rowcount
    return bool(moved)


def _unknown_for_now(engine: Engine) -> bool:
    with Session(engine) as session:
        return queries.send_in_flight(session=session, now=utcnow())


async def record_when_known(
    engine: Engine, *, message_sid: str, status: str, error_code: int | None
) -> bool:
    """:func:`record_delivery`, looking the MessageSid up again while a send is in flight
    (for up to :data:`EARLY_WAIT_S`).

    Raises:
        UnknownMessage: Still no outbound message has this MessageSid.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EARLY_WAIT_S
    last_look = False
    while True:
        try:
            return await asyncio.to_thread(
                record_delivery, engine, message_sid=message_sid, status=status,
                error_code=error_code,
            )  # fmt: skip
        except UnknownMessage:
            if last_look or loop.time() >= deadline:
                raise
            if not await asyncio.to_thread(_unknown_for_now, engine):
                # The send in flight may have stored its SID between the look-up and this
                # check (one commit does both): one more look before refusing.
                last_look = True
                continue
        await asyncio.sleep(_LOOK_AGAIN_S)


async def sms_status_webhook(request: web.Request) -> web.Response:
    """Record one status callback (idempotent; a message never moves backwards)."""
    form = await verified_form(request, request.app[SETTINGS])
    message_sid = form.get("MessageSid", "").strip() or form.get("SmsSid", "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not message_sid or not status:
        raise web.HTTPBadRequest(text="missing MessageSid or MessageStatus\n")
    if not _SID.fullmatch(message_sid):  # never looked up: a NUL alone breaks PostgreSQL
        raise web.HTTPBadRequest(text="MessageSid is not a message SID\n")
    if status not in RANK:
        raise web.HTTPBadRequest(text="unknown message status\n")
    code = form.get("ErrorCode", "").strip()
    if code and not (code.isascii() and code.isdigit() and len(code) <= 9):
        raise web.HTTPBadRequest(text="ErrorCode is not a number\n")
    try:
        moved = await record_when_known(
            request.app[DB_ENGINE],
            message_sid=message_sid,
            status=status,
            error_code=int(code) if code else None,
        )
    except UnknownMessage:
        log.warning("sms status for an unknown message refused")
        raise web.HTTPNotFound(text="no such message\n") from None
    except SQLAlchemyError:
        log.exception("sms %s: could not record status %s", message_sid, status)
        raise web.HTTPServiceUnavailable(text="could not record the status\n") from None
    log.info("sms %s: %s%s%s", message_sid, status, f" (error {code})" if code else "",
             "" if moved else ", already further along")
    return web.Response(status=204)
