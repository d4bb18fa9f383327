"""The ``/twilio/stream`` route: admit a Media Streams websocket and hand it to a call.

Twilio opens the socket, sends ``connected`` and ``start``; the ``start`` carries the
``<Parameter>``s of our TwiML, among them the per-call token the voice webhook issued. Before
any audio is processed a socket must, in this order:

* find room: at most ``PAYBOT_WS_MAX_PENDING`` sockets may be waiting for their ``start``;
  over that the upgrade is refused (503);
* send ``start`` within ``PAYBOT_WS_START_TIMEOUT_S`` (else close 1008 "no start");
* carry a valid token for its CallSid (else close 1008 "invalid token");
* while the bridge drains (SIGTERM, :mod:`voice_bridge.drain`), belong to a call answered
  before the drain began or coming back from ``<Pay>`` (else close 1013 "draining");
* be the first stream of that call: the token is consumed in the database, so a second
  socket with it, on this bridge or another sharing the database, gets 1008 "token already
  used".

Every socket is pinged every ``PAYBOT_WS_HEARTBEAT_S`` (aiohttp closes it when the pong does
not come) and closed with 4408 after ``PAYBOT_WS_READ_TIMEOUT_S`` without a frame
(:mod:`voice_bridge.twilio.ws_frames`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy.exc import SQLAlchemyError

from paybot.log_format import log_ids
from voice_bridge.call.handler import CallHandler
from voice_bridge.call.twilio_pay import HANDED_OVER, resumes
from voice_bridge.drain import DRAIN
from voice_bridge.jobs.call_records import consume_stream_token, softphone_call_ended
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.runtime import RUNTIME
from voice_bridge.twilio.messages import Connected, ProtocolError, Start, parse_message
from voice_bridge.twilio.stream_tokens import InvalidCallToken, call_token_secret, verify_call_token
from voice_bridge.twilio.webhooks import STREAM_PATH
from voice_bridge.twilio.ws_frames import frames

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 64 * 1024


@dataclass
class PendingStreams:
    """How many sockets are waiting for their ``start`` on this bridge, and the cap."""

    limit: int
    count: int = 0


PENDING_STREAMS = web.AppKey("pending_streams", PendingStreams)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Admitted:
    """A socket that passed every check, with its ``start``, the token's caller and whether
    the browser softphone placed the call."""

    start: Start
    caller: str
    softphone: bool = False


def add_stream_route(app: web.Application, handler: Handler | None = None) -> None:
    """Register ``/twilio/stream`` (needs ``SETTINGS``; the handler also ``DB_ENGINE`` and,
    for the call itself, the runtime). ``handler`` replaces :func:`handle_stream` (tests
    that check admission without speech models)."""
    app[PENDING_STREAMS] = PendingStreams(app[SETTINGS].ws_max_pending)
    app.router.add_get(STREAM_PATH, handler or handle_stream)
    app.router.add_get(STREAM_PATH + "/{call_sid}", handler or handle_stream)


async def handle_stream(request: web.Request) -> web.StreamResponse:
    """Admit one Media Streams websocket and run its call handler to the end."""
    ws, admitted = await admit_stream(request)
    if admitted is None:
        return ws
    runtime = request.app[RUNTIME]
    if admitted.softphone:  # no Twilio call behind it: hang-ups and transfers close the socket
        runtime = replace(runtime, twilio=None)
    handler = CallHandler(runtime, ws, admitted.start, admitted.caller)
    drain = request.app[DRAIN]
    # Every log line of the call carries its ids (tasks it starts inherit them).
    ids = log_ids(call_sid=handler.call_sid, conversation_id=handler.sender)
    with drain.call(handler.call_sid), ids:
        await handler.run()
    if handler.ended_reason == HANDED_OVER:  # Twilio brings it back with a new stream
        drain.away(handler.call_sid)
    if not ws.closed:
        await ws.close()
    if admitted.softphone:  # no status callback will say so
        await softphone_call_ended(request.app[DB_ENGINE], handler.call_sid)
    return ws


async def admit_stream(request: web.Request) -> tuple[web.WebSocketResponse, Admitted | None]:
    """Open the socket and run the checks in the module docstring. A refused socket is
    closed (or never upgraded: ``web.HTTPServiceUnavailable``) and comes back with None.

    Raises:
        web.HTTPServiceUnavailable: Too many sockets are waiting for ``start``.
    """
    settings = request.app[SETTINGS]
    pending = request.app[PENDING_STREAMS]
    if pending.count >= pending.limit:
        log.warning("stream refused: %d sockets already waiting for start", pending.count)
        raise web.HTTPServiceUnavailable(
            text="too many streams waiting to start\n", headers={"Retry-After": "1"}
        )
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME_BYTES, heartbeat=settings.ws_heartbeat_s or None
    )
    pending.count += 1
    try:
        await ws.prepare(request)
        start = await asyncio.wait_for(
            _wait_for_start(ws, settings.ws_read_timeout_s), settings.ws_start_timeout_s
        )
    except (TimeoutError, asyncio.TimeoutError):
        log.warning("stream closed: no start message within %.0fs", settings.ws_start_timeout_s)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start")
        return ws, None
    finally:
        pending.count -= 1
    if start is None:
        await ws.close()
        return ws, None
    try:
        claims = verify_call_token(
            call_token_secret(settings),
            start.custom_parameters.get("token", ""),
            call_sid=start.call_sid,
        )
    except InvalidCallToken as exc:
        log.warning("stream for call %s refused: %s", start.call_sid, exc)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid token")
        return ws, None
    if request.match_info.get("call_sid", start.call_sid) != start.call_sid:
        log.warning("stream for call %s refused: its URL names another call", start.call_sid)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid token")
        return ws, None
    drain = request.app.get(DRAIN)
    issued_at = claims.expires_at - settings.call_token_ttl_s
    if drain is not None and not drain.admits(issued_at=issued_at, resuming=resumes(start)):
        log.warning("stream for call %s refused: the bridge is draining", start.call_sid)
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"draining")
        return ws, None
    try:
        fresh = await asyncio.to_thread(
            consume_stream_token, request.app[DB_ENGINE], call_sid=start.call_sid
        )
    except SQLAlchemyError:
        log.exception("stream for call %s: could not consume its token", start.call_sid)
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again later")
        return ws, None
    if not fresh:
        log.warning("stream for call %s refused: token already used", start.call_sid)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"token already used")
        return ws, None
    return ws, Admitted(start, claims.caller, claims.softphone)


async def _wait_for_start(ws: web.WebSocketResponse, read_timeout_s: float) -> Start | None:
    """Read frames until ``start``; None if the socket closes (or times out) first."""
    async for message in frames(ws, read_timeout_s):
        if message.type != WSMsgType.TEXT:
            continue
        try:
            event = parse_message(message.data)
        except ProtocolError as exc:
            log.warning("ignored a malformed frame before start (%s)", exc.reason)
            continue
        if isinstance(event, Start):
            return event
        if not isinstance(event, Connected):
            log.warning("ignored a %s frame before start", type(event).__name__.lower())
    return None
