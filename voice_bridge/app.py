"""The bridge's aiohttp application factory and its runner.

Routes: ``GET /healthz``, the Twilio webhooks (:mod:`voice_bridge.twilio.webhooks`, and
``<Pay>``'s in :mod:`voice_bridge.twilio.pay_webhooks`) and the ``/twilio/stream`` Media
Streams websocket (:mod:`voice_bridge.twilio.stream`); the agent console at ``/console``
(:mod:`voice_bridge.console`). Long-lived resources (the outgoing HTTP
client, the speech models and thread pool, background jobs) are opened and closed by
``cleanup_ctx`` so that startup and graceful shutdown handle them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientSession, ClientTimeout, web

from paybot.settings import Settings
from voice_bridge.console.pages import add_console
from voice_bridge.database import database
from voice_bridge.jobs.receipt_sender import receipt_sender
from voice_bridge.jobs.recheck import recheck_job
from voice_bridge.jobs.reconciliation import crm_webhook_job, reconcile_job
from voice_bridge.jobs.scheduler import scheduler_job
from voice_bridge.keys import HTTP_CLIENT, LIVE_CALLS, SETTINGS
from voice_bridge.live_calls import LiveCalls
from voice_bridge.runtime import voice_runtime
from voice_bridge.twilio.pay_webhooks import add_pay_routes
from voice_bridge.twilio.stream import add_stream_route
from voice_bridge.twilio.webhooks import add_twilio_routes

log = logging.getLogger(__name__)
HTTP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 5.0  # under the supervisor's 10 s grace before SIGKILL


def create_app(settings: Settings) -> web.Application:
    """Build the bridge application for ``settings`` (no I/O until it starts)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[LIVE_CALLS] = LiveCalls()
    app.cleanup_ctx.append(http_client)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(voice_runtime)
    app.cleanup_ctx.append(receipt_sender)
    app.cleanup_ctx.append(scheduler_job)
    app.cleanup_ctx.append(recheck_job)
    app.cleanup_ctx.append(reconcile_job)
    app.cleanup_ctx.append(crm_webhook_job)
    app.router.add_get("/healthz", healthz)
    add_twilio_routes(app)
    add_pay_routes(app)
    add_stream_route(app)
    add_console(app)
    return app


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """Open one shared ``ClientSession`` for the app's lifetime."""
    async with ClientSession(timeout=ClientTimeout(total=HTTP_TIMEOUT_S)) as session:
        app[HTTP_CLIENT] = session
        yield


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 ``{"status": "ok"}`` while the bridge serves requests."""
    return web.json_response({"status": "ok"})


def serve(settings: Settings) -> None:
    """Serve on ``settings.host:settings.bridge_port`` until SIGINT/SIGTERM, then shut down
    gracefully (open requests get ``SHUTDOWN_TIMEOUT_S`` to finish).

    Raises:
        OSError: The address cannot be bound (e.g. the port is in use).
    """
    _use_uvloop()
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.bridge_port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        handle_signals=True,
        print=_log_banner,
    )


def _use_uvloop() -> None:
    """Run on uvloop when it is installed: the bridge handles 50 frames a second per call in
    and out, and uvloop's socket and callback paths cost a fraction of asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - it is a dependency
        log.info("uvloop is not installed: running on asyncio's own event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _log_banner(message: str) -> None:
    """Log aiohttp's "Running on ..." banner instead of printing it."""
    first = message.strip().splitlines()[0] if message.strip() else message
    log.info("voice bridge %s", first.strip("= ").lower())
