"""The bridge's database engine, one per process: opened when the app starts, disposed when it
stops. The webhooks (call records) and the outbox sender use it through ``app[DB_ENGINE]``.

The schema is migrated by ``paybot up`` / ``paybot db upgrade`` before the bridge starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from paybot.db.engine import make_engine
from voice_bridge.keys import DB_ENGINE, SETTINGS


async def database(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: create the engine (pooled connections open lazily) and dispose of it."""
    engine = await asyncio.to_thread(make_engine, app[SETTINGS].db_url)
    app[DB_ENGINE] = engine
    try:
        yield
    finally:
        await asyncio.to_thread(engine.dispose)
