"""Asks the gateway again about payments whose outcome is ``unknown``, in the background, every
``PAYBOT_UNKNOWN_RECHECK_INTERVAL_S`` (0 turns it off: then only the next start settles them).

A payment is ``unknown`` when the gateway did not answer, even when asked about its key. This
job asks again (:meth:`Ledger.recheck_unknown`): one the gateway charged or declined is settled
at once, and one it has no record of fails after ``PAYBOT_RECONCILE_AFTER_S``. Every bridge
runs one; settling is a conditional update from an open state, so only one of them (or a live
call) settles each payment. It also sweeps the tokens made for payments (the two-step style):
a payment whose token was never charged fails (``abandoned``) after the same time, and a token
left after its payment is kept or deleted (:meth:`TokenizedPayments.sweep`). The work runs in
a worker thread; logs carry counts only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from voice_bridge.jobs.background import ledger_job
from voice_bridge.keys import SETTINGS

log = logging.getLogger(__name__)


async def recheck_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: ask about the unknown payments now and then every interval."""
    settings = app[SETTINGS]
    async with ledger_job(
        app,
        lambda ledger: lambda: [
            *ledger.recheck_unknown(settings.reconcile_after_s),
            *ledger.tokens.sweep(settings.reconcile_after_s),
        ],
        interval_s=settings.unknown_recheck_interval_s,
        what="unknown payments",
        done="settled",
        off="settled at start only (PAYBOT_UNKNOWN_RECHECK_INTERVAL_S=0)",
        logger=log,
    ):
        yield
