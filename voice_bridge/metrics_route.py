"""``GET /metrics``: the bridge's Prometheus metrics (:mod:`paybot.metrics`).

The bridge is the one service that faces the world (Twilio calls it), so its metrics are
guarded: with ``PAYBOT_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer
<token>`` (401 otherwise); without it they are open in dev and test, and off in prod (404),
where a reverse proxy may pass any path through. They hold counts and timings only.

The outbox backlog is read from the database at scrape time, in a thread.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from paybot import metrics
from paybot.db import queries
from voice_bridge.keys import DB_ENGINE, SETTINGS

log = logging.getLogger(__name__)


def add_metrics_route(app: web.Application) -> None:
    """Register ``GET /metrics`` (needs ``SETTINGS``; ``DB_ENGINE`` once started)."""
    app.router.add_get(metrics.METRICS_PATH, metrics_endpoint)


async def metrics_endpoint(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not token and not settings.is_dev:
        raise web.HTTPNotFound()
    if not metrics.bearer_allowed(request.headers.get("Authorization", ""), token):
        raise web.HTTPUnauthorized(
            text="a bearer token is needed\n", headers={"WWW-Authenticate": "Bearer"}
        )
    body = await asyncio.to_thread(_scrape, request.app[DB_ENGINE])
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def _scrape(engine: Engine) -> bytes:
    """Read the outbox backlog into its gauge, then render every metric (blocking)."""
    try:
        with Session(engine) as session:
            backlog = queries.outbox_backlog(session=session)
    except SQLAlchemyError as exc:  # the rest is still worth scraping
        log.warning("metrics: outbox backlog not read (%s)", type(exc).__name__)
    else:
        for status, count in backlog.items():
            metrics.OUTBOX_BACKLOG.labels(status=status).set(count)
    return metrics.render()
