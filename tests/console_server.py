"""The console alone, served over real HTTP from a thread: the bridge's ``/console``
sub-application on a given database and settings, without the speech models a whole bridge
loads. Its live-calls registry can be fed from the test (:meth:`ConsoleServer.on_loop`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine

from paybot.console.users import add_user
from paybot.settings import Settings
from tests.stack import free_port
from voice_bridge.console.pages import add_console
from voice_bridge.keys import DB_ENGINE, LIVE_CALLS, SETTINGS
from voice_bridge.live_calls import LiveCalls

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test user's


class ConsoleServer:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.live: LiveCalls | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="console-server", daemon=True)

    def __enter__(self) -> ConsoleServer:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the console server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def on_loop(self, fn: Callable[[LiveCalls], Any]) -> None:
        """Run ``fn(live_calls)`` on the server's loop and wait for it."""
        async def call() -> Any:
            assert self.live is not None
            return fn(self.live)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def add_users(self) -> None:
        """``agent``, ``supervisor`` and ``admin``, each of that role, all with ``PASSWORD``."""
        for role in ("agent", "supervisor", "admin"):
            add_user(self.engine, role, role, PASSWORD)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        app = web.Application()
        app[SETTINGS] = self.settings
        app[DB_ENGINE] = self.engine
        self.live = app[LIVE_CALLS] = LiveCalls()
        add_console(app)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # an event stream still waiting for its next change
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
