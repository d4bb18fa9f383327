"""The live calls' event stream (Server-Sent Events) for the console's live-calls page."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from paybot.db.models import ConsoleRole
from voice_bridge.console.guard import current_session, is_https, requires
from voice_bridge.console.render import add_security_headers
from voice_bridge.keys import LIVE_CALLS

KEEPALIVE_S = 15.0


@requires(ConsoleRole.AGENT)
async def call_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the list of live calls, sent again whenever it changes; the
    stream ends when the session does (checked every ``KEEPALIVE_S`` without restarting its
    idle clock; the page then goes to sign in again)."""
    live = request.config_dict[LIVE_CALLS]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    add_security_headers(response, is_https(request))
    await response.prepare(request)
    version, checked = -1, time.monotonic()
    while True:
        if time.monotonic() - checked >= KEEPALIVE_S:
            checked = time.monotonic()
            if await current_session(request, touch=False) is None:
                await response.write(b"event: signed-out\ndata: {}\n\n")
                break
        if version != live.version:
            version = live.version
            data = json.dumps([c.as_json() for c in live.snapshot()])
            await response.write(f"event: calls\ndata: {data}\n\n".encode())
        else:
            await response.write(b": keep-alive\n\n")
        changed = await live.wait_change(version, KEEPALIVE_S)
        if changed != version:
            await asyncio.sleep(0.05)  # a burst of keys is sent as one update
    return response
