"""The ``/twilio/stream`` route: accept a Media Streams websocket and hand it to a call.

Twilio opens the socket, sends ``connected`` and ``start``; the ``start`` carries the
``<Parameter>``s of our TwiML, among them the per-call token the voice webhook issued. A
socket without a valid token for its CallSid is closed with policy-violation code 1008
before any audio is processed.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from voice_bridge.call import CallHandler
from voice_bridge.call_tokens import InvalidCallToken, call_token_secret, verify_call_token
from voice_bridge.runtime import RUNTIME
from voice_bridge.twilio_messages import Connected, ProtocolError, Start, parse_message

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 64 * 1024


async def handle_stream(request: web.Request) -> web.StreamResponse:
    """Accept one Media Streams websocket and run its call handler to the end."""
    runtime = request.app[RUNTIME]
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=None)
    await ws.prepare(request)
    try:
        start = await asyncio.wait_for(_wait_for_start(ws), START_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        log.warning("stream closed: no start message within %.0fs", START_TIMEOUT_S)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start")
        return ws
    if start is None:
        await ws.close()
        return ws
    try:
        claims = verify_call_token(
            call_token_secret(runtime.settings),
            start.custom_parameters.get("token", ""),
            call_sid=start.call_sid,
        )
    except InvalidCallToken as exc:
        log.warning("stream for call %s refused: %s", start.call_sid, exc)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid token")
        return ws
    await CallHandler(runtime, ws, start, claims.caller).run()
    if not ws.closed:
        await ws.close()
    return ws


async def _wait_for_start(ws: web.WebSocketResponse) -> Start | None:
    """Read frames until ``start``; None if the socket closes first."""
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return None
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
