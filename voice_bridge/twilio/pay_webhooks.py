"""``<Pay>``'s two webhooks: its result (``action``) and its progress (``statusCallback``).

* ``POST /twilio/pay/action?token=…``: the result. Settled into the payment the token names
  (:mod:`voice_bridge.twilio.pay_results`, :mod:`paybot.payments.delegated`), then answered
  with ``<Connect><Stream>`` back into the same conversation: a fresh stream token, the
  caller, and ``resume=capture_result`` with the capture status, so the bot reads the payment
  row as it does after the keypad capture. Once: a repeated result finds the payment settled,
  changes nothing and gets 409 with no stream token (like a repeated voice webhook). A
  ``caller-hung-up`` result is settled and answered with an empty ``<Response/>``.
* ``POST /twilio/pay/status?token=…``: a progress report (which field, which attempt, which
  error), kept as counts and step names for the agent console; 204.

Both need a valid ``X-Twilio-Signature`` (403) and a token the bridge issued for the form's
CallSid (403). The masked card number and every other detail Twilio sends are dropped once
read; logs carry the CallSid and the payment id.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.voice_response import VoiceResponse

from paybot.payments.delegated import processing_started, record_progress, settle_delegated
from paybot.payments.settlement import Settlement
from voice_bridge.jobs.call_records import rearm_stream
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.pay_results import pay_outcome
from voice_bridge.twilio.pay_tokens import PayClaims, verify_pay_token
from voice_bridge.twilio.signature import public_url, verified_form
from voice_bridge.twilio.stream_tokens import (
    InvalidCallToken,
    call_token_secret,
    issue_call_token,
)
from voice_bridge.twilio.webhooks import (
    required_field,
    stream_path,
    stream_twiml,
    twiml_response,
)

log = logging.getLogger(__name__)
PAY_ACTION_PATH = "/twilio/pay/action"
PAY_STATUS_PATH = "/twilio/pay/status"
RESUME = "capture_result"  # the <Parameter name="resume"> of a stream back from <Pay>


def add_pay_routes(app: web.Application) -> None:
    """Register the two ``<Pay>`` webhooks (need ``SETTINGS`` and ``DB_ENGINE``)."""
    app.router.add_post(PAY_ACTION_PATH, pay_action_webhook)
    app.router.add_post(PAY_STATUS_PATH, pay_status_webhook)


async def pay_action_webhook(request: web.Request) -> web.Response:
    """Settle ``<Pay>``'s result and bring the caller back to the conversation."""
    settings = request.app[SETTINGS]
    engine = request.app[DB_ENGINE]
    form = await verified_form(request, settings)
    claims = _claims(request, form)
    try:
        processing = await asyncio.to_thread(processing_started, engine, claims.payment_id)
        outcome = pay_outcome(form, processing=processing)
        form.clear()  # the masked number and the rest: not kept, not logged
        settlement = Settlement(engine, fee_account=settings.fee_account)
        payment, changed = await asyncio.to_thread(
            settle_delegated, settlement, claims.payment_id, outcome.result
        )
    except (SQLAlchemyError, LookupError):
        log.exception("call %s: <Pay> result not recorded", claims.call_sid)
        raise web.HTTPServiceUnavailable(text="could not record the result\n") from None
    if not changed:
        log.warning(
            "call %s: <Pay> result for payment %s repeated; nothing changed",
            claims.call_sid,
            claims.payment_id,
        )
        raise web.HTTPConflict(text="this payment's result was already recorded\n")
    log.info(
        "call %s: <Pay> payment %s %s", claims.call_sid, payment.payment_id, payment.status
    )
    if outcome.caller_hung_up:
        return twiml_response(str(VoiceResponse()))
    call = await asyncio.to_thread(rearm_stream, engine, call_sid=claims.call_sid)
    if call is None:  # not a call this bridge answered: nothing to come back to
        return twiml_response(str(VoiceResponse()))
    caller = call.caller or ""
    token = issue_call_token(
        call_token_secret(settings),
        call_sid=claims.call_sid,
        caller=caller,
        ttl_s=settings.call_token_ttl_s,
    )
    stream_url = public_url(request, settings, path=stream_path(claims.call_sid), websocket=True)
    twiml = stream_twiml(
        stream_url,
        token=token,
        caller=caller,
        resume=RESUME,
        capture_status=outcome.capture_status,
    )
    return twiml_response(twiml)


async def pay_status_webhook(request: web.Request) -> web.Response:
    """Keep one progress report of a ``<Pay>`` under way (step, attempt, error type)."""
    settings = request.app[SETTINGS]
    form = await verified_form(request, settings)
    claims = _claims(request, form)
    step = form.get("For", "").strip() or "unknown"
    attempt = form.get("Attempt", "").strip()
    error = form.get("ErrorType", "").strip() or None
    form.clear()
    try:
        await asyncio.to_thread(
            record_progress,
            request.app[DB_ENGINE],
            claims.payment_id,
            step=step,
            attempt=int(attempt) if attempt.isdigit() else None,
            error=error,
        )
    except (SQLAlchemyError, LookupError):
        log.exception("call %s: <Pay> progress not recorded", claims.call_sid)
        raise web.HTTPServiceUnavailable(text="could not record the progress\n") from None
    return web.Response(status=204)


def _claims(request: web.Request, form: dict[str, str]) -> PayClaims:
    """The verified token of this callback, for the form's CallSid (403 otherwise)."""
    call_sid = required_field(form, "CallSid")
    try:
        return verify_pay_token(
            request.app[SETTINGS], request.query.get("token", ""), call_sid=call_sid
        )
    except InvalidCallToken as exc:
        log.warning("call %s: <Pay> callback refused: %s", call_sid, exc.reason)
        raise web.HTTPForbidden(text=f"forbidden: {exc.reason}\n") from None
