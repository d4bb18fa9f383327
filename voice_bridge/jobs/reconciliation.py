"""The bridge's reconciliation jobs (docs/reconciliation.md).

* The daily file: at ``PAYBOT_RECONCILE_TIME`` (UTC, ``HH:MM``; empty: off) yesterday's file is
  written and, with ``PAYBOT_SFTP_URL``, uploaded. A bridge started after that time when no
  bridge has published yesterday's file publishes it at once. Of several bridges, one claims
  each day (:mod:`paybot.reconciliation.runs`) and publishes it; the others skip it.
* The CRM webhook: every ``PAYBOT_CRM_WEBHOOK_INTERVAL_S`` the completed payments are posted
  to ``PAYBOT_CRM_WEBHOOK_URL`` (unset: off), each claimed by one worker
  (:mod:`paybot.reconciliation.poster`).

Database and file work runs in worker threads; logs carry counts and days only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date, time

from aiohttp import web

from paybot.db.types import utcnow
from paybot.reconciliation.daily import next_run, parse_time_of_day, yesterday
from paybot.reconciliation.poster import CrmPoster, WebhookConfig
from paybot.reconciliation.publish import publish_day
from paybot.reconciliation.runs import claim_day, finish_day
from voice_bridge.jobs.background import every, running
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS

log = logging.getLogger(__name__)


async def reconcile_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: write yesterday's file every day at the configured time."""
    at = parse_time_of_day(app[SETTINGS].reconcile_time)
    if at is None:
        log.info("reconciliation file: not written by the bridge (PAYBOT_RECONCILE_TIME empty)")
        yield
        return
    async with running(_daily(app, at), "reconciliation file"):
        yield


async def _daily(app: web.Application, at: time) -> None:
    now = utcnow()
    if now.time() >= at:
        await _publish(app, yesterday(now))
    log.info("reconciliation file: daily at %s UTC", at.strftime("%H:%M"))
    while True:
        run_at = next_run(utcnow(), at)
        await asyncio.sleep(max(0.0, (run_at - utcnow()).total_seconds()))
        await _publish(app, yesterday(run_at))
        await asyncio.sleep(1.0)  # past the minute's start, so the next run is tomorrow's


async def _publish(app: web.Application, day: date) -> None:
    """Publish ``day`` if this bridge claims it (another bridge may have, or may be at it)."""
    engine = app[DB_ENGINE]
    try:
        if not await asyncio.to_thread(claim_day, engine, day):
            log.info("reconciliation %s: published by another bridge", day)
            return
    except Exception as exc:
        log.warning("reconciliation %s: could not claim the day (%s)", day, type(exc).__name__)
        return
    ok = False
    try:
        await publish_day(app[SETTINGS], engine, day)
        ok = True
    except Exception as exc:
        log.warning("reconciliation %s: failed (%s)", day, type(exc).__name__)
    finally:
        try:
            await asyncio.to_thread(finish_day, engine, day, ok=ok)
        except Exception as exc:
            log.warning("reconciliation %s: outcome not recorded (%s)", day, type(exc).__name__)


async def crm_webhook_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: post the completed payments to the CRM every interval."""
    settings = app[SETTINGS]
    config = WebhookConfig.of(settings)
    if config is None:
        log.info("crm webhook: off (PAYBOT_CRM_WEBHOOK_URL unset)")
        yield
        return
    poster = CrmPoster(app[DB_ENGINE], app[HTTP_CLIENT], config)

    async def once() -> None:
        outcomes = await poster.run_once()
        if outcomes:
            summary = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
            log.info("crm webhook: %s", summary)

    interval = settings.crm_webhook_interval_s
    async with running(every(interval, once, "crm webhook"), "crm webhook"):
        yield
