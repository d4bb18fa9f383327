"""The bridge's aiohttp application factory and its runner.

Routes: ``GET /healthz``, ``GET /metrics`` (:mod:`voice_bridge.metrics_route`), the Twilio
webhooks (:mod:`voice_bridge.twilio.webhooks`, and
``<Pay>``'s in :mod:`voice_bridge.twilio.pay_webhooks`), the hosted page of secure pay links
(``/pay/{token}``, :mod:`voice_bridge.pay_page.routes`), the ``/twilio/stream`` Media
Streams websocket (:mod:`voice_bridge.twilio.stream`) and the contact-centre API under
``/api`` (:mod:`voice_bridge.api.routes`), the agent console at ``/console``
(:mod:`voice_bridge.console`), and the browser softphone at ``/phone`` when enabled
(:mod:`voice_bridge.softphone`). Long-lived resources (the outgoing HTTP
client, the speech models and thread pool, background jobs) are opened and closed by
``cleanup_ctx`` so that startup and graceful shutdown handle them. SIGTERM drains the bridge
(:mod:`voice_bridge.drain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientSession, ClientTimeout, web

from paybot.settings import Settings
from voice_bridge.api.routes import add_api_routes
from voice_bridge.console.pages import add_console
from voice_bridge.database import database
from voice_bridge.drain import DRAIN, add_drain, serve_until_stopped
from voice_bridge.jobs.agent_activity import agent_activity_job
from voice_bridge.jobs.payment_sessions import payment_sessions_job
from voice_bridge.jobs.receipt_sender import receipt_sender
from voice_bridge.jobs.recheck import recheck_job
from voice_bridge.jobs.reconciliation import crm_webhook_job, reconcile_job
from voice_bridge.jobs.reminders import reminder_job
from voice_bridge.jobs.scheduler import scheduler_job
from voice_bridge.keys import HTTP_CLIENT, LIVE_CALLS, SETTINGS
from voice_bridge.live_calls import LiveCalls
from voice_bridge.metrics_route import add_metrics_route
from voice_bridge.pay_page.routes import add_pay_page_routes
from voice_bridge.runtime import voice_runtime
from voice_bridge.softphone.routes import add_softphone
from voice_bridge.twilio.pay_webhooks import add_pay_routes
from voice_bridge.twilio.stream import add_stream_route
from voice_bridge.twilio.webhooks import add_twilio_routes

log = logging.getLogger(__name__)
HTTP_TIMEOUT_S = 10.0


def create_app(settings: Settings) -> web.Application:
    """Build the bridge application for ``settings`` (no I/O until it starts)."""
    app = web.Application()
    app[SETTINGS] = settings
    add_drain(app, settings)
    app[LIVE_CALLS] = LiveCalls()
    app.cleanup_ctx.append(http_client)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(voice_runtime)
    app.cleanup_ctx.append(receipt_sender)
    app.cleanup_ctx.append(scheduler_job)
    app.cleanup_ctx.append(recheck_job)
    app.cleanup_ctx.append(reconcile_job)
    app.cleanup_ctx.append(crm_webhook_job)
    app.cleanup_ctx.append(reminder_job)
    app.cleanup_ctx.append(payment_sessions_job)
    app.cleanup_ctx.append(agent_activity_job)
    app.router.add_get("/healthz", healthz)
    add_metrics_route(app)
    add_twilio_routes(app)
    add_pay_routes(app)
    add_pay_page_routes(app)
    add_stream_route(app)
    add_api_routes(app)
    add_console(app)
    add_softphone(app)
    return app


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """Open one shared ``ClientSession`` for the app's lifetime."""
    async with ClientSession(timeout=ClientTimeout(total=HTTP_TIMEOUT_S)) as session:
        app[HTTP_CLIENT] = session
        yield


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 ``{"status": "ok"}`` while the bridge takes calls; 503
    ``{"status": "draining"}`` once SIGTERM began the drain."""
    if request.app[DRAIN].draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ok"})


def serve(settings: Settings) -> None:
    """Serve on ``settings.host:settings.bridge_port`` until SIGINT, or SIGTERM and the drain
    (:mod:`voice_bridge.drain`), then shut down gracefully.

    Raises:
        OSError: The address cannot be bound (e.g. the port is in use).
    """
    _use_uvloop()
    asyncio.run(serve_until_stopped(create_app(settings), settings.host, settings.bridge_port))


def _use_uvloop() -> None:
    """Run on uvloop when it is installed: the bridge handles 50 frames a second per call in
    and out, and uvloop's socket and callback paths cost a fraction of asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - it is a dependency
        log.info("uvloop is not installed: running on asyncio's own event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
