"""Runs the scheduled payments whose day has come, in the background, every
``PAYBOT_SCHEDULER_INTERVAL_S`` (0 turns it off; ``paybot payments run-due`` from cron does the
same job).

Every bridge runs one; several bridges (and cron) may run at once. :meth:`Scheduler.run_due`
claims each payment with a conditional update (``scheduled`` to ``pending``, or ``skipped``
when the rules no longer allow it) that only one of them can win, and the ledger charges it
under the payment's own idempotency key, so a payment is never charged twice. The database and
gateway work runs in a worker thread, never on the event loop. Logs carry counts only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from paybot.payments.scheduling import Scheduler
from voice_bridge.jobs.background import ledger_job
from voice_bridge.keys import SETTINGS

log = logging.getLogger(__name__)


async def scheduler_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: run the due scheduled payments now and then every interval."""
    async with ledger_job(
        app,
        lambda ledger: Scheduler(ledger).run_due,
        interval_s=app[SETTINGS].scheduler_interval_s,
        what="scheduled payments",
        done="run",
        off="not run by the bridge (PAYBOT_SCHEDULER_INTERVAL_S=0)",
        logger=log,
    ):
        yield
