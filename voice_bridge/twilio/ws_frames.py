"""Reading a Media Streams websocket with a read timeout.

Twilio sends a media frame every 20 ms for the whole call, silence included, so a socket that
sends nothing for ``PAYBOT_WS_READ_TIMEOUT_S`` seconds has a dead or idle peer: it is closed
with :data:`CLOSE_READ_TIMEOUT` (4408, "read timeout") instead of holding a call open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import WSMessage, WSMsgType, web

log = logging.getLogger(__name__)
CLOSE_READ_TIMEOUT = 4408  # an application close code (4000-4999): nothing received in time
_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


async def frames(
    ws: web.WebSocketResponse,
    read_timeout_s: float,
    on_timeout: Callable[[], None] | None = None,
) -> AsyncIterator[WSMessage]:
    """The socket's messages until it closes, fails, or is silent for ``read_timeout_s``
    (then ``on_timeout`` is called and the socket closed with :data:`CLOSE_READ_TIMEOUT`)."""
    while True:
        try:
            message = await ws.receive(timeout=read_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            log.warning("stream closed: nothing received for %.0fs", read_timeout_s)
            if on_timeout is not None:
                on_timeout()
            await ws.close(code=CLOSE_READ_TIMEOUT, message=b"read timeout")
            return
        if message.type in _ENDED:
            return
        yield message
