"""Works through the text-message outbox (``outbound_messages``, filled by
:func:`paybot.receipts.queue_receipt`) and sends each message through Twilio, once.

Every bridge runs one sender; several bridges share the table. A row is taken by a
conditional UPDATE (``status`` from ``queued`` to ``sending`` and ``attempts + 1``) that only one
of them can win, so no message goes out twice. Outcomes:

* accepted by Twilio: ``sent``, with the MessageSid in ``provider_id``;
* Twilio unreachable, 429 or 5xx: ``queued`` again, due after an exponential backoff, until
  ``PAYBOT_SMS_MAX_ATTEMPTS`` attempts; then ``failed``;
* refused (4xx, e.g. not a mobile number): ``failed`` at once;
* no answer after the request went out: ``unknown``: it may have been sent, so it is not
  retried automatically (an operator can set it back to ``queued``). A bridge that dies
  mid-send leaves its row ``sending`` for the same reason; once its claim is older than
  :data:`paybot.db.queries.outbox.SENDING_LEASE` (ten minutes: a pass of :data:`BATCH`
  sends of at most ten seconds each fits three times over) the next pass marks it
  ``unknown`` too ("sender stopped mid-send"), where an operator sees it;
* to a number that opted out (STOP, or Twilio's error 21610): ``opted_out``, never sent;
* outreach during the recipient's quiet hours: ``queued`` again until they end, the attempt
  not counted (:mod:`paybot.sms.outreach` says which kinds wait).

Each message asks Twilio to report its delivery to ``/twilio/sms-status``
(:mod:`voice_bridge.twilio.sms_status`).

``last_error`` holds "http 500", "no answer" and the like; logs carry the outbox id and the
MessageSid, never the number or the text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage
from paybot.db.queries.outbox import SENDING_LEASE
from paybot.db.types import utcnow
from paybot.sms.consent import opt_out
from paybot.sms.outreach import verdict
from paybot.sms.quiet_hours import QuietHours
from paybot.sms.segments import to_gsm7
from voice_bridge.jobs.background import running
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.rest import TwilioNotConfigured, TwilioRest, TwilioRestError
from voice_bridge.twilio.sms_status import SMS_STATUS_PATH

log = logging.getLogger(__name__)
BATCH = 20
MAX_BACKOFF_S = 3600.0
UNSUBSCRIBED = 21610  # Twilio: "Attempt to send to unsubscribed recipient"


@dataclass(frozen=True)
class Claimed:
    """A message this sender has taken: only it will try to send this attempt."""

    id: int
    to: str
    body: str
    attempts: int  # including this one
    kind: str = "receipt"


@dataclass
class PassResult:
    """What one pass over the outbox did (counts of rows)."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0
    opted_out: int = 0
    deferred: int = 0  # quiet hours


def claim_due(engine: Engine, *, now: datetime, limit: int = BATCH) -> list[Claimed]:
    """Take up to ``limit`` due queued messages, oldest first; rows another sender took in the
    meantime are skipped."""
    with session_scope(engine) as session:
        ids = queries.due_message_ids(session=session, now=now, limit=limit)
    claimed = []
    for message_id in ids:
        with session_scope(engine) as session:
            row = queries.claim_message(session=session, message_id=message_id, now=now)
            if row is not None:
                assert row.id is not None
                claimed.append(Claimed(row.id, row.to, row.body, row.attempts, row.kind))
    return claimed


def park_stale(engine: Engine, *, now: datetime, limit: int = BATCH) -> int:
    """Mark ``unknown`` the messages left ``sending`` by a sender that stopped mid-send (claimed
    more than :data:`~paybot.db.queries.outbox.SENDING_LEASE` before ``now``); how many."""
    before = now - SENDING_LEASE
    with session_scope(engine) as session:
        ids = queries.stale_sending_ids(session=session, before=before, limit=limit)
    parked = 0
    for message_id in ids:
        with session_scope(engine) as session:
            if queries.park_stale_sending(session=session, message_id=message_id, before=before):
                parked += 1
                log.warning(
                    "outbound message %s was left sending by a stopped sender: marked unknown "
                    "(it may have gone out; not retried)", message_id,
                )
    return parked


def send_due(
    engine: Engine,
    twilio: TwilioRest,
    *,
    max_attempts: int,
    backoff_s: float,
    now: datetime | None = None,
    quiet: QuietHours | None = None,
) -> PassResult:
    """One pass: claim what is due and send it (synchronous; run it in a thread); messages
    to opted-out numbers are skipped, outreach in ``quiet`` hours waits."""
    result = PassResult()
    now = now or utcnow()
    result.unknown += park_stale(engine, now=now)
    for message in claim_due(engine, now=now):
        held = _hold(engine, message, now, quiet)
        if held is not None:
            setattr(result, held, getattr(result, held) + 1)
            continue
        try:
            sid = twilio.send_sms(message.to, to_gsm7(message.body))
        except TwilioRestError as exc:
            outcome = _after_failure(engine, message, exc, max_attempts, backoff_s)
            setattr(result, outcome, getattr(result, outcome) + 1)
            continue
        _finish(
            engine, message.id, status="sent", provider_id=sid, sent_at=utcnow(), last_error=None
        )
        log.info("outbound message %s sent as %s", message.id, sid)
        result.sent += 1
    return result


async def receipt_sender(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: send the outbox in the background every ``PAYBOT_SMS_SEND_INTERVAL_S``.

    Idle (one log line) when the interval is 0 or Twilio is not configured for texts.
    """
    settings = app[SETTINGS]
    twilio = _twilio_or_none(settings)
    if twilio is None:
        yield
        return
    async with running(_run(app, twilio), "receipt-sender"):
        yield


async def _run(app: web.Application, twilio: TwilioRest) -> None:
    settings = app[SETTINGS]
    log.info("outbox sender started (every %.1fs)", settings.sms_send_interval_s)
    while True:
        try:
            result = await asyncio.to_thread(
                send_due,
                app[DB_ENGINE],
                twilio,
                max_attempts=settings.sms_max_attempts,
                backoff_s=settings.sms_retry_backoff_s,
                quiet=QuietHours.from_spec(settings.sms_quiet_hours, settings.sms_time_zone),
            )
            if result.retrying or result.failed or result.unknown:
                log.info("outbox pass: %s", result)
        except Exception:  # the database is down, ...: log it and try again next time
            log.exception("outbox pass failed")
        await asyncio.sleep(settings.sms_send_interval_s)


def _twilio_or_none(settings) -> TwilioRest | None:
    if settings.sms_send_interval_s <= 0:
        log.info("outbox sender off (PAYBOT_SMS_SEND_INTERVAL_S=0)")
        return None
    try:
        twilio = TwilioRest.from_settings(settings)
        if not twilio.sms_from:
            raise TwilioNotConfigured("text messages need PAYBOT_SMS_FROM")
    except TwilioNotConfigured as exc:
        log.info("outbox sender idle: %s; receipts stay queued", exc)
        return None
    twilio.status_callback = settings.public_base_url + SMS_STATUS_PATH
    return twilio


def _hold(
    engine: Engine, message: Claimed, now: datetime, quiet: QuietHours | None
) -> str | None:
    """Skip (opted out) or put back (quiet hours) a claimed message that may not go now; the
    name of the outcome, or None to send it."""
    with Session(engine) as session:
        decided = verdict(session, to=message.to, kind=message.kind, now=now, quiet=quiet)
    if decided.send:
        return None
    if decided.opted_out:
        _finish(engine, message.id, status="opted_out", last_error="opted out")
        log.info("outbound message %s not sent: the number opted out", message.id)
        return "opted_out"
    _finish(
        engine,
        message.id,
        status="queued",
        attempts=message.attempts - 1,  # waiting is not a failed attempt
        next_attempt_at=decided.resume_at,
        last_error="quiet hours",
    )
    log.info("outbound message %s waits for the end of quiet hours", message.id)
    return "deferred"


def _after_failure(
    engine: Engine, message: Claimed, exc: TwilioRestError, max_attempts: int, backoff_s: float
) -> str:
    """Requeue, fail or park ``message`` after ``exc``; the name of the outcome."""
    error = f"http {exc.status}" if exc.status is not None else "no answer"
    if exc.code:
        error += f" code {exc.code}"
    if exc.code == UNSUBSCRIBED:  # opted out through Twilio (its own keywords, or a carrier)
        opt_out(engine, message.to, f"twilio {UNSUBSCRIBED}")
        _finish(engine, message.id, status="opted_out", last_error=error)
        log.info("outbound message %s not sent: Twilio says the number opted out", message.id)
        return "opted_out"
    if exc.maybe_done:
        _finish(engine, message.id, status="unknown", last_error=error)
        log.warning("outbound message %s: %s, may have been sent; not retried", message.id, error)
        return "unknown"
    if exc.retryable and message.attempts < max_attempts:
        delay = min(backoff_s * 2 ** (message.attempts - 1), MAX_BACKOFF_S)
        _finish(
            engine,
            message.id,
            status="queued",
            last_error=error,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
        log.warning(
            "outbound message %s: attempt %d failed (%s), retry in %.0fs",
            message.id,
            message.attempts,
            error,
            delay,
        )
        return "retrying"
    _finish(engine, message.id, status="failed", last_error=error)
    log.warning(
        "outbound message %s failed after %d attempts (%s)", message.id, message.attempts, error
    )
    return "failed"


def _finish(engine: Engine, message_id: int, *, status: str, **values: object) -> None:
    """Leave ``sending`` for ``status`` (only from ``sending``: a claim is never undone twice)."""
    with session_scope(engine) as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == message_id, OutboundMessage.status == "sending")
            .values(status=status, **values)
        )
