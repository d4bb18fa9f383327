"""Twilio's webhooks: answering calls, following their status, and texting with the bot.

* ``POST /twilio/voice``: a call comes in. While the bridge drains (SIGTERM,
  :mod:`voice_bridge.drain`), or carries ``PAYBOT_MAX_CALLS`` calls already, it hears an
  apology and ``<Hangup/>``; otherwise it is answered
  with ``<Connect><Stream>`` to ``/twilio/stream`` carrying a per-call token
  (:mod:`voice_bridge.twilio.stream_tokens`) and the caller's number as ``<Parameter>``s;
  the call gets its row in ``calls``. Once per call: a repeat of the webhook for the same
  CallSid (a replay) gets 409 and no token. A call we placed (``Direction`` outbound-api:
  a reminder) is the same conversation, with the number called as the caller.
  A call an IVR transferred is tied to its contact-centre payment session
  (:func:`_match_session`).
* ``POST /twilio/status``: Twilio's call status callbacks (ringing, in-progress, completed
  with its duration, busy, ...), recorded forward-only (:mod:`voice_bridge.jobs.call_records`).
* ``POST /twilio/sms``: a text. A reply to a reminder is noted on it
  (:mod:`paybot.reminders.replies`). STOP, START and HELP are answered first, and an opted-out
  number gets no answer (:mod:`voice_bridge.twilio.sms_keywords`). Any other body goes to
  Rasa's REST channel as the conversation
  ``sms:<E.164>``, the sender's number vouched for (:mod:`paybot.dialog.vouch`); the bot's
  text replies come back as one TwiML ``<Message>``. A text holding a card number reaches
  Rasa as :data:`~paybot.parsing.card_numbers.CARD_NUMBER_REMOVED`.
* ``POST /twilio/sms-status``: delivery reports of the texts we sent
  (:mod:`voice_bridge.twilio.sms_status`).

Every request must carry a valid ``X-Twilio-Signature`` (403 otherwise); a signed request
without the fields it needs gets 400 naming them. Logs carry CallSid and MessageSid only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import ClientError, ClientTimeout, web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Connect, VoiceResponse

from paybot import metrics
from paybot.contact_centre.sessions import match_call
from paybot.db.models import CallStatus
from paybot.dialog.vouch import vouch, vouch_key
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED, remove_card_numbers
from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.reminders.replies import note_reply, reply_kind
from paybot.sms.segments import fit, segments
from voice_bridge.drain import DRAIN
from voice_bridge.jobs.call_records import (
    UnknownCallStatus,
    mark_answered,
    parse_status,
    record_call_started,
    record_call_status,
)
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS
from voice_bridge.twilio.signature import public_url, verified_form
from voice_bridge.twilio.sms_keywords import keyword_reply
from voice_bridge.twilio.sms_status import SMS_STATUS_PATH, sms_status_webhook
from voice_bridge.twilio.stream_tokens import call_token_secret, issue_call_token

log = logging.getLogger(__name__)
VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
SMS_PATH = "/twilio/sms"
STREAM_PATH = "/twilio/stream"
_CALL_SID = re.compile(r"[A-Za-z0-9]{1,64}")
RASA_TIMEOUT_S = 12.0  # Twilio waits 15 s for a webhook's answer
SMS_MAX_CHARS = 1600  # Twilio's limit for one message body
SMS_HELP = 'Hi! Text us what you\'d like to do, for example "pay my bill" or "what\'s my balance".'
SMS_UNAVAILABLE = "Sorry, we can't answer right now. Please try again in a few minutes."
# What Twilio puts in From when the caller ID is withheld (besides non-numbers like
# "anonymous"): ANONYMOUS, RESTRICTED, BLOCKED, UNAVAILABLE, UNKNOWN spelled on a keypad.
WITHHELD = {"+266696687", "+7378742833", "+2562533", "+86282452253", "+8656696"}
TWIML = "text/xml"
DRAINING_SAY = "Sorry, we can't take your call right now. Please call back in a few minutes."
ENDED_RANK = CallStatus.COMPLETED.rank  # every ending status ranks the same
# How a transfer names its contact-centre payment session: Twilio passes a SIP INVITE's
# X- headers as SipHeader_<name>; a <Dial>ed Twilio number can carry it as a custom field.
SESSION_SIP_HEADER = "SipHeader_X-Paybot-Session"
SESSION_PARAMETER = "PaybotSession"


class BotUnavailable(RuntimeError):
    """Rasa did not answer in time, or answered with an error."""


def add_twilio_routes(app: web.Application) -> None:
    """Register the four webhooks (needs ``SETTINGS``, ``DB_ENGINE`` and ``HTTP_CLIENT``)."""
    app.router.add_post(VOICE_PATH, voice_webhook)
    app.router.add_post(STATUS_PATH, status_webhook)
    app.router.add_post(SMS_PATH, sms_webhook)
    app.router.add_post(SMS_STATUS_PATH, sms_status_webhook)


async def voice_webhook(request: web.Request) -> web.Response:
    """Answer an incoming call: stream its audio to ``/twilio/stream``."""
    settings = request.app[SETTINGS]
    form = await verified_form(request, settings)
    call_sid = required_field(form, "CallSid")
    drain = request.app.get(DRAIN)
    if drain is not None and drain.draining:
        log.info("call %s turned away: the bridge is draining", call_sid)
        metrics.CALLS_TURNED_AWAY.labels(reason="draining").inc()
        return twiml_response(turn_away_twiml())
    if drain is None:
        return await _answer(request, form, call_sid)
    if drain.full(settings.max_calls):
        log.warning("call %s turned away: the bridge carries %d calls (PAYBOT_MAX_CALLS)",
                    call_sid, drain.carried)
        metrics.CALLS_TURNED_AWAY.labels(reason="full").inc()
        return twiml_response(turn_away_twiml())
    # The place is taken now, before the awaits below, so that webhooks arriving together
    # cannot all pass the check; given back if the call is not answered after all.
    held = drain.answered(call_sid, settings.call_token_ttl_s)
    try:
        return await _answer(request, form, call_sid)
    except BaseException:
        if held:
            drain.not_answered(call_sid)
        raise


async def _answer(request: web.Request, form: dict[str, str], call_sid: str) -> web.Response:
    """Record the call and answer it with a Media Stream and its single-use token."""
    settings = request.app[SETTINGS]
    caller, called, direction = parties(form)
    engine = request.app[DB_ENGINE]
    try:
        await asyncio.to_thread(
            record_call_started,
            engine,
            call_sid=call_sid,
            caller=caller or None,
            called=called or None,
            direction=direction,
            status=_status_or(form.get("CallStatus"), CallStatus.RINGING),
        )
        first = await asyncio.to_thread(mark_answered, engine, call_sid=call_sid)
    except SQLAlchemyError:  # without the record, the token could not be single-use
        log.exception("call %s: could not record it", call_sid)
        raise web.HTTPServiceUnavailable(text="could not record the call\n") from None
    if not first:
        log.warning("call %s: voice webhook repeated; no second stream token", call_sid)
        raise web.HTTPConflict(text="this call was already answered\n")
    await _match_session(engine, call_sid, caller, form)
    token = issue_call_token(
        call_token_secret(settings),
        call_sid=call_sid,
        caller=caller,
        ttl_s=settings.call_token_ttl_s,
    )
    log.info("call %s answered with a media stream", call_sid)
    stream_url = public_url(request, settings, path=stream_path(call_sid), websocket=True)
    return twiml_response(stream_twiml(stream_url, token=token, caller=caller))


async def _match_session(engine: Engine, call_sid: str, caller: str, form: dict[str, str]) -> None:
    """Tie the call to a contact-centre payment session (docs/contact-centre.md): the one whose
    code the transfer carries (SIP header ``X-Paybot-Session``, or a ``PaybotSession``
    parameter), else the caller's newest open one. A failure leaves the call unmatched (the
    caller is served as any other), never unanswered."""
    code = (form.get(SESSION_SIP_HEADER) or form.get(SESSION_PARAMETER) or "").strip()
    code = code if code.isdigit() and len(code) <= 8 else ""
    try:
        matched = await asyncio.to_thread(
            match_call, engine, call_sid=call_sid, caller=caller or None, code=code or None
        )
    except SQLAlchemyError:
        log.exception("call %s: could not look for a payment session", call_sid)
        return
    if matched is not None:
        log.info("call %s: tied to payment session %s", call_sid, matched)


async def status_webhook(request: web.Request) -> web.Response:
    """Record a call status callback (idempotent; a call never moves backwards)."""
    form = await verified_form(request, request.app[SETTINGS])
    call_sid = required_field(form, "CallSid")
    try:
        status = parse_status(required_field(form, "CallStatus"))
    except UnknownCallStatus as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    if status.rank == ENDED_RANK and (drain := request.app.get(DRAIN)) is not None:
        drain.ended(call_sid)  # a call that was at <Pay> is not coming back
    try:
        await asyncio.to_thread(
            record_call_status,
            request.app[DB_ENGINE],
            call_sid=call_sid,
            status=status,
            duration_s=_int_or_none(form.get("CallDuration")),
            caller=caller_e164(form.get("From", "")) or None,
            called=caller_e164(form.get("To", "")) or None,
            direction=form.get("Direction") or None,
        )
    except SQLAlchemyError:
        log.exception("call %s: could not record status %s", call_sid, status.value)
        raise web.HTTPServiceUnavailable(text="could not record the status\n") from None
    return web.Response(status=204)


async def sms_webhook(request: web.Request) -> web.Response:
    """Pass a text to the bot; its text replies go back in one message."""
    form = await verified_form(request, request.app[SETTINGS])
    message_sid = required_field(form, "MessageSid")
    sender = caller_e164(required_field(form, "From"))
    if not sender:
        raise web.HTTPBadRequest(text="From is not a phone number\n")
    body = form.get("Body", "").strip()
    await note_reminder_reply(request.app, sender, body, form.get("OptOutType"), message_sid)
    try:
        reply = await keyword_reply(
            request.app, sender=sender, body=body, opt_out_type=form.get("OptOutType"),
            message_sid=message_sid,
        )  # fmt: skip
    except SQLAlchemyError:  # an opt-out must never be lost, nor a text sent against one
        log.exception("sms %s: could not read or record the opt-out state", message_sid)
        raise web.HTTPServiceUnavailable(text="could not check the opt-out state\n") from None
    if reply is not None:
        return twiml_response(sms_twiml(reply))
    if not body:
        return twiml_response(sms_twiml(SMS_HELP))
    body, removed = remove_card_numbers(body)
    if removed:  # Rasa gets the mark only and answers that we never take cards by text
        body = CARD_NUMBER_REMOVED
        log.info("sms %s: a card number was removed", message_sid)
    try:
        replies = await ask_bot(request.app, sender=sender, text=body)
    except BotUnavailable as exc:
        log.warning("sms %s: bot unavailable (%s); sent an apology", message_sid, exc)
        return twiml_response(sms_twiml(SMS_UNAVAILABLE))
    messages = fit(replies, max_segments=request.app[SETTINGS].sms_max_segments)
    log.info(
        "sms %s answered (%d replies in %d messages, %d segments)", message_sid, len(replies),
        len(messages), sum(segments(m).segments for m in messages),
    )  # fmt: skip
    return twiml_response(sms_twiml(*messages))


async def note_reminder_reply(
    app: web.Application, sender: str, body: str, opt_out_type: str | None, message_sid: str
) -> None:
    """Note on the sender's latest reminder that they answered, and how (never the words);
    a database failure here is logged and does not stop the conversation."""
    kind = reply_kind(body, opt_out_type)
    try:
        reminder_id = await asyncio.to_thread(note_reply, app[DB_ENGINE], sender, kind)
    except SQLAlchemyError as exc:
        log.warning("sms %s: reply to a reminder not noted (%s)", message_sid, type(exc).__name__)
        return
    if reminder_id is not None:
        log.info("sms %s: a reply (%s) to reminder %s", message_sid, kind, reminder_id)


async def ask_bot(app: web.Application, *, sender: str, text: str) -> list[str]:
    """The bot's text replies to ``text`` from ``sender`` (E.164); custom payloads dropped.

    Raises:
        BotUnavailable: Rasa is down, slow (over ``RASA_TIMEOUT_S``) or answered an error.
    """
    settings = app[SETTINGS]
    url = f"{settings.rasa_url}/webhooks/rest/webhook"
    conversation = f"sms:{sender}"
    key = vouch_key(settings.rasa_token.get_secret_value())
    payload = {
        "sender": conversation,
        "message": text,
        "metadata": vouch(key, sender=conversation, channel="sms", caller=sender),
    }
    try:
        async with app[HTTP_CLIENT].post(
            url, json=payload, timeout=ClientTimeout(total=RASA_TIMEOUT_S)
        ) as response:
            if response.status != 200:
                raise BotUnavailable(f"rasa answered {response.status}")
            messages: Any = await response.json(content_type=None)
    except (ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise BotUnavailable(type(exc).__name__) from None
    if not isinstance(messages, list):
        raise BotUnavailable("rasa answered something other than a list")
    return [
        m["text"].strip()
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("text"), str) and m["text"].strip()
    ]


def stream_path(call_sid: str) -> str:
    """Where a call's Media Stream connects: ``/twilio/stream/<CallSid>``, so that a load
    balancer can keep the stream on the bridge that answered the call (the CallSid in the
    path; Twilio's stream URLs take no query string). The token is what admits it."""
    return f"{STREAM_PATH}/{call_sid}" if _CALL_SID.fullmatch(call_sid) else STREAM_PATH


def stream_twiml(stream_url: str, *, token: str, caller: str, **more: str) -> str:
    """``<Connect><Stream>`` with the token, the caller and ``more`` as parameters (Twilio
    drops query strings from stream URLs, so parameters are the only way to hand values
    over)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in {"token": token, "caller": caller, **more}.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def turn_away_twiml() -> str:
    """What a call hears while the bridge drains or is full: an apology, then the line is
    closed."""
    response = VoiceResponse()
    response.say(DRAINING_SAY)
    response.hangup()
    return str(response)


def sms_twiml(*texts: str) -> str:
    """A ``<Message>`` for each of ``texts`` (cut to Twilio's limit), none for an empty one."""
    response = MessagingResponse()
    for text in texts:
        if text:
            response.message(text[:SMS_MAX_CHARS])
    return str(response)


def caller_e164(raw: str) -> str:
    """``raw`` (Twilio's From/To) in E.164; "" when withheld or not a phone number."""
    try:
        number = to_e164(raw)
    except InvalidPhoneNumber:
        return ""
    return "" if number in WITHHELD else number


def parties(form: dict[str, str]) -> tuple[str, str, str | None]:
    """The customer's number, ours and the direction of a call's voice webhook. On a call we
    placed (``Direction`` outbound-api: a reminder) the customer is the one called (``To``).
    (Status callbacks record From and To as Twilio sends them; for a reminder call the voice
    webhook comes first, and a call's details are only ever filled in, never overwritten.)"""
    caller, called = caller_e164(form.get("From", "")), caller_e164(form.get("To", ""))
    direction = form.get("Direction") or None
    if (direction or "").startswith("outbound"):
        caller, called = called, caller
    return caller, called, direction


def required_field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise web.HTTPBadRequest(text=f"missing {name}\n")
    return value


def _status_or(value: str | None, default: CallStatus) -> CallStatus:
    try:
        return parse_status(value or "")
    except UnknownCallStatus:
        return default


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def twiml_response(body: str) -> web.Response:
    return web.Response(text=body, content_type=TWIML)
