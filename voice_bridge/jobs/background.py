"""Background jobs that live as long as the bridge (receipts, scheduled payments, payments of
unknown outcome)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from paybot.payments.factory import make_ledger
from paybot.payments.ledger import Ledger
from paybot.payments.settlement import PaymentOutcome
from voice_bridge.keys import DB_ENGINE, SETTINGS

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(job: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``job`` as a task inside the block; cancel it and wait for it on the way out."""
    task = asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def every(interval_s: float, work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``work`` now and then every ``interval_s`` until cancelled; a failed run (the
    database is down, ...) is logged by exception type and tried again next time."""
    while True:
        try:
            await work()
        except Exception as exc:
            log.warning("%s: run failed (%s)", what, type(exc).__name__)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def ledger_job(
    app: web.Application,
    work: Callable[[Ledger], Callable[[], Sequence[PaymentOutcome]]],
    *,
    interval_s: float,
    what: str,
    done: str,
    off: str,
    logger: logging.Logger,
) -> AsyncIterator[None]:
    """Run ``work(ledger)()`` (blocking: in a worker thread) now and then every ``interval_s``
    while the block runs, logging how many payments it ``done`` by status; counts only.
    ``interval_s`` 0 runs nothing and logs ``off``."""
    if interval_s <= 0:
        logger.info("%s: %s", what, off)
        yield
        return

    async def run() -> None:
        job = work(await asyncio.to_thread(make_ledger, app[SETTINGS], app[DB_ENGINE]))
        logger.info("%s: every %.0fs", what, interval_s)

        async def once() -> None:
            outcomes = await asyncio.to_thread(job)
            if outcomes:
                counts = Counter(o.status for o in outcomes)
                summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
                logger.info("%s: %d %s (%s)", what, len(outcomes), done, summary)

        await every(interval_s, once, what)

    async with running(run(), what):
        yield
