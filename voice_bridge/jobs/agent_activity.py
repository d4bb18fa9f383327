"""The bridge's activity-webhook job (docs/console.md): every
``PAYBOT_AGENT_ACTIVITY_INTERVAL_S`` the activity records of agent-assisted payments not yet
accepted are posted to the CRM (:mod:`paybot.console.activity`). Off while neither
``PAYBOT_AGENT_ACTIVITY_URL`` nor ``PAYBOT_CRM_WEBHOOK_URL`` is set. Several bridges may run
it: each attempt is claimed with a conditional update. Logs carry counts only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from paybot.console.activity import ActivityPoster, ActivityWebhook
from voice_bridge.jobs.background import every, running
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS

log = logging.getLogger(__name__)


async def agent_activity_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: post the activity records every interval."""
    settings = app[SETTINGS]
    webhook = ActivityWebhook.of(settings)
    if webhook is None:
        log.info("agent activity webhook: off (no PAYBOT_AGENT_ACTIVITY_URL or CRM webhook)")
        yield
        return
    poster = ActivityPoster(app[DB_ENGINE], app[HTTP_CLIENT], webhook)

    async def once() -> None:
        outcomes = await poster.run_once()
        if outcomes:
            summary = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
            log.info("agent activity webhook: %s", summary)

    async with running(every(settings.agent_activity_interval_s, once, "agent activity"),
                       "agent activity"):
        yield
