"""Runs the scheduled payments whose day has come, in the background, every
``PAYBOT_SCHEDULER_INTERVAL_S`` (0 turns it off; ``paybot payments run-due`` from cron does the
same job).

Every bridge runs one; several bridges (and cron) may run at once. :meth:`Scheduler.run_due`
claims each payment with a conditional update (``scheduled`` to ``pending``) that only one of
them can win, and the ledger charges it under the payment's own idempotency key, so a payment
is never charged twice. The database and gateway work runs in a worker thread, never on the
event loop. Logs carry counts only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.engine import Engine

from paybot.payments.factory import make_ledger
from paybot.payments.scheduling import Scheduler
from paybot.settings import Settings
from voice_bridge.background import running
from voice_bridge.keys import DB_ENGINE, SETTINGS

log = logging.getLogger(__name__)


async def scheduler_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: run the due scheduled payments now and then every interval."""
    settings = app[SETTINGS]
    if settings.scheduler_interval_s <= 0:
        log.info("scheduled payments: not run by the bridge (PAYBOT_SCHEDULER_INTERVAL_S=0)")
        yield
        return
    async with running(_run(settings, app[DB_ENGINE]), "scheduler-job"):
        yield


async def _run(settings: Settings, engine: Engine) -> None:
    scheduler = Scheduler(await asyncio.to_thread(make_ledger, settings, engine))
    log.info("scheduled payments: checked every %.0fs", settings.scheduler_interval_s)
    while True:
        try:
            outcomes = await asyncio.to_thread(scheduler.run_due)
            if outcomes:
                counts = Counter(o.status for o in outcomes)
                log.info(
                    "scheduled payments: %d run (%s)",
                    len(outcomes),
                    ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
                )
        except Exception as exc:  # the database is down, ...: try again next time
            log.warning("scheduled payments: run failed (%s)", type(exc).__name__)
        await asyncio.sleep(settings.scheduler_interval_s)
