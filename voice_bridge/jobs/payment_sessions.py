"""The bridge's contact-centre job (docs/contact-centre.md): every ``PAYBOT_API_INTERVAL_S``
the payment sessions whose outcome is known are settled (succeeded with the call's payment,
failed when the call ended without one, expired when no call came;
:func:`paybot.contact_centre.sessions.settle`) and their completion webhooks posted
(:mod:`paybot.contact_centre.webhook`). Off while ``PAYBOT_API_CLIENTS`` is empty.

Several bridges may run it against one database: every move is a conditional update. Database
work runs in worker threads; logs carry counts only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from paybot.contact_centre import sessions
from paybot.contact_centre.clients import parse_clients
from paybot.contact_centre.webhook import Policy, SessionWebhookPoster
from voice_bridge.call.twilio_pay import HANDED_OVER
from voice_bridge.jobs.background import every, running
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS

log = logging.getLogger(__name__)


async def payment_sessions_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: settle sessions and post their webhooks every interval."""
    settings = app[SETTINGS]
    clients = parse_clients(settings.api_clients.get_secret_value())
    if not clients:
        log.info("contact-centre api: off (PAYBOT_API_CLIENTS empty)")
        yield
        return
    engine = app[DB_ENGINE]
    policy = Policy(timeout_s=settings.api_webhook_timeout_s,
                    max_attempts=settings.api_webhook_max_attempts,
                    backoff_s=settings.api_webhook_backoff_s)
    poster = SessionWebhookPoster(engine, app[HTTP_CLIENT], clients, policy)

    async def once() -> None:
        finished = await asyncio.to_thread(
            sessions.settle, engine, call_ttl_s=settings.api_call_ttl_s,
            on_call_reasons=(HANDED_OVER,),
        )  # fmt: skip
        outcomes = await poster.run_once()
        if finished or outcomes:
            summary = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
            log.info("payment sessions: %d finished; webhooks: %s", finished, summary or "none")

    async with running(every(settings.api_interval_s, once, "payment sessions"),
                       "payment sessions"):
        yield
